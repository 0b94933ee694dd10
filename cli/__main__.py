"""`python -m cli`: the same as the `firetower` command."""

import sys

from cli.main import main

sys.exit(main())
