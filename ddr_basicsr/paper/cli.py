"""``scripts/reproduce.py``: one sub-command per table and figure of the paper (parsing and printing only).

Each writes ``<output-dir>/<stem>.md`` and ``.csv`` (+ ``.png`` for figures), prints the Markdown (ours beside
the paper's numbers, the difference, the protocol) and resumes from ``<output-dir>/cache/`` when run again.
Exit status: 0 done, 1 done but some images could not be measured (listed in the report), 2 usage, missing data
or weights (the message says where to put them).
"""
import argparse
import os
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ddr_basicsr.cli.arguments import PRECISION_CHOICES, parse_pretrained
from ddr_basicsr.paper.folders import DEFAULT_OUTPUT_DIR, DEFAULT_ROOTS, DEFAULT_WORKERS

DESCRIPTION = ('Reproduce the tables and figures of the DDR paper, one sub-command each: Markdown + CSV (+ PNG) with '
               'the paper\'s numbers beside ours, under --output-dir.')
DATASET_NAMES = tuple(DEFAULT_ROOTS)
DDR_COMMANDS = ('table1', 'fig2', 'table2', 'table3', 'table8', 'fig7')


def name_value(text: str) -> Tuple[str, str]:
    name, separator, value = text.partition('=')
    if not separator or not name or not value:
        raise argparse.ArgumentTypeError(f'expected NAME=VALUE, got {text!r}')
    return name, value


def dataset_root(text: str) -> Tuple[str, str]:
    name, root = name_value(text)
    if name not in DATASET_NAMES:
        raise argparse.ArgumentTypeError(f'unknown dataset {name!r} in {text!r}; '
                                         f'choose among {", ".join(DATASET_NAMES)}')
    return name, root


def number_list(text: str) -> List[float]:
    try:
        return [float(part) for part in text.split(',') if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected comma-separated numbers, got {text!r}') from None


def row_list(text: str) -> List[int]:
    try:
        return [int(part) for part in text.split(',') if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected comma-separated row numbers (1-13), got {text!r}') from None


def name_list(text: str) -> List[str]:
    return [part.strip() for part in text.split(',') if part.strip() and part.strip() != 'none']


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='reproduce.py', description=DESCRIPTION)
    commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument('--output-dir', default=DEFAULT_OUTPUT_DIR, help=f'default: {DEFAULT_OUTPUT_DIR}')
    shared.add_argument('--root', action='append', type=dataset_root, default=[], metavar='NAME=PATH',
                        help='dataset folder (repeatable); defaults: ' +
                             ', '.join(f'{name}={root}' for name, root in DEFAULT_ROOTS.items()))
    clip = argparse.ArgumentParser(add_help=False)
    clip.add_argument('--model', default='ViT-B-32', help='open_clip model (default: ViT-B-32, the paper\'s)')
    clip.add_argument('--pretrained', default='openai', type=parse_pretrained,
                      help='open_clip tag or local CLIP file (default: openai); "none": random (tests only)')
    clip.add_argument('--device', default=None, help='cpu, cuda, ... (default: cuda when available)')
    clip.add_argument('--precision', default='fp32', choices=PRECISION_CHOICES, help='image encoder (default fp32)')
    clip.add_argument('--batch-size', type=int, default=32, help='images per encoder call (default 32)')
    clip.add_argument('--workers', type=int, default=DEFAULT_WORKERS,
                      help=f'image-decoding processes (default: one per core, {DEFAULT_WORKERS}; 0: none)')
    sweep = argparse.ArgumentParser(add_help=False)
    sweep.add_argument('--sigmas', type=number_list, default=None, metavar='S1,S2,...',
                       help='ω_d grid: Gaussian blur σ in px (default 0.5,1,2,4,8)')

    def add(name: str, help_text: str, *parents) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text, parents=[shared, *parents])

    add('table1', 'Table 1: pixel-domain DDR_blur SRCC on LIVE blur over the ω_d grid', clip, sweep)
    fig1 = add('fig1', 'Fig. 1: LPIPS change of two images under the same blur')
    fig1.add_argument('--images', nargs='+', default=None, help='image files (default: first two of LIVE in the Wild)')
    fig1.add_argument('--sigma', type=float, default=2.0, help='Gaussian blur σ in px (default 2)')
    fig1.add_argument('--lpips-net', default='alex', choices=('alex', 'vgg'), help='LPIPS trunk (default alex)')
    fig1.add_argument('--lpips-weights', default=None, help='local torchvision trunk state dict')
    add('fig2', 'Fig. 2: DDR distributions at low/optimal/high blur and adaptive, LIVE in the Wild', clip, sweep)
    table2 = add('table2', 'Table 2: SRCC of DDR_d with complexity, colorfulness, sharpness, quality (CSIQ)', clip)
    table2.add_argument('--icnet-weights', default=None, help='IC9600 ICNet ck.pth (default: the torch hub cache)')
    table3 = add('table3', 'Table 3: DDR and the NIQE, IL-NIQE (pyiqa), PIQE (pyiqa) baselines, others quoted', clip)
    table3.add_argument('--datasets', type=name_list, default=None, help='comma-separated (default: those found)')
    table3.add_argument('--baselines', type=name_list, default=None,
                        help='baselines among niqe,ilniqe,piqe (default: all; "none": DDR only)')
    table8 = add('table8', 'Table 8: the 13 blind-IQA ablation rows on CSIQ, TID2013, LIVE in the Wild, KonIQ', clip)
    table8.add_argument('--rows', type=row_list, default=None, help='comma-separated row numbers (default: all 13)')
    table8.add_argument('--backbone-weights', action='append', type=name_value, default=[], metavar='MODEL=FILE',
                        help='local CLIP file of a backbone (repeatable), e.g. RN50x16=/weights/RN50x16.pt; '
                             'unlike --pretrained (the weights of --model), it names the backbone, for the rows '
                             'that use several')
    fig7 = add('fig7', 'Fig. 7: SRCC of DDR_d with the mean/std of VGG relu1_1 ... relu5_1', clip)
    fig7.add_argument('--dataset', default='livec', choices=DATASET_NAMES, help='default: livec')
    fig7.add_argument('--vgg-weights', default=None, help='local torchvision VGG19 state dict')
    results = argparse.ArgumentParser(add_help=False)
    results.add_argument('--results-root', default='.', help='folder holding results/ and experiments/ (default .)')
    add('tables4-6', 'Tables 4-6: collect finished ddr-test results beside the paper\'s numbers', results)
    add('finetunes', 'Beyond the paper: the runs of options/finetune/ beside their starting checkpoints', results)
    crop = add('crops', 'Figs. 5, 6, 8-10: the same region of several outputs, enlarged, side by side')
    crop.add_argument('--image', action='append', type=name_value, required=True, metavar='LABEL=PATH',
                      help='an image and its label, in panel order (repeatable)')
    crop.add_argument('--box', required=True, help='X,Y,W,H of the region in pixels')
    crop.add_argument('--scale', type=int, default=4, help='enlargement (default 4)')
    crop.add_argument('--name', default='crops', help='output file stem (default crops)')
    crop.add_argument('--reference', default=None, help='label of the ground truth: PSNR of each crop against it')
    return parser


def run(args: argparse.Namespace):
    """Run the sub-command of ``args``; returns its Report."""
    from ddr_basicsr.paper import crops, fig1, fig2, fig7, finetunes, table1, table2, table3, table8, tables4_6
    from ddr_basicsr.paper.common import ModelChoice
    roots = dict(args.root)
    model = None
    if args.command in DDR_COMMANDS:
        if args.batch_size < 1 or args.workers < 0:
            raise ValueError('--batch-size must be >= 1 and --workers >= 0')
        model = ModelChoice(args.model, args.pretrained, args.device, args.precision, args.batch_size, args.workers)
    results_root = getattr(args, 'results_root', None)
    if results_root is not None and not any(os.path.isdir(os.path.join(results_root, folder))
                                            for folder in ('results', 'experiments')):
        raise FileNotFoundError(f'--results-root {results_root}: no results/ or experiments/ folder there; give the '
                                'folder ddr-train and ddr-test ran in')
    sweep = {'sigmas': args.sigmas} if getattr(args, 'sigmas', None) else {}
    commands: Dict[str, Callable[[], object]] = {
        'table1': lambda: table1.table1(roots, args.output_dir, model, **sweep),
        'fig1': lambda: fig1.fig1(roots, args.output_dir, args.images, args.sigma, args.lpips_net,
                                  weights_path=args.lpips_weights),
        'fig2': lambda: fig2.fig2(roots, args.output_dir, model, **sweep),
        'table2': lambda: table2.table2(roots, args.output_dir, model, args.icnet_weights),
        'table3': lambda: table3.table3(roots, args.output_dir, model, args.datasets,
                                        table3.BASELINES if args.baselines is None else args.baselines),
        'table8': lambda: table8.table8(roots, args.output_dir, model, dict(args.backbone_weights), args.rows),
        'fig7': lambda: fig7.fig7(roots, args.output_dir, model, args.dataset, args.vgg_weights),
        'tables4-6': lambda: tables4_6.tables4_6(args.results_root),
        'finetunes': lambda: finetunes.finetunes(args.results_root),
        'crops': lambda: crops.crops(args.image, crops.parse_box(args.box), args.output_dir, args.name, args.scale,
                                     args.reference),
    }
    return commands[args.command]()


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from ddr_basicsr.core.clip_loading import ClipWeightsError
    from ddr_basicsr.paper.table3 import BaselineUnavailable
    try:
        report = run(args)
    except ClipWeightsError as error:
        print(f'reproduce.py {args.command}: error: {error.command_line_message()}', file=sys.stderr)
        return 2
    except (BaselineUnavailable, FileNotFoundError, ValueError) as error:
        print(f'reproduce.py {args.command}: error: {error}', file=sys.stderr)
        return 2
    print(report.write(args.output_dir))
    return 1 if report.failures else 0
