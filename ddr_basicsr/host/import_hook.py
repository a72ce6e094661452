"""A one-shot import hook that attaches ddr-basicsr to BasicSR the moment ``basicsr`` is imported.

It sits in front of ``sys.meta_path`` and imports only the standard library, so the interpreters that never
import basicsr pay nothing. When basicsr is imported it installs the torchvision alias basicsr 1.4.2 needs,
lets basicsr's own loader run, then calls ``ddr_basicsr.host.attach``.
"""
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Optional, Sequence


class _AttachingLoader(importlib.abc.Loader):
    """Wraps basicsr's own loader: torchvision alias first, then basicsr, then the plugin."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def __getattr__(self, name: str):  # get_data, get_filename, is_package, ... of the real loader
        return getattr(self.loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[ModuleType]:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        from ddr_basicsr.host.torchvision_alias import install_torchvision_alias
        from ddr_basicsr.host import attach
        install_torchvision_alias()
        self.loader.exec_module(module)
        attach()


class BasicsrImportHook(importlib.abc.MetaPathFinder):
    """Finds ``basicsr`` through the other finders and hands it to ``_AttachingLoader``; removes itself after."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None,
                  target: Optional[ModuleType] = None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname != 'basicsr':
            return None
        remove_import_hook()
        for finder in sys.meta_path:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, 'find_spec') else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _AttachingLoader(spec.loader)
                return spec
        return None


def install_import_hook() -> None:
    """Put the hook first on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, BasicsrImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, BasicsrImportHook())


def remove_import_hook() -> None:
    """Take every ``BasicsrImportHook`` off ``sys.meta_path``."""
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, BasicsrImportHook)]
