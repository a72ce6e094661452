"""ddr-basicsr metrics: every `*_metric.py` here registers into BasicSR's registry on import."""
import importlib
from pathlib import Path

from ddr_basicsr.metrics.ddr_metric import calculate_ddr, calculate_ddr_pt
from ddr_basicsr.metrics.realblur_metric import calculate_psnr_ecc, calculate_ssim_ecc

__all__ = ['calculate_ddr', 'calculate_ddr_pt', 'calculate_psnr_ecc', 'calculate_ssim_ecc']

for _module in sorted(p.stem for p in Path(__file__).parent.glob('*_metric.py')):
    importlib.import_module(f'{__name__}.{_module}')
