"""``python -m ddr_basicsr.train``: the documented command line of ``ddr-train`` (:mod:`ddr_basicsr.cli.train`)."""
from ddr_basicsr.cli.train import main

__all__ = ['main']

if __name__ == '__main__':
    main()
