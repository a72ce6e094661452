"""ddr-basicsr: Deep Degradation Response (Wu, Ni et al., NeurIPS 2024) as a BasicSR plugin.

``from ddr_basicsr import DDR`` loads the DDR core only (torch and open_clip, no BasicSR). Importing the
package also attaches the plugin to BasicSR whenever basicsr is imported in this process, before or after:
its archs, losses, models and metrics are then in BasicSR's registries (see ``ddr_basicsr.host``).
"""
from ddr_basicsr.host import activate as _activate_host

__version__ = '0.1.0'
__all__ = ['DDR', '__version__']


def __getattr__(name: str):
    """Load ``DDR`` on first use, so that importing the package stays cheap."""
    if name == 'DDR':
        from ddr_basicsr.core.ddr import DDR
        return DDR
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


_activate_host()
