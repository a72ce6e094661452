"""Import every plugin module of a sub-package so that its BasicSR registrations run.

Mirrors BasicSR's own scan (``basicsr/archs/__init__.py``): files named ``*_<suffix>.py``.
"""
import importlib
from pathlib import Path
from typing import List


def import_modules_with_suffix(package_name: str, package_file: str, suffix: str) -> List[str]:
    """Import ``<package_name>.<stem>`` for every ``<stem>.py`` ending in ``_<suffix>`` beside ``package_file``."""
    folder = Path(package_file).parent
    names = sorted(p.stem for p in folder.glob(f'*_{suffix}.py'))
    for name in names:
        importlib.import_module(f'{package_name}.{name}')
    return names
