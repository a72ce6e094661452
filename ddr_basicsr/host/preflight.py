"""Checks that run before a training or test run writes or renames anything.

* **Weights**: every loss block is built (and kept for the model, see :func:`take_prebuilt_loss`) and every
  validation metric that needs weights (``calculate_ddr``: CLIP) loads them, so missing CLIP/VGG weights stop the
  run at start, not at the first validation hours in, and never after BasicSR has archived the previous
  experiment folder.
* **Data** (training runs; ``--skip-data-check`` turns it off): every image of the training and validation sets
  on disk is opened at header level (in threads, with progress) and every LQ/GT pair is checked against the
  scale; lmdb sets are checked by key count and by decoding one sample. All problems are listed in one error.
"""
import copy
import os
import time
from concurrent.futures import ThreadPoolExecutor
from os import path as osp
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from basicsr.utils.registry import DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY
from PIL import Image

from ddr_basicsr.training import tell
from ddr_basicsr.training.loss_blocks import PREBUILT_LOSSES, loss_block_key

SKIP_DATA_CHECK_FLAG = '--skip-data-check'
LISTED_PROBLEMS = 40
PROGRESS_SECONDS = 5.0


class DataCheckError(ValueError):
    """The pre-flight found unreadable images or mismatched pairs; the message lists them."""


def resolve_weights(opt: dict, is_train: bool) -> None:
    """Build every loss block of ``train`` (kept for the model) and prepare every validation metric that loads
    weights."""
    PREBUILT_LOSSES.clear()
    if is_train:
        for key, block in (opt.get('train') or {}).items():
            if key.endswith('_opt') and isinstance(block, dict) and block.get('type'):
                options = copy.deepcopy(block)
                loss_cls = LOSS_REGISTRY.get(options.pop('type'))
                try:
                    PREBUILT_LOSSES[loss_block_key(block)] = loss_cls(**options)
                except (OSError, RuntimeError, ValueError, TypeError) as error:
                    raise type(error)(f'train.{key} ({loss_cls.__name__}) cannot be built: {error}') from error
    for name, metric in ((opt.get('val') or {}).get('metrics') or {}).items():
        options = dict(metric)
        resolve = getattr(METRIC_REGISTRY.get(options.pop('type')), 'resolve_weights', None)
        if resolve is not None:
            try:
                resolve(**options)
            except (OSError, RuntimeError, ValueError) as error:
                raise type(error)(f'val.metrics.{name}: {error}') from error


def image_size(path: str) -> Tuple[Optional[Tuple[int, int]], Optional[str]]:
    """``((width, height), None)`` from the image header, or ``(None, reason)`` when it cannot be read."""
    try:
        if os.path.getsize(path) == 0:
            return None, 'empty file (0 bytes)'
        with Image.open(path) as image:
            return image.size, None
    except FileNotFoundError:
        return None, 'missing'
    except Exception as error:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
        return None, f'unreadable ({type(error).__name__}: {error})'


def _with_progress(paths: Sequence[str], label: str, workers: int) -> Dict[str, Tuple]:
    sizes: Dict[str, Tuple] = {}
    started = last = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, (path, result) in enumerate(zip(paths, pool.map(image_size, paths)), 1):
            sizes[path] = result
            now = time.monotonic()
            if now - last > PROGRESS_SECONDS:
                tell(f'data check {label}: {done}/{len(paths)} images ({done / (now - started):.0f}/s)')
                last = now
    return sizes


def _entries(dataset) -> List[Dict[str, str]]:
    """``{'lq_path': ..., 'gt_path': ...}``-like entries of a BasicSR dataset (paths of disk datasets)."""
    entries = []
    for entry in getattr(dataset, 'paths', None) or []:
        if isinstance(entry, dict):
            entries.append({key: value for key, value in entry.items() if key.endswith('_path')})
        elif isinstance(entry, str):
            entries.append({'path': entry})
    return entries


def check_disk_dataset(label: str, entries: List[Dict[str, str]], scale: int, workers: int,
                       gt_size: Optional[int] = None, min_output_side: int = 0) -> List[str]:
    """Problems of a disk dataset: no images, unreadable/empty images, LQ/GT pairs whose sizes do not match
    ``scale``, GT images smaller than the training crop ``gt_size``, and outputs (GT size) with a side below
    ``min_output_side`` (a validation metric that cannot score them)."""
    if not entries:
        return [f'{label}: the dataset is empty (no images in its folders)']
    paths = sorted({path for entry in entries for path in entry.values()})
    sizes = _with_progress(paths, label, workers)
    problems = [f'{path}: {reason}' for path, (_, reason) in sizes.items() if reason]
    for entry in entries:
        lq, gt = sizes.get(entry.get('lq_path'), (None, ))[0], sizes.get(entry.get('gt_path'), (None, ))[0]
        if lq and gt and (lq[0] * scale, lq[1] * scale) != gt:
            problems.append(f"{entry['lq_path']} ({lq[0]}x{lq[1]}) does not match {entry['gt_path']} "
                            f'({gt[0]}x{gt[1]}) at scale {scale}')
        if gt and gt_size and min(gt) < gt_size:
            problems.append(f"{entry['gt_path']} ({gt[0]}x{gt[1]}) is smaller than {label}.gt_size = {gt_size}, "
                            'the training crop: lower gt_size or remove the image')
        if gt and min(gt) < min_output_side:
            problems.append(f"{entry['gt_path']} ({gt[0]}x{gt[1]}): calculate_ddr needs both sides of the output "
                            f'to be at least {min_output_side} px; remove the image or the metric')
    return problems


def check_lmdb_folders(dataset_opt: dict) -> List[str]:
    """Problems of the lmdb folders of a dataset: missing meta_info.txt, key count differing from it."""
    import lmdb
    problems = []
    for key, value in dataset_opt.items():
        if not key.startswith('dataroot_') or value is None:
            continue
        meta = osp.join(value, 'meta_info.txt')
        if not osp.isfile(meta):
            problems.append(f'{value}: no meta_info.txt (an lmdb folder made by the preparation scripts has one)')
            continue
        with open(meta, encoding='utf-8') as stream:
            expected = sum(1 for line in stream if line.strip())
        with lmdb.open(value, readonly=True, lock=False, readahead=False) as env:
            stored = env.stat()['entries']
        if stored != expected:
            problems.append(f'{value}: {stored} images stored but meta_info.txt lists {expected}')
    return problems


def check_first_sample(label: str, dataset) -> List[str]:
    """The first sample of ``dataset`` decodes (the lmdb sample check)."""
    if not len(dataset):
        return [f'{label}: the dataset is empty']
    try:
        dataset[0]
    except Exception as error:  # the decoders raise many types
        return [f'{label}: the first sample does not load ({type(error).__name__}: {error})']
    return []


def ddr_metric_min_side(opt: Mapping) -> int:
    """The smallest image side ``calculate_ddr`` scores when it is a validation metric of ``opt`` (else 0)."""
    metrics = ((opt.get('val') or {}).get('metrics') or {}).values()
    if not any(isinstance(metric, Mapping) and metric.get('type') == 'calculate_ddr' for metric in metrics):
        return 0
    from ddr_basicsr.core.ddr import MIN_IMAGE_SIDE
    return MIN_IMAGE_SIDE


def check_network_files(opt: Mapping, is_train: bool) -> None:
    """Each ``path.pretrain_network_<label>`` loads as BasicSR loads it (a mapping holding ``param_key_<label>``, or
    ``params``); a test run of the plugin's models needs ``pretrain_network_g``. Errors name the file and the fix."""
    from ddr_basicsr.training.checkpoints import unreadable_reason
    path_opt = opt.get('path') or {}
    if not is_train and not path_opt.get('pretrain_network_g'):
        raise ValueError('path.pretrain_network_g is not set: the test would evaluate a randomly initialised '
                         'network; set it to the trained net_g_<iter>.pth (or net_g_latest.pth)')
    if path_opt.get('resume_state') or opt.get('auto_resume'):
        return  # the networks of the resumed state are checked with it
    for label in (key[len('network_'):] for key in opt if key.startswith('network_')):
        path = path_opt.get(f'pretrain_network_{label}')
        if not path:
            continue
        where = f'path.pretrain_network_{label}'
        reason = unreadable_reason(path)
        if reason is not None:
            raise ValueError(f"{where}: '{path}' cannot be read ({reason}); point it at a network file written by "
                             "torch.save({'params': net.state_dict()}, path)")
        import torch
        checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
        param_key = path_opt.get(f'param_key_{label}', 'params')
        if not isinstance(checkpoint, Mapping):
            raise ValueError(f"{where}: '{path}' holds a {type(checkpoint).__name__}, not a state dict; re-save it "
                             "with torch.save({'params': net.state_dict()}, path)")
        if param_key is not None and param_key not in checkpoint and 'params' not in checkpoint:
            keys = ', '.join(list(map(str, checkpoint))[:5])
            raise ValueError(f"{where}: '{path}' has no '{param_key}' entry (its keys: {keys}); for a bare state "
                             f'dict set path.param_key_{label}: ~')


def check_data(opt: dict, workers: int = 8) -> None:
    """Run the pre-flight over every dataset of ``opt``; raise :class:`DataCheckError` listing all problems."""
    problems: List[str] = []
    for phase, dataset_opt in (opt.get('datasets') or {}).items():
        label = f'datasets.{phase}'
        options = copy.deepcopy(dataset_opt)
        options.setdefault('phase', phase.split('_')[0])
        options.setdefault('scale', opt.get('scale', 1))
        backend = (options.get('io_backend') or {}).get('type', 'disk')
        if backend == 'lmdb':
            lmdb_problems = check_lmdb_folders(options)
            if lmdb_problems:
                problems += lmdb_problems
                continue
        try:
            dataset = DATASET_REGISTRY.get(options['type'])(options)
        except Exception as error:  # dataset constructors assert and raise many types on bad folders
            problems.append(f'{label}: the dataset cannot be built ({type(error).__name__}: {error})')
            continue
        if backend == 'lmdb':
            problems += check_first_sample(label, dataset)
        elif backend == 'disk':
            entries = _entries(dataset)
            is_train = options['phase'] == 'train'
            problems += check_disk_dataset(
                label, entries, int(options.get('scale', 1)), workers,
                gt_size=options.get('gt_size') if is_train and options['type'] == 'PairedImageDataset' else None,
                min_output_side=0 if is_train else ddr_metric_min_side(opt))
            tell(f'data check {label}: {len({p for e in entries for p in e.values()})} images checked')
    if problems:
        raise DataCheckError(describe_problems(problems))


def describe_problems(problems: Iterable[str]) -> str:
    """One error message listing the data problems (the first ``LISTED_PROBLEMS`` of them)."""
    problems = list(problems)
    listed = '\n  '.join(problems[:LISTED_PROBLEMS])
    more = f'\n  ... and {len(problems) - LISTED_PROBLEMS} more' if len(problems) > LISTED_PROBLEMS else ''
    return (f'the data check found {len(problems)} problem(s) before training:\n  {listed}{more}\n'
            f'Fix or remove these files (or run with {SKIP_DATA_CHECK_FLAG} to train anyway).')
