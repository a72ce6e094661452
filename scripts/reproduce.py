"""Reproduce the DDR paper's tables and figures, one sub-command each (see docs/reproducing-the-paper.md).

    python scripts/reproduce.py table1 --root live=datasets/LIVE
    python scripts/reproduce.py table3 --baselines niqe,ilniqe,piqe
    python scripts/reproduce.py tables4-6 --results-root .
    python scripts/reproduce.py COMMAND --help

The logic lives in :mod:`ddr_basicsr.paper`; this script only hands over the arguments.
"""
import sys

from ddr_basicsr.paper.cli import main

if __name__ == '__main__':
    sys.exit(main())
