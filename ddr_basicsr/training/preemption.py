"""Preemption: SIGTERM / SIGINT during training save a training state and exit with ``PREEMPTED_EXIT_STATUS``.

The first signal is noted; data-loader workers ignore it (:class:`IgnoringStopSignals`: SLURM signals the whole
process group); the step in flight finishes (with its logging, checkpoint and validation), then a
complete training state of that iteration is saved, logged, and the process exits with status 75 (``EX_TEMPFAIL``:
"try again"; run again with ``--auto_resume``). A second signal ends the process at once. In distributed runs
the ranks agree on the stop each iteration (one tiny all-reduce), so all of them stop after the same iteration.
"""
import os
import signal
from types import FrameType
from typing import Callable, Optional

import torch
import torch.distributed as dist
from basicsr.utils import get_root_logger

from ddr_basicsr.training import tell
from ddr_basicsr.training.resume import TRAINING

PREEMPTED_EXIT_STATUS = 75
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingPreempted(SystemExit):
    """Raised after the state of the current iteration was saved on SIGTERM/SIGINT."""

    def __init__(self, message: str) -> None:
        super().__init__(PREEMPTED_EXIT_STATUS)
        self.message = message


def _on_stop_signal(signum: int, frame: Optional[FrameType]) -> None:
    name = signal.Signals(signum).name
    if TRAINING.stop_signal is not None:
        tell(f'second {name}: stopping at once, without saving')
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    TRAINING.stop_signal = name
    tell(f'{name} received: the current iteration finishes, then a training state is saved and the run exits with '
         f'status {PREEMPTED_EXIT_STATUS} (send it again to stop at once)')


_previous_handlers: dict = {}


def install_stop_handlers() -> None:
    """Catch SIGTERM/SIGINT in the main thread of the training process (elsewhere signals cannot be caught);
    :func:`restore_stop_handlers` puts the previous handlers back."""
    TRAINING.stop_signal = None
    try:
        for signum in STOP_SIGNALS:
            _previous_handlers.setdefault(signum, signal.signal(signum, _on_stop_signal))
    except ValueError:  # not the main thread: leave the defaults
        pass


def restore_stop_handlers() -> None:
    """Put back the handlers :func:`install_stop_handlers` replaced (``ddr-train`` does when its run returns)."""
    for signum, handler in list(_previous_handlers.items()):
        signal.signal(signum, handler)
        del _previous_handlers[signum]
    TRAINING.stop_signal = None


class IgnoringStopSignals:
    """A data-loader ``worker_init_fn`` that makes the worker ignore SIGTERM / SIGINT, then runs ``then``.

    SLURM (``--signal=TERM@...``) and Ctrl-C signal the whole process group: the loader's workers must live on
    until the main process has finished its iteration and saved the training state; it ends them itself."""

    def __init__(self, then: Optional[Callable[[int], None]] = None) -> None:
        self.then = then

    def __call__(self, worker_id: int) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        if self.then is not None:
            self.then(worker_id)


def stop_requested() -> bool:
    """Whether any rank got a stop signal (all ranks get the same answer)."""
    requested = TRAINING.stop_signal is not None
    if dist.is_available() and dist.is_initialized():
        device = 'cuda' if dist.get_backend() == 'nccl' else 'cpu'
        flag = torch.tensor([int(requested)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        requested = bool(flag.item())
    return requested


def save_and_stop(model, current_iter: int) -> None:
    """Save the state after ``current_iter`` and raise :class:`TrainingPreempted`."""
    epoch = TRAINING.sampler.epoch if TRAINING.sampler is not None else 0
    logger = get_root_logger()
    logger.info(f'{TRAINING.stop_signal or "stop signal"}: saving models and training state at iter {current_iter}')
    model.save(epoch, current_iter)
    message = (f'training stopped by {TRAINING.stop_signal or "a signal"} after iteration {current_iter}; its state is '
               f'saved: continue with --auto_resume (exit status {PREEMPTED_EXIT_STATUS})')
    logger.info(message)
    tell(message)
    raise TrainingPreempted(message)
