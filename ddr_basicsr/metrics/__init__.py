"""ddr-basicsr metrics: the modules imported here register into BasicSR's registries (once, on import)."""
from ddr_basicsr.metrics.ddr_metric import calculate_ddr, calculate_ddr_pt
from ddr_basicsr.metrics.realblur_metric import calculate_psnr_ecc, calculate_ssim_ecc

__all__ = ['calculate_ddr', 'calculate_ddr_pt', 'calculate_psnr_ecc', 'calculate_ssim_ecc']
