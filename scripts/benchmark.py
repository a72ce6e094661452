"""Speed of DDR: the loss, a NAFNet training step with and without it, and blind-IQA scoring.

    python scripts/benchmark.py [--device cuda|cpu] [--precisions fp32,bf16] [--repeats 10] [--skip-nafnet]

Prints a Markdown table. Random weights of the real ViT-B/32 shapes, so it runs anywhere, offline.
Each DDR figure is compared, in the same run, with a plain per-image implementation of the same maths
(one image and one degradation at a time, prompts encoded on every call), whose result must agree.
"""
import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddr_basicsr import DDR  # noqa: E402
from ddr_basicsr.ddr import feature_distance, square_patch_offsets  # noqa: E402
from ddr_basicsr.prompts import BIQA_DEGRADATIONS, RESTORATION_DEGRADATIONS, resolve_prompts  # noqa: E402

import open_clip  # noqa: E402


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_call(function: Callable[[], object], device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median milliseconds of ``function`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        function()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]


def peak_memory_mb(device: torch.device) -> str:
    if device.type != 'cuda':
        return 'n/a'
    return f'{torch.cuda.max_memory_allocated(device) / 2 ** 20:.0f}'


def reset_peak(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)


class PlainDDR:
    """The same maths one image, one patch and one degradation at a time, prompts encoded on every call."""

    def __init__(self, ddr: DDR, degradations):
        self.ddr = ddr
        self.prompts = resolve_prompts(degradations)
        self.tokenizer = open_clip.get_tokenizer('ViT-B-32')

    def _response(self, patch: torch.Tensor, degraded: str, clean: str) -> torch.Tensor:
        pixels, _ = self.ddr._patches(patch[None])
        feature = self.ddr.encode_images(pixels)
        tokens = self.tokenizer([degraded, clean]).to(patch.device)
        text = self.ddr.clip.encode_text(tokens).float()
        direction = (text[0] - text[1])[None]
        if self.ddr.adaptation:
            direction = (direction - direction.mean()) / (direction.std() + 1e-3) * feature.std() + feature.mean()
        return feature_distance(feature, (feature + direction)[:, None], self.ddr.distance)[0, 0]

    def score(self, images: torch.Tensor) -> torch.Tensor:
        scores = []
        for image in images:
            height, width = image.shape[-2:]
            side = min(height, width)
            per_patch = []
            for offset in square_patch_offsets(height, width):
                patch = image[:, offset:offset + side, :] if height > width else image[:, :, offset:offset + side]
                per_patch.append(torch.stack([self._response(patch, *pair) for pair in self.prompts.values()]).mean())
            scores.append(torch.stack(per_patch).mean())
        return torch.stack(scores)


def nafnet_step(device: torch.device, with_ddr: bool, size: int, precision: str) -> Callable[[], None]:
    """One RestorationModel step of NAFNet-width64 (GoPro layout), batch 4, as in scripts/benchmark_train.py."""
    from benchmark_train import build_options
    from ddr_basicsr.models.restoration_model import RestorationModel
    options = build_options(argparse.Namespace(device=device.type, width=64, clip_model='ViT-B-32',
                                               clip_pretrained='none'), 'psnr+ddr' if with_ddr else 'psnr', precision)
    model = RestorationModel(options)
    generator = torch.Generator().manual_seed(0)
    batch = {'lq': torch.rand(4, 3, size, size, generator=generator),
             'gt': torch.rand(4, 3, size, size, generator=generator)}
    iteration = iter(range(1, 10 ** 9))

    def step() -> None:
        model.feed_data(batch)
        model.optimize_parameters(next(iteration))
    return step


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--precisions', default='fp32,bf16')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--loss-batches', default='4,16')
    parser.add_argument('--size', type=int, default=256, help='training crop side (default 256)')
    parser.add_argument('--biqa-images', type=int, default=32, help='1024x768 images scored per timing')
    parser.add_argument('--skip-nafnet', action='store_true', help='skip the NAFNet-width64 step (slow on a CPU)')
    parser.add_argument('--skip-plain', action='store_true', help='skip the plain per-image implementation')
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    rows: List[Dict[str, str]] = []

    def add(measure: str, precision: str, ms: float, plain_ms: float = None, unit: str = 'ms') -> None:
        value = f'{ms:.1f} ms' if unit == 'ms' else f'{1000 * args.biqa_images / ms:.1f} img/s'
        plain = '' if plain_ms is None else (f'{plain_ms:.1f} ms' if unit == 'ms'
                                               else f'{1000 * args.biqa_images / plain_ms:.1f} img/s')
        ratio = '' if plain_ms is None else f'{plain_ms / ms:.2f}x'
        rows.append({'measure': measure, 'precision': precision, 'ddr-basicsr': value, 'plain per-image': plain,
                     'speed-up': ratio, 'peak MB': peak_memory_mb(device)})
        print(f'{measure} [{precision}]: {value} (plain: {plain or "-"}, speed-up {ratio or "-"})', flush=True)

    for precision in args.precisions.split(','):
        restoration = DDR(pretrained=None, degradations=RESTORATION_DEGRADATIONS, device=device, precision=precision)
        plain = PlainDDR(restoration, RESTORATION_DEGRADATIONS)
        for batch in (int(b) for b in args.loss_batches.split(',')):
            images = torch.rand(batch, 3, args.size, args.size, device=device)

            def fast_loss():
                x = images.clone().requires_grad_(True)
                (-restoration.score(x).mean()).backward()

            def plain_loss():
                x = images.clone().requires_grad_(True)
                (-plain.score(x).mean()).backward()

            with torch.no_grad():
                gap = (restoration.score(images) - plain.score(images)).abs().max().item()
            print(f'fast vs plain DDR, batch {batch} [{precision}]: max |difference| {gap:.2e}', flush=True)
            reset_peak(device)
            fast_ms = time_call(fast_loss, device, args.repeats)
            plain_ms = None if args.skip_plain else time_call(plain_loss, device, max(2, args.repeats // 4), 1)
            add(f'DDR loss fwd+bwd, batch {batch}, {args.size}²', precision, fast_ms, plain_ms)
        if not args.skip_nafnet:
            step_ms = {}
            for with_ddr in (False, True):
                reset_peak(device)
                step_ms[with_ddr] = time_call(nafnet_step(device, with_ddr, args.size, precision), device, args.repeats)
                add(f"NAFNet-w64 step, batch 4, {args.size}², PSNR{' + 2.0 DDR' if with_ddr else ''}", precision,
                    step_ms[with_ddr])
            print(f'DDR adds {100 * (step_ms[True] / step_ms[False] - 1):.1f} % to the NAFNet step [{precision}]',
                  flush=True)
        biqa = DDR(pretrained=None, degradations=BIQA_DEGRADATIONS, device=device, precision=precision)
        biqa_plain = PlainDDR(biqa, BIQA_DEGRADATIONS)
        photos = torch.rand(args.biqa_images, 3, 768, 1024, device=device)
        reset_peak(device)
        fast_ms = time_call(lambda: biqa.quality(photos), device, max(2, args.repeats // 2), 1)
        with torch.no_grad():
            plain_ms = None if args.skip_plain else time_call(lambda: biqa_plain.score(photos), device, 2, 1)
        add(f'blind IQA, 1024x768 on {device.type}, 4 degradations', precision, fast_ms, plain_ms, unit='img/s')

    header = list(rows[0])
    print('\n| ' + ' | '.join(header) + ' |\n|' + '---|' * len(header))
    for row in rows:
        print('| ' + ' | '.join(row[key] for key in header) + ' |')
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    print(f'\ndevice: {name}; torch {torch.__version__}; random ViT-B-32 weights')


if __name__ == '__main__':
    main()
