"""Command-line options shared by ``ddr-score`` and the evaluation scripts (no heavy imports: ``--help`` is fast)."""
import argparse
import os
from typing import Optional, Sequence

from ddr_basicsr.prompts import BIQA_DEGRADATIONS

#: ``DDR(precision=...)`` values (``ddr_basicsr.ddr.PRECISIONS``).
PRECISION_CHOICES = ('fp32', 'bf16', 'fp16', 'auto')


def parse_pretrained(value: str) -> Optional[str]:
    """'none' (any case) means random weights (for tests and speed measurements only)."""
    return None if value.lower() == 'none' else value


def add_model_arguments(parser: argparse.ArgumentParser, default_degradations: Sequence[str] = BIQA_DEGRADATIONS,
                        default_pretrained: str = 'openai') -> None:
    """Options shared by ``ddr-score`` and the evaluation scripts (pass the same default to build_ddr);
    ``default_pretrained`` 'none' means random weights (benchmarks that need no download)."""
    parser.add_argument('--degradations', default=None,
                        help='comma-separated degradation names (Table 7: color, noise, blur, exposure, content, '
                             f'or names from --prompts); default: {",".join(default_degradations)}')
    parser.add_argument('--prompts', default=None, metavar='FILE',
                        help='YAML/JSON file {name: [degraded, clean]}: two words for the paper\'s template '
                             '(Eq. 6) or two full sentences; without --degradations all its names are used')
    parser.add_argument('--model', default='ViT-B-32', help='open_clip model name (default: ViT-B-32, the paper\'s)')
    parser.add_argument('--pretrained', default=parse_pretrained(default_pretrained), type=parse_pretrained,
                        help=f'open_clip weights tag or local file (default: {default_pretrained}); '
                             '"none" = random weights')
    parser.add_argument('--device', default=None, help='cpu, cuda, cuda:1, ... (default: cuda when available)')
    parser.add_argument('--precision', default='fp32', choices=PRECISION_CHOICES,
                        help='image-encoder precision (default: fp32; auto: bf16 on a GPU, fp32 on a CPU)')
    parser.add_argument('--batch-size', type=int, default=32, help='images per encoder call (default: 32)')
    parser.add_argument('--workers', type=int, default=min(4, os.cpu_count() or 1),
                        help='image-decoding processes (0: decode in the main process; default: min(4, CPUs))')
