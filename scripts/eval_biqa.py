"""Opinion-unaware blind-IQA benchmark of the paper's Table 3: DDR and BasicSR's NIQE, SRCC/PLCC/KRCC.

The evaluation lives in :mod:`ddr_basicsr.iqa.evaluation` (score directions, PLCC without regression,
the resumable per-image cache in ``OUTPUT/cache``); this script parses the arguments and prints.

    python scripts/eval_biqa.py --dataset csiq=datasets/CSIQ --dataset livec=datasets/ChallengeDB_release \\
        --output-dir results/biqa

Outputs: ``biqa_results.md`` and ``biqa_results.csv`` (with the paper's Table 3 DDR and NIQE SRCC, the
resolution choices and the subjective score's file, column and scale), ``scores_<dataset>.csv`` (per
image). Killed at any moment, it leaves the previous outputs whole and resumes from its cache when run
again. Exit status 1 if an image failed (it is named, and left out of the correlations), 2 for bad
arguments or dataset files (the message names the file).
"""
import argparse
import os
import sys
from typing import Optional, Sequence

from ddr_basicsr.cli.arguments import CommandLineError, add_model_arguments, ddr_from_arguments, parse_dataset_argument
from ddr_basicsr.iqa.datasets import (
    KONIQ_RESOLUTIONS,
    KONIQ_SCORE_COLUMNS,
    KONIQ_SPLITS,
    LIVE_DMOS_CHOICES,
    LOADERS,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dataset', action='append', type=parse_dataset_argument, required=True, metavar='NAME=ROOT',
                        help=f'dataset to evaluate (repeatable); NAME in {", ".join(LOADERS)}')
    parser.add_argument('--output-dir', required=True, help='results and per-image score cache go here')
    parser.add_argument('--metrics', default='ddr,niqe', help='comma-separated, among ddr, niqe (default: both)')
    parser.add_argument('--koniq-resolution', default='1024x768', choices=KONIQ_RESOLUTIONS,
                        help='KonIQ-10k image folder (default: 1024x768)')
    parser.add_argument('--koniq-score', default='auto', choices=KONIQ_SCORE_COLUMNS,
                        help='KonIQ-10k subjective score column (default auto: the 1-100 score of the label file '
                             'found, MOS_zscore of koniq10k_scores_and_distributions.csv or MOS of '
                             'koniq10k_distributions_sets.csv)')
    parser.add_argument('--koniq-split', default='all', choices=KONIQ_SPLITS,
                        help="KonIQ-10k images to evaluate: all (default) or one set of the official split (the "
                             "'set' column of koniq10k_distributions_sets.csv)")
    parser.add_argument('--spaq-short-side', type=int, default=512, metavar='PX',
                        help='resize SPAQ photos so the shorter side is PX (bilinear, antialiased; 0 = full '
                             'resolution; default: 512 as in SPAQ\'s official evaluation)')
    parser.add_argument('--live-dmos', default='realigned', choices=LIVE_DMOS_CHOICES,
                        help='LIVE scores: dmos_realigned.mat (default) or dmos.mat')
    parser.add_argument('--niqe-workers', type=int, default=os.cpu_count() or 1,
                        help='NIQE processes (0: in this process; default: all CPUs)')
    add_model_arguments(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from ddr_basicsr.iqa.evaluation import evaluate, write_reports  # torch, scipy, basicsr: after parsing
    metrics = [metric.strip() for metric in args.metrics.split(',') if metric.strip()]
    try:
        rows, failures, settings = evaluate(
            args.dataset, args.output_dir, metrics, lambda: ddr_from_arguments(args), batch_size=args.batch_size,
            workers=args.workers, niqe_workers=args.niqe_workers, koniq_resolution=args.koniq_resolution,
            koniq_score=args.koniq_score, spaq_short_side=args.spaq_short_side, live_dmos=args.live_dmos,
            koniq_split=args.koniq_split)
    except (CommandLineError, OSError, ValueError) as error:  # the messages name the option or file
        print(f'eval_biqa.py: error: {error}', file=sys.stderr)
        return 2
    print(write_reports(args.output_dir, rows, settings))
    for failure in failures:
        print(f'{failure.metric} failed on {failure.image}: {failure.error}', file=sys.stderr)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
