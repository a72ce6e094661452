#!/usr/bin/env bash
# The test suite, from a fresh clone: sets up .venv if needed, then runs pytest in two processes (extra
# arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup_env.sh
# two test processes (pytest-xdist) for the two cores CI has; DDR_TEST_PROCESSES=0 runs in this process
python -m pytest -n "${DDR_TEST_PROCESSES:-2}" "$@"
