"""Opt-in: let stock BasicSR (``python basicsr/train.py``, ``python -m basicsr.train``) load ddr-basicsr.

    python -m ddr_basicsr.basicsr_plugin_hook install      # writes ddr_basicsr_plugin.pth into site-packages
    python -m ddr_basicsr.basicsr_plugin_hook uninstall

The ``.pth`` file loads this module (by file path, as ``ddr_basicsr_plugin_hook``, without importing torch
or the package) at every interpreter start. It puts a one-shot finder in front of ``sys.meta_path``: when
``basicsr`` is first imported, the torchvision alias is installed before basicsr runs, and afterwards
``ddr_basicsr`` is imported (registering its archs, losses, models and metrics) and the host fixes are
applied. Interpreters that never import basicsr pay nothing else. Set ``DDR_BASICSR_PLUGIN=0`` to switch it
off for one command.

Stock ``train.py`` keeps its own ``root_path`` (the parent of the basicsr package) and its own
``load_resume_state`` (which needs CUDA); ``ddr-train`` fixes both and is the recommended entry point.
"""
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import sysconfig
from typing import Optional

HOOK_MODULE_NAME = 'ddr_basicsr_plugin_hook'
PTH_NAME = 'ddr_basicsr_plugin.pth'
DISABLE_VARIABLE = 'DDR_BASICSR_PLUGIN'
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _load_file(name: str, path: str):
    """Import the file ``path`` as module ``name`` without importing its package."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class _PluginLoader(importlib.abc.Loader):
    """Wraps basicsr's own loader: torchvision alias first, then basicsr, then the plugin."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def __getattr__(self, name: str):  # get_data, get_filename, is_package, ... of the real loader
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        _load_file('_ddr_basicsr_torchvision_alias', os.path.join(_PACKAGE_DIR, 'compat.py'))
        self.loader.exec_module(module)
        if 'ddr_basicsr' in sys.modules:  # the plugin itself is importing basicsr: it registers on its own
            return
        importlib.import_module('ddr_basicsr')
        importlib.import_module('ddr_basicsr.host_fixes').apply()


class BasicsrFinder(importlib.abc.MetaPathFinder):
    """One-shot finder that hands ``basicsr`` to ``_PluginLoader``."""

    def find_spec(self, fullname: str, path=None, target=None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname != 'basicsr':
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _PluginLoader(spec.loader)
        return spec


def activate() -> None:
    """Install the finder unless basicsr is already imported or ``DDR_BASICSR_PLUGIN=0``."""
    if os.environ.get(DISABLE_VARIABLE, '1') == '0' or 'basicsr' in sys.modules:
        return
    if not any(isinstance(finder, BasicsrFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, BasicsrFinder())


def pth_line(hook_path: str) -> str:
    """The one line of the ``.pth`` file: load this file as ``ddr_basicsr_plugin_hook`` if it still exists."""
    return (f'import importlib.util as u, os, sys; p = {hook_path!r}; s = os.path.isfile(p) and '
            f'u.spec_from_file_location({HOOK_MODULE_NAME!r}, p); m = s and u.module_from_spec(s); '
            f's and sys.modules.setdefault(s.name, m); s and s.loader.exec_module(m)\n')


def install(site_dir: Optional[str] = None) -> str:
    """Write the ``.pth`` file (atomically) into ``site_dir`` (default: this environment's site-packages)."""
    site_dir = site_dir or sysconfig.get_paths()['purelib']
    target = os.path.join(site_dir, PTH_NAME)
    from ddr_basicsr.atomic_files import write_text_atomically  # here, not at interpreter start-up
    write_text_atomically(target, pth_line(os.path.abspath(__file__)))
    return target


def uninstall(site_dir: Optional[str] = None) -> Optional[str]:
    """Remove the ``.pth`` file; returns its path, or None if it was not installed."""
    target = os.path.join(site_dir or sysconfig.get_paths()['purelib'], PTH_NAME)
    if not os.path.exists(target):
        return None
    os.remove(target)
    return target


def main(argv: Optional[list] = None) -> None:
    import argparse
    parser = argparse.ArgumentParser(description='Make stock BasicSR load ddr-basicsr (opt-in .pth hook).')
    parser.add_argument('action', choices=('install', 'uninstall'))
    parser.add_argument('--site-dir', default=None, help='folder for the .pth file (default: site-packages)')
    args = parser.parse_args(argv)
    if args.action == 'install':
        print(f'installed {install(args.site_dir)}')
    else:
        removed = uninstall(args.site_dir)
        print(f'removed {removed}' if removed else 'the hook was not installed')


if __name__ == HOOK_MODULE_NAME:
    activate()
elif __name__ == '__main__':
    main()
