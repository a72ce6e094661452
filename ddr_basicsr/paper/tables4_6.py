"""Tables 4-6 (restoration): collect PSNR / SSIM of finished runs and put them beside the paper's.

For every experiment of the option files (:mod:`ddr_basicsr.tools.option_file_generator`: Tables 4-5 for NAFNet
and Restormer on
GoPro, RealBlur and RealSR-City100 with six losses; Table 6's ablation on NAFNet/GoPro), the result is read from
the newest ``ddr-test`` log, ``<root>/results/<name>/test_<name>_*.log`` (``options/test/<stem>.yml``); without
one, from the last validation of the training log ``<root>/experiments/<name>/train_<name>_*.log`` (marked as
such). BasicSR logs 4 decimals.

A result counts as ours only when its training run is the option file's (:func:`run_problems`): the copy of the
option file BasicSR keeps in ``experiments/<name>/`` (with the ``--force_yml`` values of its command line) has the
option file's network, data sets and ``total_iter``, and the training log reached that iteration. Other runs (a
miniature run, a run stopped early, a run without its option file) are listed apart with the reason.
"""
import glob
import os
import re
import shlex
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ddr_basicsr.paper.common import Report, difference
from ddr_basicsr.paper.numbers import TABLE6_ABLATIONS, TABLES4_5
from ddr_basicsr.tools.option_file_generator import ARCHS, DATASETS, LOSSES, experiment_name, train_options

METRIC_LINE = re.compile(r'#\s*(\w+):\s*(-?[\d.]+(?:e-?\d+)?)')
ITER_LINE = re.compile(r'\biter:\s*([\d,]+)')
#: Keys of a data set that identify its data (paths by their last two parts: the folders may live elsewhere).
DATA_KEYS = ('name', 'type', 'gt_size')


def validations(log_path: str) -> List[Dict[str, float]]:
    """The metrics of every ``Validation <set>`` block of a BasicSR log, in order."""
    blocks: List[Dict[str, float]] = []
    current: Optional[Dict[str, float]] = None
    with open(log_path, encoding='utf-8', errors='replace') as handle:
        for line in handle:
            if 'Validation ' in line:
                current = {}
                blocks.append(current)
                continue
            match = METRIC_LINE.search(line)
            if current is not None and match:
                current[match.group(1)] = float(match.group(2))
            elif current is not None and line.strip():
                current = None
    return blocks


def last_validation(log_path: str) -> Dict[str, float]:
    """The metrics of the last ``Validation <set>`` block of a BasicSR log ({} when it has none)."""
    blocks = validations(log_path)
    return blocks[-1] if blocks else {}


def find_result(root: str, name: str) -> Tuple[Dict[str, float], str]:
    """(metrics, source) of experiment ``name``: its newest test log, else its newest training log, else ({}, '')."""
    for pattern, kind in ((os.path.join(root, 'results', name, f'test_{name}_*.log'), 'ddr-test'),
                          (os.path.join(root, 'experiments', name, f'train_{name}_*.log'), 'last validation')):
        for path in sorted(glob.glob(pattern), key=os.path.getmtime, reverse=True):
            metrics = last_validation(path)
            if 'psnr' in metrics:
                return metrics, f'{kind}: {os.path.relpath(path, root)}'
    return {}, ''


def experiments() -> List[Tuple[str, str, str, str, str, Tuple[float, float], Dict[str, Any]]]:
    """(table, model, dataset, row label, experiment name, paper PSNR/SSIM, the option file's settings) of every
    experiment, in table order."""
    rows = []
    for dataset, settings in DATASETS.items():
        table = settings['table'][0]
        for arch in ARCHS:
            for loss, (_, label, _) in LOSSES.items():
                name = experiment_name(arch, dataset, loss)
                rows.append((table, ARCHS[arch]['label'], settings['label'], label, name,
                             TABLES4_5[(arch, dataset)][loss], train_options(arch, dataset, name, {})))
    gopro = experiment_name('nafnet', 'gopro', 'ddr')
    for suffix, description, _, result in TABLE6_ABLATIONS:
        name = experiment_name('nafnet', 'gopro', 'ddr', suffix)
        rows.append(('Table 6', 'NAFNet', 'GoPro', description, name, result,
                     train_options('nafnet', 'gopro', name, {})))
    rows.append(('Table 6', 'NAFNet', 'GoPro', 'full setting (Table 4 run)', gopro,
                 TABLES4_5[('nafnet', 'gopro')]['ddr'], train_options('nafnet', 'gopro', gopro, {})))
    return rows


def run_options(root: str, name: str) -> Optional[Dict[str, Any]]:
    """The options experiment ``name`` trained with: BasicSR's copy of its option file in ``experiments/<name>/``
    (the newest), with the ``--force_yml`` values of the command line recorded in it; None without a copy.
    ValueError when the copy cannot be read or its ``--force_yml`` values applied."""
    import yaml

    from ddr_basicsr.host.options import load_yaml, parse_force_yml_value
    copies = sorted(glob.glob(os.path.join(root, 'experiments', name, '*.yml')), key=os.path.getmtime)
    if not copies:
        return None
    try:
        options = load_yaml(copies[-1])
    except yaml.YAMLError as error:
        raise ValueError(f'its option file copy {copies[-1]} cannot be read ({error})') from error
    with open(copies[-1], encoding='utf-8') as handle:
        header = [line[1:].strip() for line in handle.readlines()[:3] if line.startswith('#')]
    command = shlex.split(header[2]) if len(header) > 2 and header[1] == 'CMD:' else []
    forced = command[command.index('--force_yml') + 1:] if '--force_yml' in command else []
    for entry in forced:
        if entry.startswith('--'):
            break
        try:
            keys, value = entry.split('=', 1)
            target = options
            *parents, last = keys.strip().split(':')
            for key in parents:
                target = target[key]
            target[last] = parse_force_yml_value(value)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f'its command line\'s --force_yml {entry} cannot be applied to {copies[-1]} '
                             f'({type(error).__name__}: {error})') from error
    return options


def _data_identity(data_set: Mapping[str, Any]) -> Dict[str, Any]:
    identity = {key: data_set.get(key) for key in DATA_KEYS}
    for key in ('dataroot_gt', 'dataroot_lq'):
        identity[key] = '/'.join(str(data_set.get(key, '')).replace(os.sep, '/').rstrip('/').split('/')[-2:])
    return identity


def reached_iteration(root: str, name: str) -> int:
    """The highest iteration logged by the training logs of experiment ``name`` (0 without any)."""
    highest = 0
    for path in glob.glob(os.path.join(root, 'experiments', name, f'train_{name}_*.log')):
        with open(path, encoding='utf-8', errors='replace') as handle:
            for line in handle:
                match = ITER_LINE.search(line)
                if match:
                    highest = max(highest, int(match.group(1).replace(',', '')))
    return highest


def run_problems(root: str, name: str, expected: Mapping[str, Any]) -> List[str]:
    """Why the run ``name`` under ``root`` is not the option file's (``expected``): network, data, iterations."""
    try:
        options = run_options(root, name)
    except ValueError as error:
        return [str(error)]
    if options is None:
        return [f'no copy of its option file in experiments/{name}/, so its network, data and iterations cannot '
                'be checked']
    problems = []
    if dict(options.get('network_g') or {}) != expected['network_g']:
        problems.append(f"network_g {dict(options.get('network_g') or {})} is not the option file's "
                        f"{expected['network_g']}")
    for phase in ('train', 'val'):
        ours = _data_identity((options.get('datasets') or {}).get(phase) or {})
        wanted = _data_identity(expected['datasets'][phase])
        if ours != wanted:
            changed = {key: value for key, value in ours.items() if wanted[key] != value}
            problems.append(f'{phase} data {changed} are not the option file\'s '
                            f'{ {key: wanted[key] for key in changed} }')
    total = expected['train']['total_iter']
    planned = (options.get('train') or {}).get('total_iter')
    if planned != total:
        problems.append(f"total_iter {planned} is not the option file's {total}")
    reached = reached_iteration(root, name)
    if reached < total:
        problems.append(f'its training log reaches iteration {reached} of {total}')
    return problems


def tables4_6(root: str = '.') -> Report:
    """Collect the results under ``root`` and write ``tables4-6.md`` / ``.csv``."""
    rows, missing, apart = [], 0, {}
    for table, model, dataset, label, name, (paper_psnr, paper_ssim), expected in experiments():
        metrics, source = find_result(root, name)
        problems = run_problems(root, name, expected) if metrics else []
        if problems:
            apart[name] = (f'{name}: PSNR {metrics["psnr"]:.4f} / SSIM {metrics.get("ssim", float("nan")):.4f} '
                           f'({source}) not counted as ours: ' + '; '.join(problems))
            metrics, source = {}, f'not counted: the run differs from options/ (see the notes): {name}'
        missing += not metrics
        psnr, ssim = metrics.get('psnr'), metrics.get('ssim')
        rows.append([table, model, dataset, label, psnr, paper_psnr, difference(psnr, paper_psnr), ssim, paper_ssim,
                     difference(ssim, paper_ssim), source or f'not found: results/{name}/ or experiments/{name}/'])
    protocol = {
        'results root': os.path.abspath(root),
        'sources': 'newest results/<name>/test_<name>_*.log of ddr-test -opt options/test/<stem>.yml, else the last '
                   'validation of experiments/<name>/train_<name>_*.log',
        'metrics': 'as the option files compute them: PSNR/SSIM on RGB uint8, no border crop; RealBlur with the '
                   'ECC-aligned protocol in options/test/ (training validation: plain)',
        'precision': 'BasicSR logs 4 decimals',
        'runs counted': 'only runs whose option-file copy in experiments/<name>/ (with its --force_yml values) has '
                        'the option file\'s network_g, data sets (names, types, gt_size, last two parts of each '
                        'path) and total_iter, and whose training log reached total_iter',
    }
    notes = [f'{missing} of {len(rows)} experiments have no result yet'] if missing else []
    notes += [f'Listed apart (not ours for the table): {entry}' for entry in apart.values()]
    return Report('tables4-6', 'Tables 4-6: restoration results (PSNR / SSIM)',
                  'Our finished runs beside the paper\'s numbers; difference = ours - paper.',
                  ['Table', 'Model', 'Dataset', 'Loss / setting', 'PSNR (ours)', 'PSNR (paper)', 'PSNR (diff)',
                   'SSIM (ours)', 'SSIM (paper)', 'SSIM (diff)', 'Source'], rows, protocol, notes)
