"""Command-line options shared by ``ddr-score`` and the evaluation scripts (no heavy imports: ``--help`` is fast)."""
import argparse
import os
import sys
from typing import TYPE_CHECKING, Iterable, Iterator, Optional, Sequence, Tuple

from ddr_basicsr.core.prompts import BIQA_DEGRADATIONS, PromptSet

if TYPE_CHECKING:
    from ddr_basicsr.core.ddr import DDR
    from ddr_basicsr.data.preparation import CropSpec, SplitPlan

#: ``DDR(precision=...)`` values (``ddr_basicsr.core.ddr.PRECISIONS``).
PRECISION_CHOICES = ('fp32', 'bf16', 'fp16', 'auto')
#: ``DDR(distance=...)`` values (``ddr_basicsr.core.ddr.DISTANCES``), the disparity M of Eq. 1.
DISTANCE_CHOICES = ('cosine', 'l1', 'l2')


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
                             '(Eq. 6) or two full sentences; or a .pt prompt file of ddr-tune-prompts; without '
                             '--degradations all its names are used')
    parser.add_argument('--model', default='ViT-B-32', help='open_clip model name (default: ViT-B-32, the paper\'s)')
    parser.add_argument('--pretrained', default=parse_pretrained(default_pretrained), type=parse_pretrained,
                        help=f'open_clip weights tag or local file (default: {default_pretrained}); '
                             '"none" = random weights')
    parser.add_argument('--device', default=None, help='cpu, cuda, cuda:1, ... (default: cuda when available)')
    parser.add_argument('--precision', default='fp32', choices=PRECISION_CHOICES,
                        help='image-encoder precision (default: fp32; auto: bf16 on a GPU, fp32 on a CPU)')
    parser.add_argument('--no-adaptation', dest='adaptation', action='store_false',
                        help='add the text direction T_d to the image feature as it is, without aligning its mean '
                             'and std to the feature (Eq. 4 off: Table 8\'s "w/o adaptation" row)')
    parser.add_argument('--distance', default='cosine', choices=DISTANCE_CHOICES,
                        help='disparity between the feature and the degraded feature (Eq. 1): cosine (the '
                             'paper\'s, 1 - cos), l1 or l2 (mean absolute / squared difference); default: cosine')
    parser.add_argument('--batch-size', type=int, default=32, help='images per encoder call (default: 32)')
    parser.add_argument('--workers', type=int, default=min(4, os.cpu_count() or 1),
                        help='image-decoding processes (0: decode in the main process; default: min(4, CPUs))')


def parse_dataset_argument(text: str) -> Tuple[str, str]:
    """``NAME=ROOT`` with NAME an IQA dataset of :data:`ddr_basicsr.iqa.datasets.LOADERS` (argparse type)."""
    from ddr_basicsr.iqa.datasets import LOADERS

    name, separator, root = text.partition('=')
    if not separator or name not in LOADERS:
        raise argparse.ArgumentTypeError(f'expected NAME=ROOT with NAME in {", ".join(LOADERS)}, got {text!r}')
    return name, root


def add_prepare_arguments(parser: argparse.ArgumentParser, default_crop_size: int, default_step: int) -> None:
    """Options shared by the dataset preparation scripts (``scripts/prepare_*.py``)."""
    from ddr_basicsr.data.preparation import BACKENDS, SPLITS  # the preparation scripts import it anyway

    parser.add_argument('--splits', nargs='+', choices=sorted(SPLITS), default=list(SPLITS))
    parser.add_argument('--backend', choices=BACKENDS, default='lmdb',
                        help='lmdb (BasicSR io_backend lmdb, used by options/*.yml) or disk (PNG folders)')
    parser.add_argument('--crop-size', type=int, default=default_crop_size,
                        help=f'training sub-image size, 0 = whole images (default {default_crop_size})')
    parser.add_argument('--step', type=int, default=default_step, help=f'sub-image step (default {default_step})')
    parser.add_argument('--thresh-size', type=int, default=0,
                        help='add a border-flush sub-image when more than this many px are left over (default 0)')
    parser.add_argument('--compress-level', type=int, default=1, choices=range(10), metavar='0-9',
                        help='PNG compression level of the written images (default 1)')
    parser.add_argument('--workers', type=int, default=1, help='processes reading and encoding images (default 1)')
    parser.add_argument('--overwrite', action='store_true', help='rebuild outputs that already exist')
    parser.add_argument('--dry-run', action='store_true',
                        help='find and check all pairs, print the plan, write nothing')


def crop_from_args(args: argparse.Namespace) -> 'Optional[CropSpec]':
    """The training CropSpec from --crop-size/--step/--thresh-size, or None for --crop-size 0."""
    from ddr_basicsr.data.preparation import CropSpec

    if args.crop_size == 0:
        return None
    return CropSpec(args.crop_size, args.step, args.thresh_size)


def run_plans_from_args(plans: 'Iterable[SplitPlan]', args: argparse.Namespace) -> Iterator[str]:
    """``ddr_basicsr.data.preparation.run_plans`` with the options of ``add_prepare_arguments``; yields the lines to
    print."""
    from ddr_basicsr.data.preparation import run_plans

    return run_plans(plans, compress_level=args.compress_level, workers=args.workers, overwrite=args.overwrite,
                     dry_run=args.dry_run)


def report_error(message: str, program: str = 'ddr-score') -> int:
    """Print ``<program>: error: message`` on standard error; the exit status of a usage or model error."""
    print(f'{program}: error: {message}', file=sys.stderr)
    return 2


class CommandLineError(Exception):
    """A usage or model error of a command-line tool; the message names the command-line fix."""


def ddr_from_arguments(args: argparse.Namespace, default_degradations: Sequence[str] = BIQA_DEGRADATIONS) -> 'DDR':
    """DDR from the values of :func:`add_model_arguments` (the ``--prompts`` file is read here).

    Raises :class:`CommandLineError` for weights that cannot be had (the message says ``--pretrained FILE``)
    and for bad prompts or degradation names (prefixed with ``--prompts FILE`` when one was given).
    """
    from ddr_basicsr.core.clip_loading import ClipWeightsError
    from ddr_basicsr.iqa.scoring import build_ddr
    try:
        prompts = PromptSet.load(args.prompts) if args.prompts else None
        return build_ddr(args.model, args.pretrained, args.degradations, prompts, args.device, args.precision,
                         default_degradations, adaptation=args.adaptation, distance=args.distance)
    except ClipWeightsError as error:
        raise CommandLineError(error.command_line_message()) from error
    except (OSError, ValueError, RuntimeError) as error:
        raise CommandLineError(f'--prompts {args.prompts}: {error}' if args.prompts else str(error)) from error

