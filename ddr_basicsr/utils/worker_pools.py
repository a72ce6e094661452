"""Process pools that are safe to start after torch has run (NIQE scoring, dataset preparation, benchmarks).

A process forked after torch ran an operator on several threads inherits GNU OpenMP's bookkeeping but
not its threads: its first multi-threaded operator then waits forever for them (libgomp). Workers here
are forked (cheap: they inherit the imported modules) where the platform can fork, else spawned, and each
sets torch to one thread before it runs anything, as PyTorch's DataLoader workers do. One thread per
worker is also what a pool of N workers on N cores wants.
"""
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext

__all__ = ['limit_worker_threads', 'worker_context', 'worker_executor']


def limit_worker_threads() -> None:
    """Pool initializer: one OpenMP/torch thread in this worker (see the module docstring)."""
    os.environ['OMP_NUM_THREADS'] = '1'  # libraries that start OpenMP later in the worker
    torch = sys.modules.get('torch')  # a worker of a process that never imported torch does not need it
    if torch is not None:
        torch.set_num_threads(1)


def worker_context() -> BaseContext:
    """'fork' where the platform has it, else 'spawn'."""
    return multiprocessing.get_context('fork' if 'fork' in multiprocessing.get_all_start_methods() else 'spawn')


def worker_executor(workers: int) -> ProcessPoolExecutor:
    """A process pool of ``workers`` processes, each limited to one thread before it runs a task.

    Unlike ``multiprocessing.Pool``, a worker that dies (out of memory, killed) fails the pending tasks with
    ``BrokenProcessPool`` instead of leaving the caller waiting forever.
    """
    return ProcessPoolExecutor(max_workers=workers, mp_context=worker_context(), initializer=limit_worker_threads)
