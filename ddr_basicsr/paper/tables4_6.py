"""Tables 4-6 (restoration): collect PSNR / SSIM of finished runs and put them beside the paper's.

For every experiment of the option files (:mod:`ddr_basicsr.option_files`: Tables 4-5 for NAFNet and Restormer on
GoPro, RealBlur and RealSR-City100 with six losses; Table 6's ablation on NAFNet/GoPro), the result is read from
the newest ``ddr-test`` log, ``<root>/results/<name>/test_<name>_*.log`` (``options/test/<stem>.yml``); without
one, from the last validation of the training log ``<root>/experiments/<name>/train_<name>_*.log`` (marked as
such). BasicSR logs 4 decimals.
"""
import glob
import os
import re
from typing import Dict, List, Optional, Tuple

from ddr_basicsr.option_files import ARCHS, DATASETS, LOSSES, experiment_name
from ddr_basicsr.paper.common import Report, difference
from ddr_basicsr.paper.numbers import TABLE6_ABLATIONS, TABLES4_5

METRIC_LINE = re.compile(r'#\s*(\w+):\s*(-?[\d.]+(?:e-?\d+)?)')


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


def experiments() -> List[Tuple[str, str, str, str, str, Tuple[float, float]]]:
    """(table, model, dataset, row label, experiment name, paper PSNR/SSIM) of every experiment, in table order."""
    rows = []
    for dataset, settings in DATASETS.items():
        table = settings['table'][0]
        for arch in ARCHS:
            for loss, (_, label, _) in LOSSES.items():
                rows.append((table, ARCHS[arch]['label'], settings['label'], label,
                             experiment_name(arch, dataset, loss), TABLES4_5[(arch, dataset)][loss]))
    for suffix, description, _, result in TABLE6_ABLATIONS:
        rows.append(('Table 6', 'NAFNet', 'GoPro', description, experiment_name('nafnet', 'gopro', 'ddr', suffix),
                     result))
    rows.append(('Table 6', 'NAFNet', 'GoPro', 'full setting (Table 4 run)', experiment_name('nafnet', 'gopro', 'ddr'),
                 TABLES4_5[('nafnet', 'gopro')]['ddr']))
    return rows


def tables4_6(root: str = '.') -> Report:
    """Collect the results under ``root`` and write ``tables4-6.md`` / ``.csv``."""
    rows, missing = [], 0
    for table, model, dataset, label, name, (paper_psnr, paper_ssim) in experiments():
        metrics, source = find_result(root, name)
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
    }
    notes = [f'{missing} of {len(rows)} experiments have no result yet'] if missing else []
    return Report('tables4-6', 'Tables 4-6: restoration results (PSNR / SSIM)',
                  'Our finished runs beside the paper\'s numbers; difference = ours - paper.',
                  ['Table', 'Model', 'Dataset', 'Loss / setting', 'PSNR (ours)', 'PSNR (paper)', 'PSNR (diff)',
                   'SSIM (ours)', 'SSIM (paper)', 'SSIM (diff)', 'Source'], rows, protocol, notes)
