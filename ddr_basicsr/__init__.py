"""ddr-basicsr: Deep Degradation Response (Wu, Ni et al., NeurIPS 2024) as a BasicSR plugin.

Importing the package makes ``import basicsr`` work on current torchvision and registers the
plugin's archs, losses, models and metrics into BasicSR's registries.
"""
from ddr_basicsr import compat  # noqa: F401  (first: basicsr cannot be imported without it)
from ddr_basicsr.ddr import DDR
from ddr_basicsr import archs, losses, metrics, models  # noqa: F401,E402  (registrations)

__version__ = '0.1.0'
__all__ = ['DDR', '__version__']
