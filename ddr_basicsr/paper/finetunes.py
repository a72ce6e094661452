"""Fine-tunes of the official checkpoints (``options/finetune/``, beyond the paper), each beside its start.

The starting point is the validation at iteration 0 of the fine-tune's own training log (``val.val_at_start``:
the official checkpoint, same data and metrics); the result is the newest ``ddr-test`` log of the run, else the
last validation of its training log (as :mod:`ddr_basicsr.paper.tables4_6` reads them). The PSNR-only control of
the same schedule follows each DDR fine-tune: what DDR adds is the difference between the two gains.
"""
import glob
import os
from typing import Dict, Tuple

from ddr_basicsr.paper.common import Report, difference
from ddr_basicsr.paper.tables4_6 import find_result, validations
from ddr_basicsr.tools.option_file_generator import FINETUNE_LOSSES, FINETUNES, LOSSES, finetune_name


def starting_point(root: str, name: str) -> Tuple[Dict[str, float], str]:
    """(metrics, source) of the iteration-0 validation in the newest training log of ``name``, else ({}, '')."""
    pattern = os.path.join(root, 'experiments', name, f'train_{name}_*.log')
    for path in sorted(glob.glob(pattern), key=os.path.getmtime, reverse=True):
        with open(path, encoding='utf-8', errors='replace') as handle:
            starts_at_zero = '@ 0 iter' in handle.read()
        blocks = validations(path)
        if starts_at_zero and blocks and 'psnr' in blocks[0]:
            return blocks[0], os.path.relpath(path, root)
    return {}, ''


def finetunes(root: str = '.') -> Report:
    """Collect the fine-tunes under ``root`` and write ``finetunes.md`` / ``.csv``."""
    rows, missing = [], 0
    for key, settings in FINETUNES.items():
        for loss in FINETUNE_LOSSES:
            name = finetune_name(key, loss)
            start, start_source = starting_point(root, name)
            result, source = find_result(root, name)
            missing += not result
            row = [settings['label'], LOSSES[loss][1]]
            for metric in ('psnr', 'ssim'):
                row += [start.get(metric), result.get(metric), difference(result.get(metric), start.get(metric))]
            rows.append(row + [source or f'not found: results/{name}/ or experiments/{name}/',
                               start_source or 'no iteration-0 validation'])
    protocol = {'results root': os.path.abspath(root), 'runs': 'options/finetune/*.yml (their headers give the '
                'schedule)', 'start': 'validation at iteration 0 of the training log (val.val_at_start)',
                'result': 'newest results/<name>/test_<name>_*.log, else the last validation of the training log',
                'metrics': 'PSNR/SSIM on RGB uint8 GoPro test images, no border crop; BasicSR logs 4 decimals'}
    notes = [f'{missing} of {len(rows)} fine-tunes have no result yet'] if missing else []
    return Report('finetunes', 'Fine-tunes of the official GoPro checkpoints (beyond the paper)',
                  'Each run beside its starting checkpoint; gain = fine-tuned - start. Compare the DDR gain with '
                  'the gain of the PSNR-only control of the same schedule.',
                  ['Model', 'Losses', 'PSNR (start)', 'PSNR (fine-tuned)', 'PSNR (gain)', 'SSIM (start)',
                   'SSIM (fine-tuned)', 'SSIM (gain)', 'Source', 'Start source'], rows, protocol, notes)
