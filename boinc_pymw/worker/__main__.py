"""Entry point: ``python -m boinc_pymw.worker`` (what the launcher runs)."""

import sys

from .runner import main

sys.exit(main())
