"""A one-shot import hook that attaches ddr-basicsr to BasicSR the moment ``basicsr`` is imported.

It sits in front of ``sys.meta_path``. The start-up file imports it in every interpreter of the environment,
so it imports nothing beyond what Python has loaded at start (no ``importlib.abc``, no ``typing``: the finder
and loader follow the import protocol by their methods). When basicsr is imported it installs the torchvision
alias basicsr 1.4.2 needs, lets basicsr's own loader run, then calls the ``attach`` it was installed with
(``ddr_basicsr.host.attach_from_hook``).
"""
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType


class _AttachingLoader:
    """Wraps basicsr's own loader: torchvision alias first, then basicsr, then ``attach`` (the plugin)."""

    def __init__(self, loader, attach) -> None:
        self.loader = loader
        self.attach = attach

    def __getattr__(self, name: str):  # get_data, get_filename, is_package, ... of the real loader
        return getattr(self.loader, name)

    def create_module(self, spec: ModuleSpec) -> 'ModuleType | None':
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        from ddr_basicsr.host.torchvision_alias import install_torchvision_alias
        install_torchvision_alias()
        self.loader.exec_module(module)
        self.attach()


class BasicsrImportHook:
    """A meta-path finder: finds ``basicsr`` through the other finders and hands it to ``_AttachingLoader``;
    removes itself after. ``attach`` (no arguments) runs once basicsr is imported."""

    def __init__(self, attach) -> None:
        self.attach = attach

    def find_spec(self, fullname: str, path=None, target: 'ModuleType | None' = None) -> 'ModuleSpec | None':
        if fullname != 'basicsr':
            return None
        remove_import_hook()
        for finder in sys.meta_path:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, 'find_spec') else None
            if spec is not None:
                # a package: BasicSR, not a user's basicsr.py
                if spec.loader is not None and spec.submodule_search_locations is not None:
                    spec.loader = _AttachingLoader(spec.loader, self.attach)
                return spec
        return None


def install_import_hook(attach) -> None:
    """Put the hook first on ``sys.meta_path`` (once); it calls ``attach()`` after basicsr is imported."""
    if not any(isinstance(finder, BasicsrImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, BasicsrImportHook(attach))


def remove_import_hook() -> None:
    """Take every ``BasicsrImportHook`` off ``sys.meta_path``."""
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, BasicsrImportHook)]
