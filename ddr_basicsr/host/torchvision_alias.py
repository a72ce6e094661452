"""Make basicsr 1.4.2 importable on torchvision >= 0.17.

basicsr imports ``torchvision.transforms.functional_tensor``, which torchvision 0.17 renamed to
``_functional_tensor``. Registering the new module under the old name is enough; no basicsr
file is edited. Installing it twice is harmless.
"""
import importlib
import sys

OLD_NAME = 'torchvision.transforms.functional_tensor'


def install_torchvision_alias() -> None:
    """Alias ``functional_tensor`` to ``_functional_tensor`` when torchvision lacks the old name."""
    if OLD_NAME in sys.modules:
        return
    try:
        importlib.import_module(OLD_NAME)
    except ModuleNotFoundError:
        sys.modules[OLD_NAME] = importlib.import_module('torchvision.transforms._functional_tensor')
