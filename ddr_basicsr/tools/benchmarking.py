"""Measurement helpers of the benchmark scripts: device synchronisation, timing, peak memory, the training
steps they time (stock BasicSR's SRModel and RestorationModel with each speed option), and the blind-IQA speed
benchmark.

Times are wall-clock milliseconds with the device synchronised before and after each measured block.
"""
import argparse
import functools
import os
import tempfile
import time
from collections import OrderedDict
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from ddr_basicsr.cli.arguments import add_model_arguments, ddr_from_arguments
from ddr_basicsr.core.ddr import DDR
from ddr_basicsr.iqa.scoring import iter_quality_scores, score_images
from ddr_basicsr.utils.image_io import decode_image, read_image, to_tensor
from ddr_basicsr.utils.worker_pools import worker_executor

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


# --------------------------------------------------------------------------- training steps
class TrainingRecipe(NamedTuple):
    """Network, batch and the official optimiser and pixel loss of one training set-up."""
    network: dict
    batch_size: int
    size: int
    optim: dict
    pixel_opt: dict


#: NAFNet-width64 on GoPro (batch 4, 256x256) and Restormer at its first progressive stage (batch 8, 128x128),
#: each with its official AdamW and pixel loss; ``--tiny`` shrinks them for a CPU smoke run.
TRAINING_RECIPES = {
    'nafnet': TrainingRecipe({**NAFNET_GOPRO, 'width': 64}, 4, 256,
                             {'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 1e-3, 'betas': [0.9, 0.9]},
                             {'type': 'PSNRLoss', 'loss_weight': 1.0}),
    'restormer': TrainingRecipe({'type': 'Restormer'}, 8, 128,
                                {'type': 'AdamW', 'lr': 3e-4, 'weight_decay': 1e-4, 'betas': [0.9, 0.999]},
                                {'type': 'L1Loss', 'loss_weight': 1.0}),
}
TINY_NETWORKS = {
    'nafnet': {'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1, 1], 'middle_blk_num': 1, 'dec_blk_nums': [1, 1]},
    'restormer': {'type': 'Restormer', 'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1,
                  'heads': [1, 1, 1, 1]},
}

#: Speed options of RestorationModel as each benchmark variant sets them (``fused``/``foreach`` go to optim_g);
#: ``stock`` is BasicSR's SRModel (see ``stock_model_class``). Every other variant starts from ``plain``.
PLAIN_PATH = {'non_blocking_copy': False, 'deferred_loss_log': False}
RESULT_INVARIANT = {'non_blocking_copy': True, 'deferred_loss_log': True}
ALL_FP32 = {**RESULT_INVARIANT, 'fused': True, 'channels_last': True, 'compile': True}
TRAINING_VARIANTS = {
    'stock': None,
    'plain': {},
    'non_blocking_copy': {'non_blocking_copy': True},
    'deferred_loss_log': {'deferred_loss_log': True},
    'fused_adamw': {'fused': True},
    'foreach_adamw': {'foreach': True},
    'channels_last': {'channels_last': True},
    'compile': {'compile': True},
    'bf16': {'mixed_precision': 'bf16'},
    'defaults': RESULT_INVARIANT,
    'all_fp32': ALL_FP32,
    'all_bf16': {**ALL_FP32, 'mixed_precision': 'bf16'},
}
OPTIMIZER_SWITCHES = ('fused', 'foreach')


def restoration_training_options(device: str, network: dict, optim: dict, pixel_opt: dict,
                                 ddr_opt: Optional[dict] = None, speed: Optional[dict] = None,
                                 model_type: str = 'RestorationModel') -> dict:
    """BasicSR option dict of one training set-up with gradient clipping at 0.01 (NAFNet's and Restormer's).

    ``speed``: RestorationModel's speed options, ``fused``/``foreach`` going to ``optim_g``; ``ddr_opt``: a
    DDRLoss block. No scheduler: a benchmark step does not change the learning rate.
    """
    speed = dict(speed or {})
    optim = {**optim, **{name: speed.pop(name) for name in OPTIMIZER_SWITCHES if name in speed}}
    train = {'optim_g': optim, 'use_grad_clip': True, 'grad_clip_norm': 0.01, 'pixel_opt': dict(pixel_opt), **speed}
    if ddr_opt:
        train['ddr_opt'] = dict(ddr_opt)
    return {
        'name': 'benchmark', 'model_type': model_type, 'scale': 1, 'is_train': True, 'dist': False,
        'num_gpu': 1 if device == 'cuda' else 0, 'network_g': dict(network), 'path': {}, 'train': train,
    }


def ddr_loss_block(clip_model: str = 'ViT-B-32', clip_pretrained: Optional[str] = None,
                   ddr_precision: str = 'auto') -> dict:
    """The paper's DDR term, 2.0 x DDRLoss (Sec. 4.1); ``clip_pretrained`` None: random CLIP of the same cost."""
    return {'type': 'DDRLoss', 'loss_weight': 2.0, 'model': clip_model, 'pretrained': clip_pretrained,
            'precision': ddr_precision}


def nafnet_training_options(device: str, width: int, loss_set: str, precision: str, clip_model: str = 'ViT-B-32',
                            clip_pretrained: Optional[str] = None, ddr_precision: str = 'auto') -> dict:
    """BasicSR option dict of a RestorationModel as in the paper's NAFNet training (Sec. 4.1).

    ``loss_set``: 'psnr' or 'psnr+ddr' (PSNR + 2.0 DDR); ``precision``: the network's (fp32 or bf16 autocast);
    ``ddr_precision``: DDRLoss's CLIP encoder's ('auto': bf16 on a GPU); ``clip_pretrained`` None: random CLIP.
    """
    recipe = TRAINING_RECIPES['nafnet']
    ddr_opt = ddr_loss_block(clip_model, clip_pretrained, ddr_precision) if loss_set == 'psnr+ddr' else None
    return restoration_training_options(device, {**recipe.network, 'width': width}, recipe.optim, recipe.pixel_opt,
                                        ddr_opt, {'mixed_precision': None if precision == 'fp32' else precision})


@functools.lru_cache(maxsize=None)
def stock_model_class() -> type:
    """BasicSR 1.4.2's ``SRModel`` as the official NAFNet/Restormer recipes run it: ``torch.optim`` optimizers by
    name (as BasicSR's master branch), ``clip_grad_norm_`` after backward when ``use_grad_clip``, a DDR term when
    ``train.ddr_opt`` is set; otherwise SRModel's own step (blocking copies, losses read every step)."""
    from basicsr.losses import build_loss
    from basicsr.models.sr_model import SRModel

    import ddr_basicsr.models  # noqa: F401  (registers PSNRLoss and DDRLoss)

    class StockSRModel(SRModel):
        def get_optimizer(self, optim_type: str, params, lr: float, **kwargs) -> torch.optim.Optimizer:
            return getattr(torch.optim, optim_type)(params, lr, **kwargs)

        def init_training_settings(self) -> None:
            super().init_training_settings()
            ddr_opt = self.opt['train'].get('ddr_opt')
            self.cri_ddr = build_loss(ddr_opt).to(self.device) if ddr_opt else None

        def setup_schedulers(self) -> None:
            """None: a benchmark step does not change the learning rate."""

        def optimize_parameters(self, current_iter: int) -> None:
            self.optimizer_g.zero_grad()
            self.output = self.net_g(self.lq)
            loss_dict = OrderedDict(l_pix=self.cri_pix(self.output, self.gt))
            if self.cri_ddr is not None:
                loss_dict['l_ddr'] = self.cri_ddr(self.output)
            sum(loss_dict.values()).backward()
            if self.opt['train'].get('use_grad_clip'):
                torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), self.opt['train']['grad_clip_norm'])
            self.optimizer_g.step()
            self.log_dict = self.reduce_loss_dict(loss_dict)

    return StockSRModel


def training_step(options: dict, batch_size: int, size: int, pin_memory: bool = False) -> Callable[[], None]:
    """One training step per call on a fixed random host batch (seed 0), iterations numbered from 1.

    ``model_type`` SRModel builds ``stock_model_class()``, anything else RestorationModel; ``pin_memory``: the
    host batch in pinned memory (as ``datasets.train.pin_memory: true`` gives), on CUDA only.
    """
    from ddr_basicsr.models.restoration_model import RestorationModel  # imports basicsr: only when needed
    model = (stock_model_class() if options['model_type'] == 'SRModel' else RestorationModel)(options)
    generator = torch.Generator().manual_seed(0)
    shape = (batch_size, 3, size, size)
    batch = {'lq': torch.rand(shape, generator=generator), 'gt': torch.rand(shape, generator=generator)}
    if pin_memory and model.device.type == 'cuda':
        batch = {key: value.pin_memory() for key, value in batch.items()}
    iteration = iter(range(1, 10 ** 9))

    def step() -> None:
        model.feed_data(batch)
        model.optimize_parameters(next(iteration))
    return step


class TrainingMeasurement(NamedTuple):
    network: str
    losses: str
    variant: str
    steps_per_s: float
    peak_mib: Optional[float]


def measure_training(device: torch.device, network: str, variant: str, ddr_opt: Optional[dict], iters: int,
                     warmup: int, tiny: bool = False, compile_backend: str = 'inductor') -> TrainingMeasurement:
    """Steps/s and peak GPU memory (MiB; None on CPU) of one variant of ``TRAINING_VARIANTS`` for the recipe
    ``network`` of ``TRAINING_RECIPES``, plus ``ddr_opt`` when given; ``tiny``: ``TINY_NETWORKS``, batch 2, 32x32."""
    recipe = TRAINING_RECIPES[network]
    batch_size, size = (2, 32) if tiny else (recipe.batch_size, recipe.size)
    speed = TRAINING_VARIANTS[variant]
    if speed is not None:
        speed = {**PLAIN_PATH, **speed}
        if speed.get('compile'):
            speed['compile'] = {'backend': compile_backend}
    options = restoration_training_options(device.type, TINY_NETWORKS[network] if tiny else recipe.network,
                                           recipe.optim, recipe.pixel_opt, ddr_opt, speed,
                                           'SRModel' if speed is None else 'RestorationModel')
    torch.manual_seed(0)
    step = training_step(options, batch_size, size, pin_memory=bool(speed and speed['non_blocking_copy']))
    for _ in range(warmup):
        step()
    memory = PeakMemory(device, relative=False)
    memory.start()
    seconds = elapsed_ms(step, device, calls=iters) / 1000
    peak = memory.stop()
    del step
    if speed and speed.get('compile'):
        torch._dynamo.reset()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    return TrainingMeasurement(network, 'with DDR' if ddr_opt else 'without DDR', variant, iters / seconds, peak)


def training_table(measurements: Sequence[TrainingMeasurement]) -> List[str]:
    """Markdown rows: steps/s and peak memory of each measurement, with ratios against ``stock`` of its group."""
    stock = {(m.network, m.losses): m for m in measurements if m.variant == 'stock'}
    lines = ['| network | losses | variant | steps/s | x stock | peak MiB | x stock memory |',
             '|---|---|---|---|---|---|---|']
    for m in measurements:
        base = stock.get((m.network, m.losses))
        speed_ratio = f'{m.steps_per_s / base.steps_per_s:.2f}' if base else 'n/a'
        memory_ratio = (f'{m.peak_mib / base.peak_mib:.2f}' if base and m.peak_mib is not None and base.peak_mib
                        else 'n/a')
        lines.append(f'| {m.network} | {m.losses} | {m.variant} | {m.steps_per_s:.3f} | {speed_ratio} | '
                     f'{mib_text(m.peak_mib)} | {memory_ratio} |')
    return lines


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
