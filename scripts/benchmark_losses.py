"""Forward+backward time and peak memory of the restoration losses compared in DDR Tables 4-5.

Each loss (LPIPS, CTX, PDL, FDL with their defaults, and DDRLoss with the paper's restoration
degradations on ViT-B-32) is built through ``basicsr.losses.build_loss`` with random trunk
weights, so the script runs offline; weights do not change the cost. Prints a Markdown table.

Peak memory, over the warm-up and timed passes: on CUDA, ``torch.cuda.max_memory_allocated``
above what the loss and its inputs already hold; on CPU, the rise of the process's peak resident
size (Linux only, ``n/a`` elsewhere; rough, includes allocator caching).

    python scripts/benchmark_losses.py --device cuda --batch-size 4 --size 256 --repeats 20
"""
import argparse
import statistics
from typing import Dict

import torch
from basicsr.losses import build_loss
from tqdm import tqdm

import ddr_basicsr  # noqa: F401  (registers the losses)
from ddr_basicsr.tools.benchmarking import PeakMemory, device_description, mib_text, time_runs

LOSS_OPTIONS: Dict[str, dict] = {
    'LPIPSLoss': {'type': 'LPIPSLoss', 'loss_weight': 1.0, 'pretrained': False},
    'ContextualLoss': {'type': 'ContextualLoss', 'loss_weight': 1.0, 'pretrained': False},
    'PDLLoss': {'type': 'PDLLoss', 'loss_weight': 1.0, 'pretrained': False},
    'FDLLoss': {'type': 'FDLLoss', 'loss_weight': 0.1, 'pretrained': False},
    'DDRLoss': {'type': 'DDRLoss', 'loss_weight': 2.0, 'pretrained': None, 'model': 'ViT-B-32',
                'degradations': ['color', 'content', 'blur']},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--size', type=int, default=256, help='square crop side in px')
    parser.add_argument('--repeats', type=int, default=10, help='timed forward+backward passes per loss')
    parser.add_argument('--warmup', type=int, default=2, help='untimed passes before timing')
    parser.add_argument('--losses', nargs='+', default=list(LOSS_OPTIONS), choices=list(LOSS_OPTIONS))
    args = parser.parse_args()
    if min(args.batch_size, args.size, args.repeats) < 1 or args.warmup < 0:
        parser.error('--batch-size, --size and --repeats must be >= 1 and --warmup >= 0')
    return args


def benchmark(name: str, args: argparse.Namespace, device: torch.device) -> Dict[str, str]:
    torch.manual_seed(0)
    loss = build_loss(dict(LOSS_OPTIONS[name])).to(device)
    output = torch.rand(args.batch_size, 3, args.size, args.size, device=device, requires_grad=True)
    gt = torch.rand(args.batch_size, 3, args.size, args.size, device=device)

    def step() -> None:
        output.grad = None
        loss(output, gt).backward()

    memory = PeakMemory(device, cpu_rss=True)
    memory.start()  # before the warm-up: on CPU, memory freed after the first pass stays resident
    times = time_runs({'step': step}, device, args.repeats, args.warmup)['step']
    peak = mib_text(memory.stop())
    return {'loss': name, 'ms': f'{statistics.median(times):.1f}', 'min_ms': f'{min(times):.1f}', 'peak': peak}


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    rows = [benchmark(name, args, device) for name in tqdm(args.losses, desc='losses')]
    where = device_description(device)
    memory_kind = 'peak allocated' if device.type == 'cuda' else 'peak RSS rise'
    print(f'\n{where}; batch {args.batch_size}, {args.size}x{args.size} px, fp32, random trunk weights, '
          f'median of {args.repeats} forward+backward passes after {args.warmup} warm-up; torch {torch.__version__}\n')
    print(f'| loss | ms fwd+bwd (median) | ms (min) | {memory_kind} MB |')
    print('|---|---:|---:|---:|')
    for row in rows:
        print(f"| {row['loss']} | {row['ms']} | {row['min_ms']} | {row['peak']} |")


if __name__ == '__main__':
    main()
