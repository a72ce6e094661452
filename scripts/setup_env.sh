#!/usr/bin/env bash
# Creates (once) the virtual environment .venv with torch, basicsr 1.4.2 and ddr-basicsr; sourced by
# scripts/run_tests.sh and scripts/demo.sh. Re-running is quick: it reinstalls only when setup.py changed.
# Override the interpreter with PYTHON=..., the venv folder with DDR_VENV=..., the torch pins with
# TORCH_SPEC="torch==X torchvision==Y" (default: the versions this project is tested with).
set -euo pipefail
PYTHON=${PYTHON:-python3}
DDR_VENV=${DDR_VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}

[ -x "$DDR_VENV/bin/python" ] || "$PYTHON" -m venv "$DDR_VENV"
# shellcheck disable=SC1091
. "$DDR_VENV/bin/activate"

stamp="$DDR_VENV/.ddr-basicsr-installed"
wanted="$(cat setup.py) $TORCH_SPEC"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "[setup] installing into $DDR_VENV (torch first, then basicsr without build isolation, then ddr-basicsr)"
  python -m pip install --quiet --upgrade pip 'setuptools>=70.1' wheel cython numpy
  # shellcheck disable=SC2086
  python -m pip install --quiet $TORCH_SPEC
  # basicsr 1.4.2 is sdist-only and declares torch in setup_requires: build it against the torch above.
  python -m pip install --quiet --no-build-isolation basicsr==1.4.2
  python -m pip install --quiet -e ".[test]"
  printf '%s' "$wanted" > "$stamp"
fi
