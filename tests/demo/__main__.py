"""`python -m tests.demo [--keep]` (what `make demo` runs): see tests/demo/run.py."""

import sys

from .run import main

sys.exit(main())
