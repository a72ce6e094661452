"""``python -m ddr_basicsr.score``: the earlier documented command line of ``ddr-score`` (:mod:`ddr_basicsr.cli.score`),
kept for scripts that run it as ``torchrun ... -m ddr_basicsr.score``."""
import sys

from ddr_basicsr.cli.score import main

__all__ = ['main']

if __name__ == '__main__':
    sys.exit(main())
