"""`python -m dispatch`: the same as `firetower dispatch` (used by tests that SIGKILL it)."""

import sys

from firetower.cli import main

if __name__ == "__main__":
    sys.exit(main(["dispatch", *sys.argv[1:]]))
