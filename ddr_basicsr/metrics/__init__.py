"""ddr-basicsr metrics: every `*_metric.py` here registers into BasicSR's registry on import (as BasicSR scans its own)."""
import importlib
from pathlib import Path

for _module in sorted(p.stem for p in Path(__file__).parent.glob('*_metric.py')):
    importlib.import_module(f'{__name__}.{_module}')
