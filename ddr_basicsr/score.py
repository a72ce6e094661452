"""``ddr-score``: blind-IQA DDR of image files (Sec. 3.3, Eq. 7) as CSV.

The CSV has one row per input file: ``path``, ``ddr`` (the blind-IQA score, mean over the degradation set;
higher = better quality), one column per degradation (DDR_d with patch averaging) and ``error`` (empty when
the image was scored). The engine is :mod:`ddr_basicsr.iqa.scoring`, imported after the arguments are parsed.

Exit status: 0 when every image was scored, 1 when at least one could not be read or scored (its row
says why), 2 for a usage or model-loading error.
"""
import argparse
import sys
from typing import Optional, Sequence

from ddr_basicsr.cli_options import CommandLineError, add_model_arguments, ddr_from_arguments

__all__ = ['build_parser', 'main']


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='ddr-score', description='Blind image-quality score DDR (higher = better) of image files, as CSV.',
        epilog='Exit status: 0 all scored, 1 some file could not be read or scored (see its error column), '
               '2 usage or model error.')
    parser.add_argument('inputs', nargs='+', help='image files, folders or glob patterns (quote the patterns)')
    parser.add_argument('--output', '-o', default=None, metavar='FILE', help='write the CSV here (default: stdout)')
    parser.add_argument('--recursive', '-r', action='store_true', help='also scan the sub-folders of folders')
    parser.add_argument('--short-side', type=int, default=None, metavar='PX',
                        help='downscale images whose shorter side exceeds PX to PX (bilinear, antialiased)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar on stderr')
    add_model_arguments(parser)
    return parser


def report_error(message: str, program: str = 'ddr-score') -> int:
    """Print ``<program>: error: message`` on standard error; the exit status of a usage or model error."""
    print(f'{program}: error: {message}', file=sys.stderr)
    return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.workers < 0:
        parser.error('--batch-size must be >= 1 and --workers >= 0')
    from ddr_basicsr.atomic_files import write_text_atomically
    from ddr_basicsr.iqa.scoring import ImageScore, collect_inputs, format_csv, iter_quality_scores
    rows = collect_inputs(args.inputs, args.recursive)
    try:
        ddr = ddr_from_arguments(args)
    except CommandLineError as error:
        return report_error(str(error))
    results = [None] * len(rows)
    todo = [index for index, (_, problem) in enumerate(rows) if not problem]
    for index, (path, problem) in enumerate(rows):
        if problem:
            results[index] = ImageScore(index, path, error=problem)
    for result in iter_quality_scores(ddr, [rows[index][0] for index in todo], args.batch_size, args.workers,
                                      args.short_side, progress=not args.no_progress):
        results[todo[result.index]] = result
    text = format_csv(results, ddr.degradation_names)
    if args.output:
        write_text_atomically(args.output, text)
    else:
        sys.stdout.write(text)
    failures = [result for result in results if result.error]
    for result in failures:
        message = result.error if result.path in result.error else f'{result.path}: {result.error}'
        print(f'ddr-score: {message}', file=sys.stderr)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
