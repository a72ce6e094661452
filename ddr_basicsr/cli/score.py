"""``ddr-score``: blind-IQA DDR of image files (Sec. 3.3, Eq. 7) as CSV.

The CSV has one row per input file: ``path``, ``ddr`` (the blind-IQA score, mean over the degradation set;
higher = better quality), one column per degradation (DDR_d with patch averaging) and ``error`` (empty when
the image was scored). With ``--output`` the settings the scores depend on go to ``OUTPUT.settings.json`` and the
run is resumable and can be split across processes (:mod:`ddr_basicsr.iqa.shards`): under torchrun each process
scores its share. The engine is :mod:`ddr_basicsr.iqa.scoring`, imported after the arguments are parsed.

Exit status: 0 when every image was scored, 1 when at least one could not be read or scored (its row
says why), 2 for a usage or model-loading error. Under torchrun, ranks other than 0 exit 0 once their
shard is written; rank 0 gives the status of the merged CSV.
"""
import argparse
import math
import os
import sys
from typing import List, Optional, Sequence, Tuple

from ddr_basicsr.cli.arguments import CommandLineError, add_model_arguments, ddr_from_arguments, report_error
from ddr_basicsr.utils.image_files import DEFAULT_MAX_ASPECT_RATIO, DEFAULT_MAX_PIXELS

__all__ = ['build_parser', 'main']


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='ddr-score', description='Blind image quality score DDR (higher = better) of image files, as CSV.',
        epilog='Exit status: 0 all scored, 1 some file could not be read or scored (see its error column), '
               '2 usage or model error. Several processes: torchrun --nproc_per_node=N -m ddr_basicsr.cli.score ... '
               '--output FILE (see docs/blind-iqa.md, "Scoring at scale").')
    parser.add_argument('inputs', nargs='*', help='image files, folders or glob patterns (quote the patterns)')
    parser.add_argument('--files-from', metavar='LIST',
                        help='also read inputs from LIST, one a line (files, folders or patterns, UTF-8 or the bytes '
                             'of the file names; empty lines skipped); a missing file gets an error row, a file listed '
                             'twice is scored once')
    parser.add_argument('--output', '-o', default=None, metavar='FILE',
                        help='write the CSV here and the settings to FILE.settings.json; the run can be resumed '
                             '(work kept in FILE.shards/ until done; default: CSV on stdout)')
    parser.add_argument('--recursive', '-r', action='store_true', help='also scan the sub-folders of folders')
    parser.add_argument('--short-side', type=int, default=None, metavar='PX',
                        help='downscale images whose shorter side exceeds PX to PX (bilinear, antialiased)')
    parser.add_argument('--max-pixels', type=int, default=DEFAULT_MAX_PIXELS, metavar='N',
                        help='refuse images of more than N pixels, read from the file header before decoding (an '
                             f'error row); 0 = no limit (default: {DEFAULT_MAX_PIXELS})')
    parser.add_argument('--max-aspect-ratio', type=float, default=DEFAULT_MAX_ASPECT_RATIO, metavar='R',
                        help='refuse images whose long side exceeds R times the short side (DDR scores about R '
                             f'square patches of them); 0 = no limit (default: {DEFAULT_MAX_ASPECT_RATIO:g})')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar on stderr')
    add_model_arguments(parser)
    return parser


def report_failures(results) -> int:
    """Print the failed rows on standard error; the exit status (1 when some failed)."""
    failures = [result for result in results if result.error]
    for result in failures:
        message = result.error if result.path in result.error else f'{result.path}: {result.error}'
        print(f'ddr-score: {message}', file=sys.stderr)
    return 1 if failures else 0


def plan_inputs(args: argparse.Namespace) -> Tuple[List[Tuple[str, str]], str]:
    """The (path, problem) rows of the inputs and ``--files-from``, and why the run cannot start ('' if it can)."""
    from ddr_basicsr.iqa.shards import output_problem
    from ddr_basicsr.utils.image_files import collect_input_rows, read_path_list

    inputs = list(args.inputs)
    if args.files_from:
        try:
            inputs += read_path_list(args.files_from)
        except (OSError, ValueError) as error:  # UnicodeDecodeError, a NUL byte
            return [], f'--files-from {args.files_from}: {error}'
    rows = collect_input_rows(inputs, args.recursive)
    read = {real: 'one of the input images' for _, real, _ in rows}
    for option in ('pretrained', 'prompts', 'files_from'):
        value = getattr(args, option)
        if value and os.path.exists(value):
            read[os.path.realpath(value)] = f'the --{option.replace("_", "-")} file'
    problem = output_problem(args.output, read) if args.output else ''
    return [(path, problem) for path, _, problem in rows], problem


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.workers < 0:
        parser.error('--batch-size must be >= 1 and --workers >= 0')
    if args.max_pixels < 0 or not 0 <= args.max_aspect_ratio < math.inf:
        parser.error('--max-pixels and --max-aspect-ratio must be finite numbers >= 0 (0 = no limit)')
    if args.short_side is not None and args.short_side < 1:
        parser.error(f'--short-side must be a positive number of pixels, got {args.short_side} (leave it out to '
                     'keep the full size)')
    if not args.inputs and not args.files_from:
        parser.error('give image files, folders or patterns, or --files-from LIST')
    from ddr_basicsr.iqa.shards import launch_from_environment
    launch = launch_from_environment()
    if launch.world_size > 1 and not args.output:
        parser.error(f'--output FILE is needed when ddr-score runs in {launch.world_size} processes (torchrun)')
    if launch.world_size == 1:
        return score_files(args)
    import torch
    import torch.distributed as dist

    from ddr_basicsr.iqa.shards import process_device, start_process_group
    args.device = process_device(args.device, launch, torch.cuda.is_available())
    start_process_group(args.device, launch)
    try:
        return score_files(args, launch)
    finally:
        dist.destroy_process_group()


def score_files(args: argparse.Namespace, launch=None) -> int:
    """Plan (rank 0), load DDR (every process), then score to stdout, or through shards to ``--output``."""
    from ddr_basicsr.iqa import shards

    launch = launch or shards.Launch()
    rows, problem = plan_inputs(args) if launch.rank == 0 else ([], '')
    if problem and launch.world_size == 1:
        return report_error(problem)
    ddr = None
    if not problem:
        try:
            ddr = ddr_from_arguments(args)
        except CommandLineError as error:
            problem = str(error)
    options = {'batch_size': args.batch_size, 'workers': args.workers, 'short_side': args.short_side,
               'max_pixels': args.max_pixels or None, 'max_aspect_ratio': args.max_aspect_ratio or None}
    settings = shards.run_settings(ddr, options) if ddr is not None else None
    lock = None
    if args.output and launch.rank == 0 and not problem:
        try:
            lock = shards.lock_run(shards.shards_folder(args.output))
            shards.prepare_shards(shards.shards_folder(args.output), rows, settings)
        except (shards.ShardError, OSError) as error:
            problem = f'--output {args.output}: {error}'
    problems = [text for text in shards.gather_problems(problem, launch) if text]
    if problems:
        return report_error(problem or problems[0]) if launch.rank == 0 or problem else 2
    if not args.output:
        return score_to_stdout(ddr, rows, options, not args.no_progress)
    try:
        return score_through_shards(ddr, args, launch, options, settings)
    except shards.ShardError as error:
        return report_error(f'--output {args.output}: {error}')
    finally:
        if lock is not None:
            lock.close()


def score_to_stdout(ddr, rows: List[Tuple[str, str]], options: dict, progress: bool) -> int:
    from ddr_basicsr.iqa.scoring import ImageScore, format_csv, iter_quality_scores

    results = [ImageScore(index, path, error=problem) if problem else None
               for index, (path, problem) in enumerate(rows)]
    todo = [index for index, (_, problem) in enumerate(rows) if not problem]
    for result in iter_quality_scores(ddr, [rows[index][0] for index in todo], progress=progress, **options):
        results[todo[result.index]] = result
    text = format_csv(results, ddr.degradation_names)
    if hasattr(sys.stdout, 'buffer'):  # file names that are not UTF-8 keep their bytes
        sys.stdout.flush()
        sys.stdout.buffer.write(text.encode(sys.stdout.encoding or 'utf-8', 'surrogateescape'))
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(text)
    return report_failures(results)


def score_through_shards(ddr, args: argparse.Namespace, launch, options: dict, settings: dict) -> int:
    """Score this process's share into its shard; rank 0 then waits for the others and merges (progress: images/s
    of all processes together)."""
    from tqdm import tqdm

    from ddr_basicsr.iqa import shards
    from ddr_basicsr.iqa.scoring import format_csv

    folder = shards.shards_folder(args.output)
    if launch.rank != 0:
        shards.score_shard(ddr, folder, launch, options)
        return 0
    rows, _, done = shards.load_plan(folder)
    others = shards.ShardProgress(folder, launch.world_size)
    description = 'DDR' if launch.world_size == 1 else f'DDR ({launch.world_size} processes)'
    with tqdm(total=len(shards.pending_indices(rows, done)), unit='img', desc=description, disable=args.no_progress,
              file=sys.stderr) as bar:
        shards.score_shard(ddr, folder, launch, options, on_result=lambda: bar.update(1 + others.new_records()))
        others.wait(bar.update)
    results = shards.merge_shards(folder)
    shards.finish_run(args.output, format_csv(results, settings['columns']), settings)
    return report_failures(results)


if __name__ == '__main__':
    sys.exit(main())
