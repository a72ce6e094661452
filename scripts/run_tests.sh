#!/usr/bin/env bash
# The test suite, from a fresh clone: sets up .venv if needed, then runs pytest (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup_env.sh
python -m pytest "$@"
