#!/usr/bin/env bash
# The test command: set everything up (scripts/setup.sh), then run pytest.
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -k multicore
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
