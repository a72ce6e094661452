"""Table 3: opinion-unaware blind IQA on eight datasets (SRCC): DDR and the NIQE, IL-NIQE and PIQE baselines in one
run, the other methods quoted from the paper.

NIQE is the project's one NIQE (:func:`ddr_basicsr.iqa.evaluation.niqe_score`, as ``eval_biqa.py``). IL-NIQE and
PIQE come from pyiqa (``pip install ddr-basicsr[iqa]``; pyiqa's licence is non-commercial), created with
``pyiqa.create_metric(name)``. All are fed the same decoded, resized RGB image as DDR. IL-NIQE needs a parameter
file that pyiqa downloads on first use; offline, :class:`BaselineUnavailable` says which file to put where. QAC,
LPSI, dipIQ, SNP-NIQE, NPQI and ContentSep are quoted from the paper and marked so. DDR is the blind-IQA DDR of
Eq. 7 (D = {color, noise, blur, exposure}).
"""
import os
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import torch

from ddr_basicsr.core.prompts import BIQA_DEGRADATIONS
from ddr_basicsr.iqa.evaluation import NIQE_SOURCE, niqe_of_file, srcc
from ddr_basicsr.paper import common
from ddr_basicsr.paper.folders import DEFAULT_ROOTS
from ddr_basicsr.paper.numbers import TABLE3, TABLE3_QUOTED
from ddr_basicsr.utils.image_io import read_image

#: pyiqa metric name of each Table 3 baseline pyiqa runs, and the parameter file it downloads (None: needs none).
PYIQA_BASELINES: Dict[str, Optional[str]] = {'ilniqe': 'ILNIQE_templateModel.mat', 'piqe': None}
#: Every baseline we run: NIQE (ours, shared with eval_biqa.py) and the pyiqa ones.
BASELINES = ('niqe', *PYIQA_BASELINES)
LABELS = {'niqe': 'NIQE', 'qac': 'QAC', 'piqe': 'PIQE', 'lpsi': 'LPSI', 'ilniqe': 'IL-NIQE', 'dipiq': 'dipIQ',
          'snp-niqe': 'SNP-NIQE', 'npqi': 'NPQI', 'contentsep': 'ContentSep', 'ddr': 'DDR'}
INSTALL_HINT = 'pip install "ddr-basicsr[iqa]" (or pip install pyiqa; pyiqa\'s licence is non-commercial)'


class BaselineUnavailable(RuntimeError):
    """A pyiqa baseline cannot be created (pyiqa missing, parameters not downloadable); the message says the fix."""


def pyiqa_metric(name: str, device: Optional[str] = None):
    """``pyiqa.create_metric(name)``; raises :class:`BaselineUnavailable` with the fix when it cannot be had."""
    if name not in PYIQA_BASELINES:
        raise ValueError(f'unknown baseline {name!r}; choose among {", ".join(PYIQA_BASELINES)}')
    try:
        import pyiqa
        from pyiqa.utils.download_util import DEFAULT_CACHE_DIR
    except ImportError as error:
        raise BaselineUnavailable(f'{LABELS[name]} needs pyiqa, which is not installed ({error}): '
                                  f'{INSTALL_HINT}; or leave it out with --baselines') from error
    try:
        return pyiqa.create_metric(name, device=torch.device(device or 'cpu'))
    except Exception as error:  # pyiqa's downloads raise URLError, HTTPError, OSError, ... offline
        parameter_file = PYIQA_BASELINES[name]
        where = (f' Offline? Download {parameter_file} (https://huggingface.co/chaofengc/IQA-PyTorch-Weights) and '
                 f'put it at {os.path.join(DEFAULT_CACHE_DIR, parameter_file)}.' if parameter_file else '')
        raise BaselineUnavailable(f'pyiqa could not create {LABELS[name]}: {type(error).__name__}: {error}.'
                                  f'{where}') from error


def niqe_measure(short_side: Optional[int]) -> Callable[[str], dict]:
    """path -> {'score': NIQE} of the image decoded and resized as for DDR (``niqe_of_file``); failures raise
    ValueError."""
    def measure(path: str) -> dict:
        _, value, error = niqe_of_file((path, short_side))
        if error:
            raise ValueError(error)
        return {'score': value}
    return measure


def baseline_measure(metric, short_side: Optional[int]) -> Callable[[str], dict]:
    """path -> {'score': pyiqa score} of the image decoded and resized as for DDR; failures become ValueError."""
    def measure(path: str) -> dict:
        image = read_image(path, short_side)[None].to(metric.device)
        try:
            with torch.no_grad():
                return {'score': float(metric(image))}
        except (RuntimeError, AssertionError, IndexError) as error:
            raise ValueError(f'{type(error).__name__}: {error} (image {tuple(image.shape[-2:])} px)') from error
    return measure


def available_datasets(roots: Mapping[str, str], names: Optional[Sequence[str]]) -> List[str]:
    """``names`` when given, else every dataset of Table 3 whose folder exists (an error when none does)."""
    if names:
        return list(names)
    found = [name for name in TABLE3 if os.path.isdir(roots.get(name, DEFAULT_ROOTS[name]))]
    if not found:
        places = ', '.join(f'{name}={roots.get(name, DEFAULT_ROOTS[name])}' for name in TABLE3)
        raise FileNotFoundError(f'no Table 3 dataset found (looked at {places}); pass --root NAME=PATH')
    return found


def table3(roots: Mapping[str, str], output_dir: str, model: common.ModelChoice,
           datasets: Optional[Sequence[str]] = None,
           baselines: Sequence[str] = BASELINES) -> common.Report:
    """Score each dataset with DDR and the ``baselines``; write ``table3.md`` / ``.csv``."""
    unknown = [name for name in baselines if name not in BASELINES]
    if unknown:
        raise ValueError(f'unknown baseline(s) {unknown}; choose among {", ".join(BASELINES)}')
    metrics = {name: pyiqa_metric(name, model.device) for name in baselines if name != 'niqe'}
    ddr = model.ddr(degradations=list(BIQA_DEGRADATIONS))
    computed = ['ddr', *baselines]
    names = available_datasets(roots, datasets)
    rows, failures, protocol = [], [], {}
    for name in names:
        dataset, short_side, choices = common.open_dataset(name, roots)
        protocol[name] = '; '.join(f'{key}={value}' for key, value in choices.items())
        ddr_cache, failed = common.score_ddr(ddr, dataset, short_side, choices, output_dir, 'table3', model)
        failures += failed
        scores = {'ddr': (common.cached_values(dataset, ddr_cache, lambda record: record['ddr']), False)}
        for baseline in baselines:
            if baseline == 'niqe':
                source, measure, lower_better = {'niqe': NIQE_SOURCE}, niqe_measure(short_side), True
            else:
                metric = metrics[baseline]
                source, measure, lower_better = {'pyiqa': baseline}, baseline_measure(metric, short_side), \
                    metric.lower_better
            settings = {'dataset': name, 'loader': dict(choices), **source}
            cache = common.open_cache(output_dir, 'table3', f'{name}-{baseline}', settings)
            failures += common.fill_cache(dataset, cache, measure, f'{LABELS[baseline]} {name}')
            values = common.cached_values(dataset, cache, lambda record: record['score'])
            scores[baseline] = (values, lower_better)
        row = [name, len(dataset.items)]
        for method in computed:
            values, lower_better = scores[method]
            sign = 1 if (not lower_better) == dataset.higher_better else -1
            ours, paper = sign * srcc(values, list(dataset.scores)), TABLE3[name][method]
            row += [ours, paper, common.difference(ours, paper)]
        rows.append(row + [TABLE3[name][method] for method in TABLE3_QUOTED])
    header = ['Dataset', 'Images'] + [f'{LABELS[method]} {part}' for method in computed
                                      for part in ('(ours)', '(paper)', '(diff)')]
    header += [f'{LABELS[method]} (quoted)' for method in TABLE3_QUOTED]
    protocol = {
        'DDR': f'Eq. 7, D = {{{", ".join(BIQA_DEGRADATIONS)}}}, adaptation on, cosine; CLIP '
               f'{model.clip_label}, {model.precision}',
        'baselines run': ', '.join(f'{LABELS[name]} = ' + (NIQE_SOURCE if name == 'niqe' else
                                                            f'pyiqa.create_metric({name!r})')
                                   for name in baselines) or 'none',
        'baseline input': 'the RGB image DDR sees (same decoding and resize), float in [0, 1]',
        'quoted': ', '.join(LABELS[method] for method in TABLE3_QUOTED) + ': the paper\'s values, not run here',
        'SRCC': 'Spearman over every distorted image, sign flipped when exactly one of (metric, subjective score) '
                'is lower-is-better, so agreement with people is positive',
        **{f'{name} loader': value for name, value in protocol.items()},
    }
    notes = [f'Datasets not found and skipped: {", ".join(sorted(set(TABLE3) - set(names)))}'] \
        if not datasets and set(TABLE3) - set(names) else []
    return common.Report('table3', 'Table 3: opinion-unaware blind IQA (SRCC)',
                  'SRCC with the subjective scores; methods we run show ours, the paper\'s and the difference (ours - '
                  'paper); "(quoted)" columns are the paper\'s numbers, not run here.', header, rows, protocol,
                  notes, failures=failures)
