"""Speed of DDR: the loss, a NAFNet training step with and without it, and blind-IQA scoring.

    python scripts/benchmark.py [--device cuda|cpu] [--precisions fp32,bf16] [--repeats 10] [--skip-nafnet]

Prints a Markdown table. Random weights of the real ViT-B/32 shapes, so it runs anywhere, offline.
Each DDR figure is compared, in the same run, with a plain per-image implementation of the same maths
(one image and one degradation at a time, prompts encoded on every call), whose result must agree.
On a GPU the loss is also timed without CUDA graphs (``cuda_graphs=False``), and the numbers of every
mode are compared on natural photographs (scikit-image's samples): CUDA graphs against eager float32,
bf16 against float32.
"""
import argparse
import sys
from pathlib import Path
from typing import Callable, Dict, List

import torch
from skimage import data as sample_images

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout as well

import open_clip

from ddr_basicsr import DDR
from ddr_basicsr.core.ddr import feature_distance, square_patch_offsets
from ddr_basicsr.core.prompts import BIQA_DEGRADATIONS, RESTORATION_DEGRADATIONS, resolve_prompts
from ddr_basicsr.tools.benchmarking import (
    PeakMemory,
    device_description,
    mib_text,
    nafnet_training_options,
    time_call,
    time_interleaved,
    training_step,
)


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


def natural_photos(device: torch.device) -> List[torch.Tensor]:
    """Four scikit-image sample photographs as (3, H, W) float tensors in [0, 1]."""
    photos = [sample_images.astronaut(), sample_images.chelsea(), sample_images.coffee(), sample_images.rocket()]
    return [torch.from_numpy(photo).permute(2, 0, 1).float().div(255).to(device) for photo in photos]


def center_crops(photos: List[torch.Tensor], size: int) -> torch.Tensor:
    crops = []
    for photo in photos:
        top, left = (photo.shape[1] - size) // 2, (photo.shape[2] - size) // 2
        crops.append(photo[:, top:top + size, left:left + size])
    return torch.stack(crops)


def relative_gap(value: torch.Tensor, reference: torch.Tensor) -> float:
    return ((value - reference).abs() / reference.abs()).max().item()


def fidelity(restoration: DDR, biqa: DDR, photos: List[torch.Tensor], size: int) -> List[str]:
    """Lines comparing CUDA graphs with eager float32, and bf16 with float32, on natural photographs."""
    crops = center_crops(photos, min(size, *(min(photo.shape[1:]) for photo in photos)))

    def loss_path(ddr: DDR, precision: str, cuda_graphs: bool) -> tuple:
        ddr.precision, ddr.cuda_graphs = precision, cuda_graphs
        x = crops.clone().requires_grad_(True)
        score = ddr.score(x)
        (-score.mean()).backward()
        return score.detach(), x.grad

    def biqa_path(precision: str) -> torch.Tensor:
        biqa.precision = precision
        return biqa.quality(photos)

    eager_score, eager_grad = loss_path(restoration, 'fp32', False)
    lines = []
    if crops.is_cuda:
        graph_score, graph_grad = loss_path(restoration, 'fp32', True)
        lines.append(f'fp32 loss path, CUDA graphs vs eager: max |score difference| '
                     f'{(graph_score - eager_score).abs().max().item():.2e}, max |gradient difference| '
                     f'{(graph_grad - eager_grad).abs().max().item():.2e}')
    bf16_score, _ = loss_path(restoration, 'bf16', crops.is_cuda)
    fp32_quality = biqa_path('fp32')
    lines.append(f'bf16 vs fp32 on {len(photos)} natural photos: loss-path scores max relative difference '
                 f'{relative_gap(bf16_score, eager_score):.2e}; blind-IQA quality max relative difference '
                 f'{relative_gap(biqa_path("bf16"), fp32_quality):.2e}')
    restoration.precision, restoration.cuda_graphs = 'fp32', True
    return lines


def nafnet_step(device: torch.device, with_ddr: bool, size: int, precision: str) -> Callable[[], None]:
    """One RestorationModel step of NAFNet-width64 (GoPro layout), batch 4, as in scripts/benchmark_train.py.

    The network trains in fp32 (the paper's setting); ``precision`` is DDRLoss's CLIP precision.
    """
    options = nafnet_training_options(device.type, 64, 'psnr+ddr' if with_ddr else 'psnr', 'fp32',
                                      ddr_precision=precision)
    return training_step(options, 4, size)


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
    memory = PeakMemory(device)

    def add(measure: str, precision: str, ms: float, plain_ms: float = None, unit: str = 'ms',
            peak: str = 'n/a') -> None:
        value = f'{ms:.1f} ms' if unit == 'ms' else f'{1000 * args.biqa_images / ms:.1f} img/s'
        plain = '' if plain_ms is None else (f'{plain_ms:.1f} ms' if unit == 'ms'
                                               else f'{1000 * args.biqa_images / plain_ms:.1f} img/s')
        ratio = '' if plain_ms is None else f'{plain_ms / ms:.2f}x'
        rows.append({'measure': measure, 'precision': precision, 'ddr-basicsr': value, 'plain per-image': plain,
                     'speed-up': ratio, 'peak MB': peak})
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
            memory.start()
            fast_ms, fast_peak = time_call(fast_loss, device, args.repeats), mib_text(memory.stop())
            plain_ms = None if args.skip_plain else time_call(plain_loss, device, max(2, args.repeats // 4), 1)
            add(f'DDR loss fwd+bwd, batch {batch}, {args.size}²', precision, fast_ms, plain_ms, peak=fast_peak)
            if device.type == 'cuda':
                restoration.cuda_graphs = False
                memory.start()
                eager_ms, eager_peak = time_call(fast_loss, device, args.repeats), mib_text(memory.stop())
                restoration.cuda_graphs = True
                add(f'DDR loss fwd+bwd, batch {batch}, {args.size}², cuda_graphs=False', precision, eager_ms, plain_ms,
                    peak=eager_peak)
        if not args.skip_nafnet:
            steps = {'PSNR': nafnet_step(device, False, args.size, precision),
                     'PSNR + 2.0 DDR': nafnet_step(device, True, args.size, precision)}
            peaks = {}
            for name, step in steps.items():
                memory.start()
                step()
                peaks[name] = mib_text(memory.stop())
            step_ms = time_interleaved(steps, device, 3 * args.repeats)
            for name, ms in step_ms.items():
                add(f'NAFNet-w64 fp32 step, batch 4, {args.size}², {name}', precision, ms, peak=peaks[name])
            added = 100 * (step_ms['PSNR + 2.0 DDR'] / step_ms['PSNR'] - 1)
            print(f'DDR adds {added:.1f} % to the NAFNet step [{precision}]', flush=True)
            del steps
            if device.type == 'cuda':
                torch.cuda.empty_cache()
        biqa = DDR(pretrained=None, degradations=BIQA_DEGRADATIONS, device=device, precision=precision)
        biqa_plain = PlainDDR(biqa, BIQA_DEGRADATIONS)
        photos = torch.rand(args.biqa_images, 3, 768, 1024, device=device)
        memory.start()
        fast_ms = time_call(lambda: biqa.quality(photos), device, max(2, args.repeats // 2), 1)
        fast_peak = mib_text(memory.stop())
        with torch.no_grad():
            plain_ms = None if args.skip_plain else time_call(lambda: biqa_plain.score(photos), device, 2, 1)
        add(f'blind IQA, 1024x768 on {device.type}, 4 degradations', precision, fast_ms, plain_ms, unit='img/s',
            peak=fast_peak)

    notes = fidelity(restoration, biqa, natural_photos(device), args.size)
    for line in notes:
        print(line, flush=True)

    header = list(rows[0])
    print('\n| ' + ' | '.join(header) + ' |\n|' + '---|' * len(header))
    for row in rows:
        print('| ' + ' | '.join(row[key] for key in header) + ' |')
    print(f'\ndevice: {device_description(device)}; torch {torch.__version__}; random ViT-B-32 weights')
    for line in notes:
        print(f'- {line}')


if __name__ == '__main__':
    main()
