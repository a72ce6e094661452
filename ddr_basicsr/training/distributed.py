"""Distributed set-up of plugin runs: NCCL with CUDA, gloo without it.

BasicSR 1.4.2 always asks for NCCL and binds each process to ``RANK % device_count``, which divides by zero on
CPU-only machines, and forces the ``spawn`` start method, which re-imports torch in every data-loader worker of
every epoch. Plugin runs use :func:`init_dist` instead (called by their ``parse_options``); DDP of CPU models is
handled by the plugin's models (``device_ids=None``).
"""
import multiprocessing
import os
from typing import Any

import torch
import torch.distributed as dist


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
    """BasicSR's ``init_dist`` for plugin runs: gloo on CPU, the GPU of ``LOCAL_RANK`` on CUDA, ``fork`` workers
    on CPU-only machines."""
    from basicsr.utils import dist_util
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
