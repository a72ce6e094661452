#!/usr/bin/env bash
# The demo, from a fresh clone: sets up .venv if needed, then trains NAFNet with PSNR vs. PSNR + DDR on
# the CPU and writes results/demo/report.md (extra arguments go to `python -m ddr_basicsr.tools.demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup_env.sh
python -m ddr_basicsr.tools.demo "$@"
