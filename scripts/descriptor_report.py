"""DDR as an image descriptor (paper Sec. 3.2): Fig. 4-style montage and Table 2-style SRCC table.

For every image, DDR_d of each degradation type d is measured with colorfulness (Hasler and Süsstrunk),
CPBD sharpness (the paper's [44]) and quality (a MOS column from ``--mos-csv``, or the subjective scores
of ``--dataset``, DMOS negated); the measurements live in :mod:`ddr_basicsr.iqa.descriptor`, this script
parses the arguments and prints.

Outputs in ``--output-dir``: ``descriptor_montage.png`` (per degradation: the top-k images with the
highest DDR_d, then the k lowest), ``descriptor_srcc.md`` / ``.csv`` (SRCC of each DDR_d with each
attribute, next to the paper's Table 2, measured on CSIQ) and ``descriptor_scores.csv`` (per image).
They replace earlier ones only once all four are written, so a run killed at any moment is simply run
again. Exit status 1 if an image failed (named), 2 for bad arguments or input files (the message names them).

    python scripts/descriptor_report.py --dataset csiq=datasets/CSIQ --output-dir results/descriptor
    python scripts/descriptor_report.py photos/ --mos-csv photos/mos.csv --output-dir results/descriptor
"""
import argparse
import sys
from typing import Dict, Optional, Sequence

from ddr_basicsr.cli.arguments import CommandLineError, add_model_arguments, ddr_from_arguments
from ddr_basicsr.core.prompts import TABLE7_WORDS
from ddr_basicsr.iqa.datasets import LOADERS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('inputs', nargs='*', help='image files, folders or glob patterns')
    parser.add_argument('--dataset', default=None, metavar='NAME=ROOT',
                        help=f'take images and quality from an IQA dataset ({", ".join(LOADERS)}); '
                             'the paper\'s Table 2 uses csiq')
    parser.add_argument('--output-dir', required=True)
    parser.add_argument('--recursive', '-r', action='store_true', help='also scan the sub-folders of folders')
    parser.add_argument('--top-k', type=int, default=4, help='images shown per side of each montage row (default 4)')
    parser.add_argument('--mos-csv', default=None, help='CSV with an image-name column and a quality column')
    parser.add_argument('--name-column', default='image', help='image-name column of --mos-csv (default: image)')
    parser.add_argument('--mos-column', default='mos', help='quality column of --mos-csv (default: mos)')
    parser.add_argument('--mos-lower-better', action='store_true', help='the --mos-csv scores are DMOS-like')
    add_model_arguments(parser, default_degradations=tuple(TABLE7_WORDS))
    return parser


def gather_images(args: argparse.Namespace) -> Dict[str, Optional[float]]:
    """{image path: quality or None} from the positional inputs, --dataset and --mos-csv."""
    from ddr_basicsr.iqa.descriptor import gather_quality
    dataset = None
    if args.dataset:
        name, _, root = args.dataset.partition('=')
        dataset = (name, root)
    return gather_quality(args.inputs, args.recursive, dataset, args.mos_csv, args.name_column, args.mos_column,
                          args.mos_lower_better)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error(f'--top-k must be at least 1 (images per side of each montage row), got {args.top_k}')
    from ddr_basicsr.iqa.descriptor import descriptor_report  # torch, scipy, matplotlib: after parsing
    try:
        images = gather_images(args)
        ddr = ddr_from_arguments(args, default_degradations=tuple(TABLE7_WORDS))
        markdown, failures = descriptor_report(ddr, images, args.output_dir, args.top_k,
                                               args.dataset or ', '.join(args.inputs), args.batch_size, args.workers)
    except (CommandLineError, OSError, ValueError) as error:  # the messages name the option or file
        print(f'descriptor_report.py: error: {error}', file=sys.stderr)
        return 2
    print(markdown)
    for failure in failures:
        print(f'failed: {failure}', file=sys.stderr)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
