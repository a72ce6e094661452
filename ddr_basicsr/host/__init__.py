"""The seam between ddr-basicsr and BasicSR 1.4.2: everything that patches or checks BasicSR lives here.

``activate()`` runs on ``import ddr_basicsr`` and, through the ``ddr_basicsr_plugin.pth`` start-up file that
ships with the package, when any interpreter of the environment starts (``DDR_BASICSR_PLUGIN=0`` turns the
start-up file off). It costs nothing until basicsr is imported: an import hook waits for ``basicsr`` and then
calls ``attach()``, or ``attach()`` runs at once when basicsr is already imported.

``attach()`` is the one entry point that applies the seam: it installs the fixes of :mod:`.fixes` (safe YAML,
CPU resume, option checks on every route, the root folder of stock entry points, gloo/CPU DDP) and imports
the plugin's archs, losses, models and metrics, which register into BasicSR's registries.

Modules: :mod:`.import_hook` (the hook), :mod:`.torchvision_alias` (basicsr 1.4.2 on torchvision >= 0.17),
:mod:`.options` (safe YAML, option checks), :mod:`.fixes` (what BasicSR gets wrong, and ``apply``),
:mod:`.pipelines` (``ddr-train`` / ``ddr-test``). Only this module and :mod:`.import_hook` load before basicsr does.
"""
import importlib
import sys

__all__ = ['activate', 'attach', 'is_attached', 'tell']

PLUGIN_SUBPACKAGES = ('ddr_basicsr.archs', 'ddr_basicsr.losses', 'ddr_basicsr.models', 'ddr_basicsr.metrics')
_attached = False


def activate() -> None:
    """Attach to BasicSR now if it is imported, else the moment it is."""
    if 'basicsr' in sys.modules:
        attach()
    else:
        from ddr_basicsr.host.import_hook import install_import_hook
        install_import_hook()


def attach() -> None:
    """Apply the fixes and register the plugin into BasicSR's registries (once per process)."""
    global _attached
    if _attached:
        return
    _attached = True
    from ddr_basicsr.host.torchvision_alias import install_torchvision_alias
    install_torchvision_alias()
    from ddr_basicsr.host import fixes
    fixes.apply()
    for name in PLUGIN_SUBPACKAGES:
        importlib.import_module(name)
    fixes.route_build_loss()


def is_attached() -> bool:
    """Whether ``attach()`` has run in this process."""
    return _attached


def tell(message: str) -> None:
    """Print a note of the seam on standard error (BasicSR's logger is not set up yet when most are made)."""
    print(f'[ddr-basicsr] {message}', file=sys.stderr, flush=True)
