"""Measurement helpers of the benchmark scripts: device synchronisation, timing, peak memory, the NAFNet
training step they time, and the blind-IQA speed benchmark.

Times are wall-clock milliseconds with the device synchronised before and after each measured block.
"""
import argparse
import functools
import os
import tempfile
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from ddr_basicsr.cli_options import add_model_arguments, ddr_from_arguments
from ddr_basicsr.ddr import DDR
from ddr_basicsr.image_io import decode_image, read_image, to_tensor
from ddr_basicsr.iqa.scoring import iter_quality_scores, score_images
from ddr_basicsr.worker_pools import worker_executor

#: NAFNet's GoPro layout (NAFNet-width64.yml without the width).
NAFNET_GOPRO = {'type': 'NAFNet', 'enc_blk_nums': [1, 1, 1, 28], 'middle_blk_num': 1, 'dec_blk_nums': [1, 1, 1, 1]}


# --------------------------------------------------------------------------- timing
def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a no-op off CUDA)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def elapsed_ms(function: Callable[[], object], device: torch.device, calls: int = 1) -> float:
    """Milliseconds of ``calls`` back-to-back calls of ``function``."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        function()
    synchronize(device)
    return (time.perf_counter() - start) * 1000


def time_runs(functions: Dict[str, Callable[[], object]], device: torch.device, repeats: int,
              warmup: int = 2) -> Dict[str, List[float]]:
    """{name: ms of each run}: after ``warmup`` runs each, the functions run in turn, so drifts hit all alike."""
    for function in functions.values():
        for _ in range(warmup):
            function()
    times: Dict[str, List[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            times[name].append(elapsed_ms(function, device))
    return times


def time_interleaved(functions: Dict[str, Callable[[], object]], device: torch.device, repeats: int,
                     warmup: int = 2) -> Dict[str, float]:
    """{name: median ms} of :func:`time_runs`."""
    return {name: sorted(values)[len(values) // 2]
            for name, values in time_runs(functions, device, repeats, warmup).items()}


def time_call(function: Callable[[], object], device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median ms of ``function``: :func:`time_interleaved` of one function."""
    return time_interleaved({'call': function}, device, repeats, warmup)['call']


# --------------------------------------------------------------------------- memory
def _proc_status_kib(field: str) -> int:
    with open('/proc/self/status') as handle:
        return int(next(line for line in handle if line.startswith(field + ':')).split()[1])


class PeakMemory:
    """Peak memory (MiB) of the code run between :meth:`start` and :meth:`stop`.

    On CUDA, ``torch.cuda.max_memory_allocated``, less what was allocated at ``start`` when ``relative``.
    Elsewhere, with ``cpu_rss``, the rise of the process's peak resident size (Linux only; rough, includes
    allocator caching); otherwise no figure (None).
    """

    def __init__(self, device: torch.device, relative: bool = True, cpu_rss: bool = False) -> None:
        self.device = device
        self.relative = relative
        self.cpu_rss = cpu_rss
        self.baseline: Optional[int] = None

    def start(self) -> None:
        self.baseline = None
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device) if self.relative else 0
        elif self.cpu_rss:
            try:
                with open('/proc/self/clear_refs', 'w') as handle:  # resets the peak resident size (Linux)
                    handle.write('5')
                self.baseline = _proc_status_kib('VmRSS') * 1024 if self.relative else 0
            except OSError:
                pass

    def stop(self) -> Optional[float]:
        """MiB at peak since :meth:`start`, or None where there is no figure."""
        if self.baseline is None:
            return None
        if self.device.type == 'cuda':
            synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = _proc_status_kib('VmHWM') * 1024
        return (peak - self.baseline) / 2 ** 20


def mib_text(mib: Optional[float]) -> str:
    """``mib`` rounded to a whole number, or 'n/a'."""
    return 'n/a' if mib is None else f'{mib:.0f}'


def device_description(device: torch.device) -> str:
    """The GPU's name, or the CPU and its thread count."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'CPU, {torch.get_num_threads()} threads'


# --------------------------------------------------------------------------- NAFNet training step
def nafnet_training_options(device: str, width: int, loss_set: str, precision: str, clip_model: str = 'ViT-B-32',
                            clip_pretrained: Optional[str] = None, ddr_precision: str = 'auto') -> dict:
    """BasicSR option dict of a RestorationModel as in the paper's NAFNet training (Sec. 4.1).

    ``loss_set``: 'psnr' or 'psnr+ddr' (PSNR + 2.0 DDR); ``precision``: the network's (fp32 or bf16 autocast);
    ``ddr_precision``: DDRLoss's CLIP encoder's ('auto': bf16 on a GPU); ``clip_pretrained`` None: random CLIP.
    """
    train = {
        'optim_g': {'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 1e-3, 'betas': [0.9, 0.9]},
        'scheduler': {'type': 'TrueCosineAnnealingLR', 'T_max': 400000, 'eta_min': 1e-7},
        'use_grad_clip': True,
        'grad_clip_norm': 0.01,
        'mixed_precision': None if precision == 'fp32' else precision,
        'pixel_opt': {'type': 'PSNRLoss', 'loss_weight': 1.0},
    }
    if loss_set == 'psnr+ddr':
        train['ddr_opt'] = {'type': 'DDRLoss', 'loss_weight': 2.0, 'model': clip_model, 'pretrained': clip_pretrained,
                            'precision': ddr_precision}
    return {
        'name': 'benchmark', 'model_type': 'RestorationModel', 'scale': 1, 'is_train': True, 'dist': False,
        'num_gpu': 1 if device == 'cuda' else 0, 'network_g': {**NAFNET_GOPRO, 'width': width},
        'path': {}, 'train': train,
    }


def training_step(options: dict, batch_size: int, size: int) -> Callable[[], None]:
    """One RestorationModel training step per call on a fixed random batch (seed 0), iterations numbered from 1."""
    from ddr_basicsr.models.restoration_model import RestorationModel  # imports basicsr: only when needed
    model = RestorationModel(options)
    generator = torch.Generator().manual_seed(0)
    shape = (batch_size, 3, size, size)
    batch = {'lq': torch.rand(shape, generator=generator), 'gt': torch.rand(shape, generator=generator)}
    iteration = iter(range(1, 10 ** 9))

    def step() -> None:
        model.feed_data(batch)
        model.optimize_parameters(next(iteration))
    return step


# --------------------------------------------------------------------------- blind-IQA speed
def write_jpeg(folder: str, width: int, height: int, index: int, seed: int = 0) -> str:
    """One synthetic photo (smooth colour field, edges and noise), JPEG quality 90; returns its path."""
    rng = np.random.default_rng((seed, index))
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    blocks = cv2.resize(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), (width, height),
                        interpolation=cv2.INTER_NEAREST)
    image = 0.7 * image + 0.3 * blocks + rng.normal(0, 3 + index % 7, image.shape).astype(np.float32)
    path = os.path.join(folder, f'bench_{index:05d}.jpg')
    if not cv2.imwrite(path, np.clip(image, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90]):
        raise OSError(f'could not write {path}')
    return path


def write_jpegs(folder: str, count: int, width: int, height: int, processes: int = 1) -> List[str]:
    """``count`` synthetic photos written by ``processes`` processes."""
    write = functools.partial(write_jpeg, folder, width, height)
    if processes <= 1:
        return [write(index) for index in range(count)]
    with worker_executor(processes) as pool:
        return list(pool.map(write, range(count), chunksize=16))


def time_from_disk(ddr: DDR, paths: Sequence[str], batch_size: int, workers: int) -> Tuple[float, Dict[str, float]]:
    """(images/s, {path: score}) of the full ``ddr-score`` path: decode from disk, batch, score."""
    scores: Dict[str, Optional[float]] = {}

    def score_all() -> None:
        scores.update((result.path, result.quality) for result in
                      iter_quality_scores(ddr, paths, batch_size, workers, progress=False))
    seconds = elapsed_ms(score_all, ddr.device) / 1000
    failed = [path for path, value in scores.items() if value is None]
    if failed:
        raise RuntimeError(f'{len(failed)} benchmark images could not be scored, e.g. {failed[0]}')
    return len(paths) / seconds, scores


def time_on_device(ddr: DDR, paths: Sequence[str], batch_size: int) -> float:
    """images/s with the images already decoded (uint8) and on the device."""
    images = [to_tensor(decode_image(path)).to(ddr.device) for path in paths]

    def score_all() -> None:
        for first in range(0, len(images), batch_size):
            score_images(ddr, images[first:first + batch_size])
    return len(images) / (elapsed_ms(score_all, ddr.device) / 1000)


def seeded_ddr(args: argparse.Namespace, precision: str) -> DDR:
    """DDR from the model options; seeded so that ``--pretrained none`` gives the same random CLIP each time."""
    torch.manual_seed(0)
    return ddr_from_arguments(argparse.Namespace(**{**vars(args), 'precision': precision}))


def reference_scores(args: argparse.Namespace, paths: Sequence[str]) -> List[float]:
    """float32 DDR quality of each image, scored one at a time (the reference's way)."""
    ddr = seeded_ddr(args, 'fp32')
    return [float(ddr.quality(read_image(path)[None])[0]) for path in paths]


def add_biqa_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of :func:`biqa_benchmark`: the benchmark's own and ``ddr-score``'s model options."""
    parser.add_argument('--num-images', type=int, default=256, help='synthetic JPEGs to score (default 256)')
    parser.add_argument('--size', default='1024x768', help='WIDTHxHEIGHT of the synthetic JPEGs (default 1024x768)')
    parser.add_argument('--images', default=None, help='score the JPEGs of this folder instead of synthetic ones')
    parser.add_argument('--warmup', type=int, default=2, help='warm-up batches before timing (default 2)')
    parser.add_argument('--check-images', type=int, default=8,
                        help='images compared with the one-at-a-time float32 path (default 8; 0: skip)')
    add_model_arguments(parser, default_pretrained='none')  # timing needs random weights of the real shapes only


def biqa_benchmark(args: argparse.Namespace) -> Iterator[str]:
    """Report lines of the blind-IQA speed benchmark (options of :func:`add_biqa_arguments`), as they are known."""
    width, height = (int(value) for value in args.size.lower().split('x'))
    with tempfile.TemporaryDirectory(prefix='ddr_bench_') as folder:
        if args.images:
            paths = sorted(os.path.join(args.images, name) for name in os.listdir(args.images)
                           if name.lower().endswith(('.jpg', '.jpeg')))[:args.num_images]
        else:
            paths = write_jpegs(folder, args.num_images, width, height, max(1, args.workers))
        if not paths:
            raise FileNotFoundError(f'no JPEG to benchmark in {args.images}')
        ddr = seeded_ddr(args, args.precision)
        warmup = paths[:max(1, args.warmup) * args.batch_size]
        time_from_disk(ddr, warmup, args.batch_size, 0)
        disk_rate, scores = time_from_disk(ddr, paths, args.batch_size, args.workers)
        device_rate = time_on_device(ddr, paths, args.batch_size)
        device_name = torch.cuda.get_device_name(ddr.device) if ddr.device.type == 'cuda' else 'CPU'
        yield f'device: {device_name} ({ddr.device}); model: {ddr.clip_description}; precision: {ddr.precision}'
        yield (f'images: {len(paths)} JPEGs {width}x{height}; batch size {args.batch_size}; '
               f'decoding workers {args.workers}; degradations {", ".join(ddr.degradation_names)}')
        yield f'from disk: {disk_rate:.1f} images/s'
        yield f'on device: {device_rate:.1f} images/s'
        if args.check_images:
            checked = paths[:args.check_images]
            expected = reference_scores(args, checked)
            difference = max(abs(scores[path] - value) for path, value in zip(checked, expected))
            yield f'max |score - float32 one-at-a-time score| over {len(checked)} images: {difference:.2e}'
