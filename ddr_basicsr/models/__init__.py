"""ddr-basicsr models: every `*_model.py` here registers into BasicSR's registry on import."""
import importlib
from pathlib import Path

from ddr_basicsr.models.lr_scheduler import CosineAnnealingRestartCyclicLR, TrueCosineAnnealingLR
from ddr_basicsr.models.restoration_model import RestorationModel

__all__ = ['CosineAnnealingRestartCyclicLR', 'TrueCosineAnnealingLR', 'RestorationModel']

for _module in sorted(p.stem for p in Path(__file__).parent.glob('*_model.py')):
    importlib.import_module(f'{__name__}.{_module}')
