"""Training-step speed and peak GPU memory of RestorationModel with and without DDRLoss.

Default: the paper's setting, NAFNet-width64 (GoPro layout) at batch 4, 256x256 crops, AdamW with
gradient clipping, PSNR loss alone and PSNR + 2.0 * DDR (ViT-B-32 CLIP), in fp32 and bf16 autocast.
Each configuration runs ``--warmup`` untimed steps, then ``--iters`` timed steps on random data.

    python scripts/benchmark_train.py                                  # CUDA, paper setting
    python scripts/benchmark_train.py --device cpu --size 64 --iters 3

``--clip-pretrained none`` (the default) uses randomly initialised CLIP weights (same cost, nothing to download);
a path loads an OpenAI-format CLIP file.
"""
import argparse
import os
import sys
import time
from typing import Dict, List, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ddr_basicsr.models.restoration_model import RestorationModel

NAFNET_GOPRO = {'type': 'NAFNet', 'enc_blk_nums': [1, 1, 1, 28], 'middle_blk_num': 1, 'dec_blk_nums': [1, 1, 1, 1]}
LOSS_SETS = ('psnr', 'psnr+ddr')
PRECISIONS = ('fp32', 'bf16')


def build_options(args: argparse.Namespace, loss_set: str, precision: str, ddr_precision: str = 'auto') -> dict:
    """BasicSR option dict of a RestorationModel as in the paper's NAFNet training (Sec. 4.1).

    ``precision``: the restoration network's (fp32 or bf16 autocast); ``ddr_precision``: DDRLoss's CLIP
    encoder's ('auto', its default, is bf16 on a GPU).
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
        pretrained = None if args.clip_pretrained.lower() == 'none' else args.clip_pretrained
        train['ddr_opt'] = {'type': 'DDRLoss', 'loss_weight': 2.0, 'model': args.clip_model, 'pretrained': pretrained,
                            'precision': ddr_precision}
    return {
        'name': 'benchmark', 'model_type': 'RestorationModel', 'scale': 1, 'is_train': True, 'dist': False,
        'num_gpu': 1 if args.device == 'cuda' else 0, 'network_g': {**NAFNET_GOPRO, 'width': args.width},
        'path': {}, 'train': train,
    }


def synchronize(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def benchmark(args: argparse.Namespace, loss_set: str, precision: str) -> Dict[str, Optional[float]]:
    """Iterations per second and peak GPU memory (MiB, None on CPU) of one configuration."""
    model = RestorationModel(build_options(args, loss_set, precision))
    generator = torch.Generator().manual_seed(0)
    shape = (args.batch, 3, args.size, args.size)
    batch = {'lq': torch.rand(shape, generator=generator), 'gt': torch.rand(shape, generator=generator)}
    for step in range(1, args.warmup + 1):
        model.feed_data(batch)
        model.optimize_parameters(step)
    synchronize(args.device)
    if args.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for step in range(args.warmup + 1, args.warmup + args.iters + 1):
        model.feed_data(batch)
        model.optimize_parameters(step)
    synchronize(args.device)
    elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if args.device == 'cuda' else None
    del model
    if args.device == 'cuda':
        torch.cuda.empty_cache()
    return {'it_per_s': args.iters / elapsed, 'peak_mib': peak}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', choices=('cuda', 'cpu'), default='cuda')
    parser.add_argument('--width', type=int, default=64, help='NAFNet width (64 in the paper)')
    parser.add_argument('--batch', type=int, default=4, help='batch size (4 in the paper)')
    parser.add_argument('--size', type=int, default=256, help='crop size (256 in the paper); a multiple of 8')
    parser.add_argument('--iters', type=int, default=20, help='timed iterations per configuration')
    parser.add_argument('--warmup', type=int, default=3, help='untimed iterations first')
    parser.add_argument('--clip-model', default='ViT-B-32', help='open_clip model of DDRLoss')
    parser.add_argument('--clip-pretrained', default='none',
                        help="'none' (random weights, the same cost; default), an open_clip tag or a CLIP file")
    parser.add_argument('--losses', nargs='+', choices=LOSS_SETS, default=list(LOSS_SETS))
    parser.add_argument('--precisions', nargs='+', choices=PRECISIONS, default=list(PRECISIONS))
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('CUDA is not available; pass --device cpu (with a smaller --size and --iters)')
    if args.size % 8:
        parser.error(f'--size {args.size} must be a multiple of 8 (NAFNet downsamples 3 times)')
    if args.iters < 1 or args.warmup < 0 or args.batch < 1:
        parser.error('--iters and --batch must be positive and --warmup non-negative')
    return args


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    torch.manual_seed(0)
    device_name = torch.cuda.get_device_name() if args.device == 'cuda' else f'CPU ({torch.get_num_threads()} threads)'
    print(f'NAFNet-width{args.width}, batch {args.batch}, {args.size}x{args.size}, {device_name}, '
          f'{args.warmup} warm-up + {args.iters} timed iterations', flush=True)
    print(f"{'losses':<12}{'precision':<11}{'it/s':>9}{'s/it':>9}{'peak GPU MiB':>14}", flush=True)
    for loss_set in args.losses:
        for precision in args.precisions:
            result = benchmark(args, loss_set, precision)
            peak = 'n/a' if result['peak_mib'] is None else f"{result['peak_mib']:.0f}"
            print(f"{loss_set:<12}{precision:<11}{result['it_per_s']:>9.3f}{1 / result['it_per_s']:>9.3f}{peak:>14}",
                  flush=True)


if __name__ == '__main__':
    main()
