"""Run as ``python ddr_basicsr/<entry>.py``, Python puts ``ddr_basicsr/`` first on ``sys.path``; importing
this module (found there as a top-level module) replaces it with the repository root, so that the
``ddr_basicsr`` package, not its files, is importable."""
import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or os.getcwd()) == _PACKAGE_DIR:
    sys.path[0] = os.path.dirname(_PACKAGE_DIR)
else:
    sys.path.insert(0, os.path.dirname(_PACKAGE_DIR))
