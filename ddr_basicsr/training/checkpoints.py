"""Checkpoints that are whole or absent, never truncated, and resume that skips a damaged newest state.

BasicSR 1.4.2 writes ``net_g_<iter>.pth`` and ``<iter>.state`` in place, retries a failed write three times and
then only logs a warning, so a full disk leaves empty or partial files and a run that exits 0. Here:

* every checkpoint is serialised to a temporary file in the same folder, flushed to disk (fsync) and renamed
  over the target: a crash at any moment leaves the old file or the new one;
* a failed write is a :class:`CheckpointWriteError` naming the file (the previous file, if any, is kept);
* weights that are not finite are never written (:class:`NonFiniteWeightsError`);
* ``--auto_resume`` takes the newest *readable* state whose network files are readable too, and says which
  damaged ones it skipped.
"""
import io
import os
import re
from os import path as osp
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from ddr_basicsr.utils.atomic_files import atomic_path

STATE_NAME = re.compile(r'^(\d+)\.state$')
UNFINISHED_NAME = re.compile(r'^\..+\.partial-.+$')


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the previous file of that name, if any, is unchanged."""


class NonFiniteWeightsError(RuntimeError):
    """A network about to be saved holds NaN or Inf values."""


def _fsync_folder(folder: str) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # some file systems do not open folders; the rename itself is still atomic
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def serialise(obj: Any) -> bytes:
    """``obj`` as torch.save writes it (kept in memory so that a failed write leaves no partial target)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def write_checkpoint(obj: Any, path: str, write: Optional[Callable[[Any, bytes], None]] = None) -> None:
    """Write ``obj`` to ``path`` atomically and durably; raise :class:`CheckpointWriteError` on failure.

    ``write(stream, data)`` writes the bytes (default: ``stream.write``); the fault-injection harness replaces it.
    """
    data = serialise(obj)
    try:
        with atomic_path(path) as temporary:
            with open(temporary, 'wb') as stream:
                (write or _write_all)(stream, data)
                stream.flush()
                os.fsync(stream.fileno())
        _fsync_folder(osp.dirname(osp.abspath(path)))
    except OSError as error:
        previous = 'the previous file is kept' if osp.exists(path) else 'no file was left behind'
        raise CheckpointWriteError(f'could not write the checkpoint {path} ({error.strerror or error}); '
                                   f'{previous}. Free disk space (or fix the folder) and resume with '
                                   '--auto_resume.') from error


def _write_all(stream: Any, data: bytes) -> None:
    stream.write(data)


def check_finite_state_dict(state_dict: Dict[str, torch.Tensor], what: str) -> None:
    """Raise :class:`NonFiniteWeightsError` naming the first tensor of ``state_dict`` with NaN/Inf values."""
    for key, value in state_dict.items():
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise NonFiniteWeightsError(f'{what}: {key} holds NaN or Inf values; the weights are not saved so '
                                        'that the last good checkpoint stays the newest one')


def state_iteration(name: str) -> Optional[int]:
    """The iteration of a ``<iter>.state`` file name, else None."""
    match = STATE_NAME.match(name)
    return int(match.group(1)) if match else None


def training_states(folder: str) -> List[Tuple[int, str]]:
    """``(iteration, path)`` of the ``<iter>.state`` files in ``folder``, newest first."""
    if not osp.isdir(folder):
        return []
    found = [(state_iteration(name), osp.join(folder, name)) for name in os.listdir(folder)]
    return sorted(((it, p) for it, p in found if it is not None), reverse=True)


def remove_unfinished_files(folder: str) -> List[str]:
    """Delete the temporary files a killed write left in ``folder`` (``.<name>.partial-*``); return their names."""
    if not osp.isdir(folder):
        return []
    removed = [name for name in sorted(os.listdir(folder)) if UNFINISHED_NAME.match(name)]
    for name in removed:
        os.unlink(osp.join(folder, name))
    return removed


def unreadable_reason(path: str, map_location: Any = 'cpu') -> Optional[str]:
    """Why ``path`` cannot be loaded with ``weights_only=True`` (None when it can)."""
    if not osp.isfile(path):
        return 'missing'
    if osp.getsize(path) == 0:
        return 'empty (0 bytes)'
    try:
        torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for damaged files
        return f'{type(error).__name__}: {error}'.splitlines()[0]
    return None


def _non_finite_entry(obj: Any, where: str = '') -> Optional[str]:
    """The path of the first floating tensor inside ``obj`` (dicts, lists) that holds NaN or Inf, else None."""
    if torch.is_tensor(obj):
        return where or 'a tensor' if obj.is_floating_point() and not bool(torch.isfinite(obj).all()) else None
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        found = _non_finite_entry(value, f'{where}[{key!r}]')
        if found:
            return found
    return None


def state_problem(path: str) -> Optional[str]:
    """Why the training state ``path`` cannot be resumed: unreadable, not a training state (``iter`` an integer,
    ``optimizers`` / ``schedulers`` lists), or NaN/Inf in it (None when it can)."""
    reason = unreadable_reason(path)
    if reason is not None:
        return reason
    state = torch.load(path, map_location='cpu', weights_only=True, mmap=True)  # read, not copied, into memory
    if not isinstance(state, dict) or not isinstance(state.get('iter'), int) or isinstance(state.get('iter'), bool) \
            or not isinstance(state.get('optimizers'), list) or not isinstance(state.get('schedulers'), list):
        return ('not a training state (it needs an integer iter and lists of optimizers and schedulers, as '
                'BasicSR saves them)')
    found = _non_finite_entry(state.get('optimizers'), 'optimizers')
    return f'{found} holds NaN or Inf values' if found else None


def network_problem(path: str) -> Optional[str]:
    """Why the network file ``path`` cannot be resumed from: unreadable, not a mapping, or NaN/Inf weights."""
    reason = unreadable_reason(path)
    if reason is not None:
        return reason
    network = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    if not isinstance(network, dict):
        return f'a {type(network).__name__}, not a state dict'
    found = _non_finite_entry(network)
    return f'{found} holds NaN or Inf values' if found else None


def newest_readable_state(states_folder: str, models_folder: str, network_labels: List[str],
                          report: Callable[[str], None]) -> Optional[str]:
    """Path of the newest ``<iter>.state`` that loads, is a finite training state, and whose
    ``net_<label>_<iter>.pth`` files load with finite weights.

    Each damaged candidate is named through ``report`` with the reason; None when no state is usable.
    """
    for iteration, state_path in training_states(states_folder):
        reason = state_problem(state_path)
        if reason is None:
            networks = [osp.join(models_folder, f'net_{label}_{iteration}.pth') for label in network_labels]
            damaged = [(network, network_problem(network)) for network in networks]
            damaged = [(network, why) for network, why in damaged if why is not None]
            if not damaged:
                return state_path
            reason = '; '.join(f'its network {network} is {why}' for network, why in damaged)
        report(f'--auto_resume: skipping the training state {state_path}: {reason}')
    return None
