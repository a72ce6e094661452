"""Optimizers and learning-rate schedules of the plugin's models: any ``torch.optim`` optimizer by class name,
the NAFNet / Restormer schedules (:mod:`.lr_scheduler`), BasicSR's own, or any ``torch.optim.lr_scheduler`` class.

:func:`check_optimizer_choices` runs with the option checks, before anything is written; the models build with
:class:`OptimizerChoicesMixin`.
"""
import difflib
from typing import Mapping, Optional

import torch

from ddr_basicsr.models.lr_scheduler import SCHEDULERS
from ddr_basicsr.training.option_checks import check_numeric_strings

BASICSR_SCHEDULERS = ('MultiStepLR', 'MultiStepRestartLR', 'CosineAnnealingRestartLR')
OPTIMIZER_SECTIONS = ('optim_g', 'optim_d')


def optimizer_class(name: str) -> Optional[type]:
    """The ``torch.optim`` optimizer class called ``name`` (None when there is none)."""
    cls = getattr(torch.optim, str(name), None)
    return cls if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) else None


def scheduler_class(name: str) -> Optional[type]:
    """The plugin's or ``torch.optim.lr_scheduler``'s schedule called ``name`` (None when there is none)."""
    cls = SCHEDULERS.get(name) or getattr(torch.optim.lr_scheduler, str(name), None)
    return cls if isinstance(cls, type) and issubclass(cls, torch.optim.lr_scheduler.LRScheduler) else None


def _close(name: str, choices) -> str:
    match = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.7)
    return f" (did you mean '{match[0]}'?)" if match else ''


def check_optimizer_choices(train_opt: Mapping, plugin_model: bool) -> None:
    """``train.optim_*`` and ``train.scheduler`` name optimizers and schedules the model builds (BasicSR's own
    models: Adam and BasicSR's schedules only)."""
    optimizers = [n for n in dir(torch.optim) if optimizer_class(n)] if plugin_model else ['Adam']
    for section in OPTIMIZER_SECTIONS:
        block = train_opt.get(section)
        if isinstance(block, Mapping):
            name = block.get('type')
            if (optimizer_class(name) is None) if plugin_model else name != 'Adam':
                raise ValueError(f"unknown optimizer '{name}' in train.{section}{_close(name, optimizers)}; "
                                 + ('use a torch.optim class name such as AdamW, Adam or SGD' if plugin_model else
                                    "BasicSR's models build only Adam (the plugin's models take any torch.optim "
                                    'optimizer)'))
            check_numeric_strings(f'train.{section}', block)
    block = train_opt.get('scheduler')
    if isinstance(block, Mapping) and block:
        name = block.get('type')
        known = [*SCHEDULERS, *BASICSR_SCHEDULERS] if plugin_model else list(BASICSR_SCHEDULERS)
        if name not in BASICSR_SCHEDULERS and (not plugin_model or scheduler_class(name) is None):
            raise ValueError(f"unknown scheduler '{name}' in train.scheduler{_close(name, known)}; use one of "
                             f"{', '.join(known)}" + (' or a torch.optim.lr_scheduler class name' if plugin_model
                                                      else ''))
        check_numeric_strings('train.scheduler', block)


class OptimizerChoicesMixin:
    """``get_optimizer`` and ``setup_schedulers`` of the plugin's models (module docstring)."""

    def get_optimizer(self, optim_type: str, params, lr: float, **kwargs) -> torch.optim.Optimizer:
        """Any ``torch.optim`` optimizer by class name (AdamW, Adam, SGD, ...)."""
        optimizer_cls = optimizer_class(optim_type)
        if optimizer_cls is None:
            raise ValueError(f"unknown optimizer '{optim_type}' in train.optim_g; use a torch.optim class name "
                             'such as AdamW, Adam or SGD')
        check_numeric_strings('train.optim_g', {'lr': lr, **kwargs})
        return optimizer_cls(params, lr=lr, **kwargs)

    def setup_schedulers(self) -> None:
        """The plugin's schedules, BasicSR's own, or any ``torch.optim.lr_scheduler`` class by name."""
        scheduler_opt = dict(self.opt['train'].get('scheduler') or {})
        if not scheduler_opt:
            return
        scheduler_type = scheduler_opt.pop('type', None)
        if scheduler_type in BASICSR_SCHEDULERS:
            super().setup_schedulers()
            return
        scheduler_cls = scheduler_class(scheduler_type)
        if scheduler_cls is None:
            known = ', '.join([*SCHEDULERS, *BASICSR_SCHEDULERS])
            raise ValueError(f"unknown scheduler '{scheduler_type}' in train.scheduler; use one of {known} or a "
                             'torch.optim.lr_scheduler class name')
        check_numeric_strings('train.scheduler', scheduler_opt)
        self.schedulers = [scheduler_cls(optimizer, **scheduler_opt) for optimizer in self.optimizers]
