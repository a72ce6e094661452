"""The seam between ddr-basicsr and BasicSR 1.4.2: everything that touches BasicSR lives here.

``activate()`` runs on ``import ddr_basicsr`` and, through the ``ddr_basicsr_plugin.pth`` start-up file that
ships with the package, when any interpreter of the environment starts (``DDR_BASICSR_PLUGIN=0``, ``false``,
``off`` or ``no`` turns the start-up file off). It costs nothing until basicsr is imported: an import hook waits
for ``basicsr`` and then calls ``attach()``, or ``attach()`` runs at once when basicsr is already imported.

``attach()`` checks and installs the declared table of :mod:`.seam` (four BasicSR names, each a switch that acts
only for runs that use the plugin) and imports the plugin's archs, losses, models and metrics, which register into
BasicSR's registries. Runs that name nothing of the plugin's are BasicSR's own, unchanged.

Modules: :mod:`.import_hook` (the hook), :mod:`.torchvision_alias` (basicsr 1.4.2 on torchvision >= 0.17),
:mod:`.seam` (the table), :mod:`.run_options` (``parse_options`` of plugin runs), :mod:`.options` (safe YAML,
option checks), :mod:`.preflight` (weights and data before anything is written), :mod:`.training_loop` (resume
and loader entries), :mod:`.pipelines` (``ddr-train`` / ``ddr-test``). What the plugin's models and loop entries
rely on (resume, checkpoints, preemption, distributed start) lives below the models, in :mod:`ddr_basicsr.training`.
Only this module, :mod:`.import_hook` and ``ddr_basicsr.training``'s ``__init__`` load before basicsr does.
"""
import importlib
import sys
from typing import Optional

from ddr_basicsr.training import tell

__all__ = ['activate', 'attach', 'attach_from_hook', 'is_attached']

PLUGIN_SUBPACKAGES = ('ddr_basicsr.archs', 'ddr_basicsr.losses', 'ddr_basicsr.models', 'ddr_basicsr.metrics')
_attached = False
_attach_error: Optional[BaseException] = None


def activate() -> None:
    """Attach to BasicSR now if it is imported, else the moment it is."""
    if 'basicsr' in sys.modules:
        attach()
    else:
        from ddr_basicsr.host.import_hook import install_import_hook
        install_import_hook(attach_from_hook)


def attach() -> None:
    """Install the seam, then register the plugin into BasicSR's registries (once per process).

    A failure (a seam target missing in another BasicSR version, a broken plugin dependency) is raised here and
    again at every later call; nothing of the plugin is registered then.
    """
    global _attached, _attach_error
    if _attach_error is not None:
        raise _attach_error
    if _attached:
        return
    try:
        from ddr_basicsr.host.torchvision_alias import install_torchvision_alias
        install_torchvision_alias()
        from ddr_basicsr.host import seam
        seam.install()
        for name in PLUGIN_SUBPACKAGES:
            importlib.import_module(name)
    except Exception as error:
        _attach_error = error
        raise
    _attached = True


def attach_from_hook() -> None:
    """``attach()`` for the start-up hook: a failure is told on standard error instead of breaking ``import
    basicsr`` for every program of the environment; runs that use the plugin then stop at its names."""
    try:
        attach()
    except Exception as error:  # any failure of the plugin must leave BasicSR usable
        tell(f'not attached to BasicSR ({type(error).__name__}: {error}); its models, losses and metrics are not '
             'registered. Fix the installation, or set DDR_BASICSR_PLUGIN=0 to silence this.')


def is_attached() -> bool:
    """Whether ``attach()`` has run in this process."""
    return _attached
