"""``python -m validation [--quick | --full] [--only ID ...] --out DIR`` (see validation/runner.py)."""

from validation.runner import main

raise SystemExit(main())
