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
import time
from typing import Callable, Dict, List, Optional

import torch
from basicsr.losses import build_loss
from tqdm import tqdm

import ddr_basicsr  # noqa: F401  (registers the losses)

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


def _proc_status_kib(field: str) -> int:
    with open('/proc/self/status') as handle:
        return int(next(line for line in handle if line.startswith(field + ':')).split()[1])


class PeakMemory:
    """Peak memory (MB) used by the code run between ``start()`` and ``stop()``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.baseline: Optional[int] = None

    def start(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
            return
        try:
            with open('/proc/self/clear_refs', 'w') as handle:  # resets the peak resident size (Linux)
                handle.write('5')
            self.baseline = _proc_status_kib('VmRSS') * 1024
        except OSError:
            self.baseline = None

    def stop(self) -> str:
        if self.baseline is None:
            return 'n/a'
        if self.device.type == 'cuda':
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = _proc_status_kib('VmHWM') * 1024
        return f'{(peak - self.baseline) / 2 ** 20:.0f}'


def time_passes(step: Callable[[], None], device: torch.device, repeats: int) -> List[float]:
    """Wall time in ms of each of ``repeats`` calls of ``step``, synchronising CUDA around each."""
    times = []
    for _ in range(repeats):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return times


def benchmark(name: str, args: argparse.Namespace, device: torch.device) -> Dict[str, str]:
    torch.manual_seed(0)
    loss = build_loss(dict(LOSS_OPTIONS[name])).to(device)
    output = torch.rand(args.batch_size, 3, args.size, args.size, device=device, requires_grad=True)
    gt = torch.rand(args.batch_size, 3, args.size, args.size, device=device)

    def step() -> None:
        output.grad = None
        loss(output, gt).backward()

    memory = PeakMemory(device)
    memory.start()  # before the warm-up: on CPU, memory freed after the first pass stays resident
    time_passes(step, device, args.warmup)
    times = time_passes(step, device, args.repeats)
    peak = memory.stop()
    return {'loss': name, 'ms': f'{statistics.median(times):.1f}', 'min_ms': f'{min(times):.1f}', 'peak': peak}


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    rows = [benchmark(name, args, device) for name in tqdm(args.losses, desc='losses')]
    where = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    memory_kind = 'peak allocated' if device.type == 'cuda' else 'peak RSS rise'
    print(f'\n{where}; batch {args.batch_size}, {args.size}x{args.size} px, fp32, random trunk weights, '
          f'median of {args.repeats} forward+backward passes after {args.warmup} warm-up; torch {torch.__version__}\n')
    print(f'| loss | ms fwd+bwd (median) | ms (min) | {memory_kind} MB |')
    print('|---|---:|---:|---:|')
    for row in rows:
        print(f"| {row['loss']} | {row['ms']} | {row['min_ms']} | {row['peak']} |")


if __name__ == '__main__':
    main()
