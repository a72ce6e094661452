"""ddr-basicsr losses: every `*_loss.py` here registers into BasicSR's registry on import."""
import importlib
from pathlib import Path

from ddr_basicsr.losses.contextual_loss import ContextualLoss
from ddr_basicsr.losses.ddr_loss import DDRLoss
from ddr_basicsr.losses.fdl_loss import FDLLoss
from ddr_basicsr.losses.lpips_loss import LPIPSLoss
from ddr_basicsr.losses.pdl_loss import PDLLoss
from ddr_basicsr.losses.psnr_loss import PSNRLoss

__all__ = ['ContextualLoss', 'DDRLoss', 'FDLLoss', 'LPIPSLoss', 'PDLLoss', 'PSNRLoss']

for _module in sorted(p.stem for p in Path(__file__).parent.glob('*_loss.py')):
    importlib.import_module(f'{__name__}.{_module}')
