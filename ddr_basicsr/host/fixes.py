"""Fixes for what basicsr 1.4.2 gets wrong on today's stack (see the project's notes on BasicSR as a host).

``apply()`` installs them into the imported basicsr modules; ``ddr-train`` and ``ddr-test`` call it.
Nothing is written to basicsr's files and applying twice is harmless.

* Option files are read with a *safe* YAML loader that keeps key order; python tags
  (``!!python/object/apply:...``) are rejected instead of executed. ``--force_yml`` values are
  parsed with the same loader instead of ``eval``.
* Resuming works without CUDA (states are mapped to the CPU) and ``--auto_resume`` looks in the
  experiment's own ``training_states`` folder under the root path, not relative to the current directory.
* Distributed init picks NCCL when CUDA is available and gloo otherwise, binds each process to
  the GPU of its ``LOCAL_RANK``, and uses the ``fork`` start method on CPU-only machines (BasicSR
  forces ``spawn``, which re-imports torch in every data-loader worker of every epoch).
* ``DistributedDataParallel`` gets ``device_ids=None`` for CPU models.
"""
import logging
import multiprocessing
import os
from collections import OrderedDict
from os import path as osp
from typing import Any, Optional, Tuple

import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from ddr_basicsr import compat  # noqa: F401  (must precede any basicsr import)
import basicsr.train as basicsr_train  # noqa: E402
from basicsr.models.base_model import BaseModel  # noqa: E402
from basicsr.utils import check_resume, logger as basicsr_logger  # noqa: E402
from basicsr.utils import dist_util, options  # noqa: E402

_PYTHON_TAG_PREFIX = 'tag:yaml.org,2002:python/'


class OrderedSafeLoader(getattr(yaml, 'CSafeLoader', yaml.SafeLoader)):
    """Safe YAML loader that returns mappings as ``OrderedDict`` (BasicSR keeps key order)."""


class OrderedSafeDumper(getattr(yaml, 'CSafeDumper', yaml.SafeDumper)):
    """Safe YAML dumper that writes ``OrderedDict`` as a plain mapping."""


def _construct_ordered_mapping(loader: OrderedSafeLoader, node: yaml.MappingNode) -> OrderedDict:
    loader.flatten_mapping(node)
    return OrderedDict(loader.construct_pairs(node))


def _reject_python_tag(loader: OrderedSafeLoader, tag_suffix: str, node: yaml.Node) -> None:
    raise yaml.constructor.ConstructorError(
        None, None, f"the YAML tag '!!python/{tag_suffix}' is not allowed in option files: it would create Python "
        'objects or run code. ddr-basicsr reads option files with a safe loader; remove the tag (numbers in '
        "exponent form are written '!!float 1e-4')", node.start_mark)


OrderedSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_ordered_mapping)
OrderedSafeLoader.add_multi_constructor(_PYTHON_TAG_PREFIX, _reject_python_tag)
OrderedSafeDumper.add_representer(OrderedDict, lambda dumper, data: dumper.represent_dict(data.items()))


def ordered_yaml() -> Tuple[type, type]:
    """Drop-in for ``basicsr.utils.options.ordered_yaml``: the safe loader and dumper above."""
    return OrderedSafeLoader, OrderedSafeDumper


def load_yaml(path: str) -> OrderedDict:
    """Read an option file with the safe ordered loader."""
    with open(path, encoding='utf-8') as f:
        return yaml.load(f, Loader=OrderedSafeLoader)


def parse_force_yml_value(value: str) -> Any:
    """Parse one ``--force_yml key=value`` value like a YAML value (``none`` also means null).

    Replaces BasicSR's parser, which ``eval``s list values.
    """
    if value.strip().lower() == 'none':
        return None
    try:
        return yaml.load(value, Loader=OrderedSafeLoader)
    except yaml.YAMLError as error:
        raise ValueError(f'--force_yml: cannot parse the value {value!r} as YAML: {error}') from error


def latest_training_state(folder: str) -> Optional[str]:
    """Path of the ``<iter>.state`` file with the largest iteration in ``folder`` (None if there is none)."""
    if not osp.isdir(folder):
        return None
    iters = [int(name[:-len('.state')]) for name in os.listdir(folder)
             if name.endswith('.state') and name[:-len('.state')].isdigit()]
    return osp.join(folder, f'{max(iters)}.state') if iters else None


def _state_map_location(opt: dict) -> torch.device:
    if opt.get('num_gpu', 0) != 0 and torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def load_resume_state(opt: dict) -> Optional[dict]:
    """Drop-in for ``basicsr.train.load_resume_state`` that works without CUDA.

    With ``--auto_resume`` the newest state in ``opt['path']['training_states']`` (under the root
    path) is used; otherwise ``path.resume_state`` if set. Returns None when there is nothing to resume.
    """
    if opt['auto_resume']:
        state_path = latest_training_state(opt['path']['training_states'])
        if state_path is not None:
            opt['path']['resume_state'] = state_path
    else:
        state_path = opt['path'].get('resume_state')
    if state_path is None:
        return None
    if not osp.isfile(state_path):
        raise FileNotFoundError(f"path.resume_state: training state '{state_path}' does not exist "
                                f'(relative paths are resolved against the current directory {os.getcwd()})')
    resume_state = torch.load(state_path, map_location=_state_map_location(opt), weights_only=True)
    check_resume(opt, resume_state['iter'])
    return resume_state


def resolve_dist_backend(requested: str = 'nccl') -> str:
    """NCCL needs CUDA: fall back to gloo when CUDA is unavailable."""
    if requested == 'nccl' and not torch.cuda.is_available():
        return 'gloo'
    return requested


def _init_dist_pytorch(backend: str, **kwargs: Any) -> None:
    backend = resolve_dist_backend(backend)
    if backend == 'nccl':
        local_rank = int(os.environ.get('LOCAL_RANK', os.environ['RANK']))
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group(backend=backend, **kwargs)


def init_dist(launcher: str, backend: str = 'nccl', **kwargs: Any) -> None:
    """Drop-in for ``basicsr.utils.dist_util.init_dist``: gloo on CPU, the GPU of ``LOCAL_RANK`` on CUDA."""
    if multiprocessing.get_start_method(allow_none=True) is None:
        cpu_only = not torch.cuda.is_available()
        use_fork = cpu_only and 'fork' in multiprocessing.get_all_start_methods()
        multiprocessing.set_start_method('fork' if use_fork else 'spawn')
    if launcher == 'pytorch':
        _init_dist_pytorch(backend, **kwargs)
    elif launcher == 'slurm':
        if not torch.cuda.is_available():
            raise ValueError('--launcher slurm needs CUDA GPUs; on CPU use torchrun with --launcher pytorch')
        dist_util._init_dist_slurm(backend, **kwargs)
    else:
        raise ValueError(f"invalid launcher '{launcher}': use none, pytorch or slurm")


def model_to_device(self: BaseModel, net: nn.Module) -> nn.Module:
    """Drop-in for ``BaseModel.model_to_device``: DDP with ``device_ids=None`` for CPU models."""
    net = net.to(self.device)
    if self.opt['dist']:
        device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
        return DistributedDataParallel(
            net, device_ids=device_ids, find_unused_parameters=self.opt.get('find_unused_parameters', False))
    if self.opt['num_gpu'] > 1:
        return DataParallel(net)
    return net


def reset_root_logger(name: str = 'basicsr') -> None:
    """Forget BasicSR's logger set-up so that the next run in this process opens its own log file."""
    logger = logging.getLogger(name)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    basicsr_logger.initialized_logger.pop(name, None)


def apply() -> None:
    """Install all fixes into the imported basicsr modules (idempotent)."""
    options.ordered_yaml = ordered_yaml
    options._postprocess_yml_value = parse_force_yml_value
    options.init_dist = init_dist
    dist_util.init_dist = init_dist
    basicsr_train.load_resume_state = load_resume_state
    BaseModel.model_to_device = model_to_device
