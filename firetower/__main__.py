"""`python -m firetower`: the same as the `firetower` command (tests and `firetower run` start
their child processes this way). An entry point, not kernel code: nothing imports this module,
and the kernel-is-a-leaf contract (pyproject.toml) names this one edge to `cli`."""

import sys

from cli.main import main

sys.exit(main())
