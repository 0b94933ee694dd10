"""`python -m dispatch`: the same as `firetower dispatch` (used by tests that SIGKILL it)."""

import sys

from cli.main import main

if __name__ == "__main__":
    sys.exit(main(["dispatch", *sys.argv[1:]]))
