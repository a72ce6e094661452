"""Training steps/s and peak GPU memory: stock BasicSR against RestorationModel with each speed option.

Set-ups (``--networks``): NAFNet-width64 (GoPro layout) at batch 4, 256x256, PSNRLoss, AdamW as in the official
config; Restormer at its first progressive stage (batch 8, 128x128), L1Loss, AdamW; both with gradient clipping at
0.01, without and with 2.0 x DDRLoss (``--losses``). Variants (``--variants``): ``stock`` is BasicSR 1.4.2's
SRModel step (blocking copies, losses read every step, fp32); ``plain`` is RestorationModel with every speed option
off; each further variant turns on one option (``defaults``: the result-invariant ones RestorationModel turns on by
default; ``all_fp32``: every fp32 option; ``all_bf16``: and bf16 autocast). Each runs ``--warmup`` untimed steps
(torch.compile compiles in the first), then ``--iters`` timed steps on a fixed random batch; the table gives each
against ``stock``.

    python scripts/benchmark_train.py                          # CUDA, the set-ups above
    python scripts/benchmark_train.py --device cpu --tiny      # smoke run: tiny networks, 32x32, Dynamo eager

``--pretrained none`` (the default) uses randomly initialised CLIP weights (same cost, nothing to download).
"""
import argparse
import os
import sys
from typing import List, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout as well
from ddr_basicsr.cli.arguments import parse_pretrained
from ddr_basicsr.tools.benchmarking import (
    TRAINING_RECIPES,
    TRAINING_VARIANTS,
    ddr_loss_block,
    device_description,
    measure_training,
    training_table,
)
from ddr_basicsr.utils.atomic_files import write_text_atomically

LOSS_SETS = ('plain', 'ddr')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', choices=('cuda', 'cpu'), default='cuda')
    parser.add_argument('--networks', nargs='+', choices=tuple(TRAINING_RECIPES), default=list(TRAINING_RECIPES))
    parser.add_argument('--losses', nargs='+', choices=LOSS_SETS, default=list(LOSS_SETS),
                        help='plain: the pixel loss alone; ddr: plus 2.0 x DDRLoss')
    parser.add_argument('--variants', nargs='+', choices=tuple(TRAINING_VARIANTS), default=list(TRAINING_VARIANTS),
                        help='stock is always measured (the ratios are against it)')
    parser.add_argument('--iters', type=int, default=30, help='timed steps per variant (default 30)')
    parser.add_argument('--warmup', type=int, default=5, help='untimed steps first (default 5)')
    parser.add_argument('--tiny', action='store_true',
                        help='smoke run: tiny networks, batch 2, 32x32, 2 + 1 steps, torch.compile with Dynamo eager')
    parser.add_argument('--compile-backend', default=None,
                        help='torch.compile backend of the compile variants (default inductor; --tiny: eager)')
    parser.add_argument('--clip-model', default='ViT-B-32', help='open_clip model of DDRLoss')
    parser.add_argument('--pretrained', '--clip-pretrained', dest='pretrained', default='none',
                        help="'none' (random weights, the same cost; default), an open_clip tag or a CLIP file "
                             '(--clip-pretrained: old spelling of --pretrained)')
    parser.add_argument('--output', default=None, help='also write the table to this Markdown file')
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('CUDA is not available; pass --device cpu --tiny')
    if args.iters < 1 or args.warmup < 1:
        parser.error('--iters and --warmup must be positive (the first step compiles and builds CUDA graphs)')
    if args.tiny:
        args.iters, args.warmup = min(args.iters, 2), 1
    args.compile_backend = args.compile_backend or ('eager' if args.tiny else 'inductor')
    args.variants = ['stock'] + [name for name in args.variants if name != 'stock']
    return args


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True  # as BasicSR's train_pipeline sets it
    ddr_opt = ddr_loss_block(args.clip_model, parse_pretrained(args.pretrained))
    header = (f'{device_description(device)}, torch {torch.__version__}; {args.warmup} warm-up + {args.iters} timed '
              f'steps per variant; compile backend {args.compile_backend}{"; tiny networks, 32x32" * args.tiny}')
    print(header, flush=True)
    measurements = []
    for network in args.networks:
        for loss_set in args.losses:
            for variant in args.variants:
                measurements.append(measure_training(device, network, variant, ddr_opt if loss_set == 'ddr' else None,
                                                     args.iters, args.warmup, args.tiny, args.compile_backend))
                print(training_table(measurements)[-1], flush=True)
    table = '\n'.join([header, '', *training_table(measurements), ''])
    print('\n' + table, flush=True)
    if args.output:
        write_text_atomically(args.output, table)


if __name__ == '__main__':
    main()
