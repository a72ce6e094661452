"""basicsr 1.4.2's Real-ESRGAN training models on a CPU, for the plugin's own variants of them.

basicsr 1.4.2's RealESRNetModel and RealESRGANModel put their JPEG and USM modules and their training-pair queue
on the GPU with ``.cuda()``, and their ``filter2D`` calls ``view`` on a reflect-padded tensor, which the CPU leaves
channels-last after DiffJPEG. :func:`on_device` makes both work on a CPU while one of the plugin's models runs its
own ``__init__`` or ``feed_data``: ``.cuda()`` moves to the model's device and ``filter2D`` gets a contiguous input.
On a GPU nothing changes; outside that block nothing changes either (these are the only BasicSR names the plugin
rebinds besides the table of :mod:`ddr_basicsr.host.seam`, and only for the duration of its own models' calls).
"""
import sys
from contextlib import contextmanager
from typing import Any, Iterator, List, Tuple

import torch
from torch import nn


def _filter2d_modules(model_cls: type) -> List[Any]:
    """The basicsr modules of ``model_cls``'s bases that call ``filter2D``."""
    modules = [sys.modules.get(cls.__module__) for cls in model_cls.__mro__ if cls.__module__.startswith('basicsr.')]
    return [module for module in dict.fromkeys(modules) if module is not None and hasattr(module, 'filter2D')]


@contextmanager
def on_device(model_cls: type, device: torch.device) -> Iterator[None]:
    """Within the block, ``.cuda()`` moves to ``device`` and ``filter2D`` takes contiguous images (CPU only)."""
    if device.type == 'cuda':
        yield
        return
    saved_cuda = torch.Tensor.cuda, nn.Module.cuda
    saved_filters: List[Tuple[Any, Any]] = [(module, module.filter2D) for module in _filter2d_modules(model_cls)]
    torch.Tensor.cuda = lambda self, *args, **kwargs: self.to(device)
    nn.Module.cuda = lambda self, *args, **kwargs: self.to(device)
    for module, stock in saved_filters:
        module.filter2D = lambda img, kernel, stock=stock: stock(img.contiguous(), kernel)
    try:
        yield
    finally:
        torch.Tensor.cuda, nn.Module.cuda = saved_cuda
        for module, stock in saved_filters:
            module.filter2D = stock
