"""ddr-basicsr archs: the modules imported here register into BasicSR's registries (once, on import)."""
from ddr_basicsr.archs.nafnet_arch import NAFNet, NAFNetLocal
from ddr_basicsr.archs.restormer_arch import Restormer

__all__ = ['NAFNet', 'NAFNetLocal', 'Restormer']
