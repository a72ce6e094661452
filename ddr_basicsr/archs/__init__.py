"""ddr-basicsr archs: every `*_arch.py` here registers into BasicSR's registry on import."""
import importlib
from pathlib import Path

from ddr_basicsr.archs.nafnet_arch import NAFNet, NAFNetLocal
from ddr_basicsr.archs.restormer_arch import Restormer

__all__ = ['NAFNet', 'NAFNetLocal', 'Restormer']

for _module in sorted(p.stem for p in Path(__file__).parent.glob('*_arch.py')):
    importlib.import_module(f'{__name__}.{_module}')
