#!/usr/bin/env bash
# The main job: set up, then run the Monte Carlo pi example on the local
# multicore back end. Extra arguments go to the example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/monte_pi.py -i multicore -n 4 "$@"
