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
from typing import Dict, List, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout as well
from ddr_basicsr.benchmarking import PeakMemory, elapsed_ms, mib_text, nafnet_training_options, training_step
from ddr_basicsr.cli_options import parse_pretrained

LOSS_SETS = ('psnr', 'psnr+ddr')
PRECISIONS = ('fp32', 'bf16')


def benchmark(args: argparse.Namespace, loss_set: str, precision: str) -> Dict[str, Optional[float]]:
    """Iterations per second and peak GPU memory (MiB, None on CPU) of one configuration."""
    device = torch.device(args.device)
    options = nafnet_training_options(args.device, args.width, loss_set, precision, args.clip_model,
                                      parse_pretrained(args.clip_pretrained))
    step = training_step(options, args.batch, args.size)
    for _ in range(args.warmup):
        step()
    memory = PeakMemory(device, relative=False)
    memory.start()
    seconds = elapsed_ms(step, device, calls=args.iters) / 1000
    peak = memory.stop()
    del step
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    return {'it_per_s': args.iters / seconds, 'peak_mib': peak}


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
            peak = mib_text(result['peak_mib'])
            print(f"{loss_set:<12}{precision:<11}{result['it_per_s']:>9.3f}{1 / result['it_per_s']:>9.3f}{peak:>14}",
                  flush=True)


if __name__ == '__main__':
    main()
