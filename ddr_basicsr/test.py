"""``python -m ddr_basicsr.test``: the documented command line of ``ddr-test`` (:mod:`ddr_basicsr.cli.test`)."""
from ddr_basicsr.cli.test import main

__all__ = ['main']

if __name__ == '__main__':
    main()
