"""Blind-IQA scoring speed: images/s of DDR on 1024x768 JPEGs read from disk (and from memory).

Two figures are printed:

* ``from disk``: the whole ``ddr-score`` path (JPEG decoding in worker processes, batches of equal-size
  images, CLIP on the device), the number the issue's target (5x the reference's 112 images/s on an
  H100) is about;
* ``on device``: images already decoded and on the device, as the reference figure was measured.

Fidelity: the scores of the first ``--check-images`` images are compared with the float32 path scoring
one image at a time; the largest absolute difference is printed (target: below 1e-4).

    python scripts/benchmark_biqa.py --device cuda --num-images 512 --batch-size 64 --workers 12
    python scripts/benchmark_biqa.py --device cpu --num-images 16 --batch-size 8  # smoke (random CLIP by default)
"""
import argparse
import functools
import multiprocessing
import os
import sys
import tempfile
import time
from typing import List, Optional, Sequence

import cv2
import numpy as np
import torch

from ddr_basicsr.cli_options import add_model_arguments
from ddr_basicsr.image_io import decode_image, read_image, to_tensor
from ddr_basicsr.scoring import build_ddr, iter_quality_scores, load_prompts, score_images


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
    with multiprocessing.Pool(processes) as pool:
        return pool.map(write, range(count), chunksize=16)


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_from_disk(ddr, paths: Sequence[str], batch_size: int, workers: int) -> tuple:
    """(images/s, {path: score}) of the full path: decode from disk, batch, score."""
    synchronize(ddr.device)
    start = time.perf_counter()
    scores = {result.path: result.quality for result in
              iter_quality_scores(ddr, paths, batch_size, workers, progress=False)}
    synchronize(ddr.device)
    elapsed = time.perf_counter() - start
    failed = [path for path, value in scores.items() if value is None]
    if failed:
        raise RuntimeError(f'{len(failed)} benchmark images could not be scored, e.g. {failed[0]}')
    return len(paths) / elapsed, scores


def time_on_device(ddr, paths: Sequence[str], batch_size: int) -> float:
    """images/s with the images already decoded (uint8) and on the device."""
    images = [to_tensor(decode_image(path)).to(ddr.device) for path in paths]
    synchronize(ddr.device)
    start = time.perf_counter()
    for first in range(0, len(images), batch_size):
        score_images(ddr, images[first:first + batch_size])
    synchronize(ddr.device)
    return len(images) / (time.perf_counter() - start)


def seeded_ddr(args, precision: str):
    """DDR from the command line; seeded so that ``--pretrained none`` gives the same random CLIP each time."""
    torch.manual_seed(0)
    prompts = load_prompts(args.prompts) if args.prompts else None
    return build_ddr(args.model, args.pretrained, args.degradations, prompts, args.device, precision)


def reference_scores(args, paths: Sequence[str]) -> List[float]:
    """float32 DDR quality of each image, scored one at a time (the reference's way)."""
    ddr = seeded_ddr(args, 'fp32')
    return [float(ddr.quality(read_image(path)[None])[0]) for path in paths]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--num-images', type=int, default=256, help='synthetic JPEGs to score (default 256)')
    parser.add_argument('--size', default='1024x768', help='WIDTHxHEIGHT of the synthetic JPEGs (default 1024x768)')
    parser.add_argument('--images', default=None, help='score the JPEGs of this folder instead of synthetic ones')
    parser.add_argument('--warmup', type=int, default=2, help='warm-up batches before timing (default 2)')
    parser.add_argument('--check-images', type=int, default=8,
                        help='images compared with the one-at-a-time float32 path (default 8; 0: skip)')
    add_model_arguments(parser, default_pretrained='none')  # timing needs random weights of the real shapes only
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
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
        print(f'device: {device_name} ({ddr.device}); model: {ddr.clip_description}; precision: {ddr.precision}')
        print(f'images: {len(paths)} JPEGs {width}x{height}; batch size {args.batch_size}; '
              f'decoding workers {args.workers}; degradations {", ".join(ddr.degradation_names)}')
        print(f'from disk: {disk_rate:.1f} images/s')
        print(f'on device: {device_rate:.1f} images/s')
        if args.check_images:
            checked = paths[:args.check_images]
            expected = reference_scores(args, checked)
            difference = max(abs(scores[path] - value) for path, value in zip(checked, expected))
            print(f'max |score - float32 one-at-a-time score| over {len(checked)} images: {difference:.2e}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
