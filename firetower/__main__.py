import sys

from firetower.cli import main

sys.exit(main())
