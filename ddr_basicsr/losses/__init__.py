"""ddr-basicsr losses: every `*_loss.py` here registers into BasicSR's registry on import (as BasicSR scans its own)."""
import importlib
from pathlib import Path

for _module in sorted(p.stem for p in Path(__file__).parent.glob('*_loss.py')):
    importlib.import_module(f'{__name__}.{_module}')
