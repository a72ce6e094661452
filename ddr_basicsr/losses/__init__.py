"""ddr-basicsr losses: the modules imported here register into BasicSR's registries (once, on import)."""
from ddr_basicsr.losses.contextual_loss import ContextualLoss
from ddr_basicsr.losses.ddr_loss import DDRLoss
from ddr_basicsr.losses.fdl_loss import FDLLoss
from ddr_basicsr.losses.lpips_loss import LPIPSLoss
from ddr_basicsr.losses.pdl_loss import PDLLoss
from ddr_basicsr.losses.psnr_loss import PSNRLoss

__all__ = ['ContextualLoss', 'DDRLoss', 'FDLLoss', 'LPIPSLoss', 'PDLLoss', 'PSNRLoss']
