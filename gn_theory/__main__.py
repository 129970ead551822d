"""``python -m gn_theory``: the command line."""

import sys

from .cli import main

sys.exit(main())
