"""``ddr-tune-prompts``: learn the degradation prompts of DDR from an IQA dataset's MOS, then compare across datasets.

    ddr-tune-prompts --train koniq10k=datasets/koniq10k --eval livec=datasets/ChallengeDB_release \\
        --eval spaq=datasets/SPAQ --output-dir results/prompts_koniq

Writes ``OUTPUT/prompts.pt`` (use it as ``DDR(prompts=...)``, ``prompts:`` of DDRLoss / calculate_ddr,
``ddr-score --prompts``, ``eval_biqa.py --prompts``), ``cross_dataset.md`` / ``.csv`` (SRCC of the hand-written
and the tuned prompts on the validation split and on every ``--eval`` dataset), ``tune_prompts.log`` and
``tuning_history.csv``. The method is described in :mod:`ddr_basicsr.iqa.prompt_tuning`. Exit status 2 for a usage,
data or model error.
"""
import argparse
import sys
from typing import Optional, Sequence

from ddr_basicsr.cli.arguments import (
    CommandLineError,
    add_model_arguments,
    ddr_from_arguments,
    parse_dataset_argument,
    report_error,
)

__all__ = ['build_parser', 'main']


def build_parser() -> argparse.ArgumentParser:
    from ddr_basicsr.core.learned_prompts import CONTEXTS

    parser = argparse.ArgumentParser(prog='ddr-tune-prompts', description=__doc__.split('\n\n')[0],
                                     epilog='Exit status: 0 done, 2 usage, data or model error.')
    parser.add_argument('--train', required=True, type=parse_dataset_argument, metavar='NAME=ROOT',
                        help='dataset to tune on (split into training and validation images)')
    parser.add_argument('--eval', action='append', default=[], type=parse_dataset_argument, metavar='NAME=ROOT',
                        help='dataset to report SRCC on, hand-written vs tuned (repeatable)')
    parser.add_argument('--output-dir', required=True, help='prompt file, reports, log, feature cache and state')
    parser.add_argument('--context', default='per_degradation', choices=CONTEXTS,
                        help='per_degradation: every token of every prompt learns its own vector (default); '
                             'shared: the Eq. 6 template tokens are shared by all degradations')
    parser.add_argument('--epochs', type=int, default=30, help='most epochs (default: 30)')
    parser.add_argument('--patience', type=int, default=5,
                        help='stop after this many epochs without a better validation SRCC (default: 5)')
    parser.add_argument('--images-per-step', type=int, default=128, help='images per ranking batch (default: 128)')
    parser.add_argument('--lr', type=float, default=5e-4, help='Adam learning rate of the vectors (default: 5e-4)')
    parser.add_argument('--val-fraction', type=float, default=0.2, help='validation share (default: 0.2)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the split and the batch order (default: 0)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars on stderr')
    add_model_arguments(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from ddr_basicsr.iqa.datasets import load_dataset
    from ddr_basicsr.iqa.evaluation import dataset_options
    from ddr_basicsr.iqa.prompt_tuning import TuningSettings, run_protocol

    settings = TuningSettings(args.context, args.epochs, args.images_per_step, args.lr, args.patience,
                              args.val_fraction, args.seed)
    try:
        datasets = [load_dataset(name, root, **dataset_options(name)[0]) for name, root in [args.train, *args.eval]]
        ddr = ddr_from_arguments(args)
        outcome = run_protocol(ddr, datasets[0], datasets[1:], args.output_dir, settings,
                               lambda name: dataset_options(name)[1], args.workers, not args.no_progress)
    except (CommandLineError, OSError, ValueError) as error:
        return report_error(str(error), 'ddr-tune-prompts')
    print(outcome.markdown)
    return 0


if __name__ == '__main__':
    sys.exit(main())
