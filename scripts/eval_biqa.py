"""Opinion-unaware blind-IQA benchmark of the paper's Table 3: DDR and BasicSR's NIQE, SRCC/PLCC/KRCC.

Every distorted image of each dataset (``ddr_basicsr.iqa_datasets``) is scored by each metric; the
correlations with the subjective scores are taken over the whole set. Directions are handled: a
correlation is multiplied by -1 when exactly one of (metric, subjective score) is lower-is-better
(NIQE; DMOS of CSIQ and LIVE), so a metric that agrees with people gets a positive number, as in the
paper. PLCC is the plain Pearson correlation (no nonlinear regression).

Per-image scores are appended to ``OUTPUT/cache/<dataset>-<metric>-<settings hash>.jsonl`` after
every batch (flushed and fsynced), so an interrupted run resumes where it stopped; changing a setting
that changes scores (model, degradations, resolution, ...) uses a fresh cache file.

    python scripts/eval_biqa.py --dataset csiq=datasets/CSIQ --dataset livec=datasets/ChallengeDB_release \\
        --output-dir results/biqa

Outputs: ``biqa_results.md`` and ``biqa_results.csv`` (with the paper's Table 3 DDR and NIQE SRCC and
the resolution choices), ``scores_<dataset>.csv`` (per image). Exit status 1 if an image failed.
"""
import argparse
import csv
import hashlib
import io
import json
import math
import multiprocessing
import os
import sys
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from basicsr.metrics.niqe import calculate_niqe
from scipy import stats
from tqdm import tqdm

from ddr_basicsr.atomic_files import write_text_atomically
from ddr_basicsr.cli_options import add_model_arguments
from ddr_basicsr.image_io import decode_image, resize_short_side, to_tensor
from ddr_basicsr.iqa_datasets import (
    KONIQ_RESOLUTIONS,
    KONIQ_SCORE_COLUMNS,
    LIVE_DMOS_CHOICES,
    LOADERS,
    IQADataset,
    load_dataset,
)
from ddr_basicsr.scoring import build_ddr, iter_quality_scores, load_prompts

#: Table 3 of the paper: SRCC of NIQE and of DDR ("Ours") on each dataset.
PAPER_TABLE3 = {
    'csiq': {'niqe': 0.6191, 'ddr': 0.8289},
    'live': {'niqe': 0.9062, 'ddr': 0.8793},
    'tid2013': {'niqe': 0.3106, 'ddr': 0.5844},
    'kadid10k': {'niqe': 0.3779, 'ddr': 0.5968},
    'koniq10k': {'niqe': 0.5300, 'ddr': 0.6455},
    'livec': {'niqe': 0.4495, 'ddr': 0.6613},
    'cid2013': {'niqe': 0.6589, 'ddr': 0.8009},
    'spaq': {'niqe': 0.3105, 'ddr': 0.7249},
}
#: Metric name -> True when a higher score means better quality.
METRIC_HIGHER_BETTER = {'ddr': True, 'niqe': False}


# ----------------------------------------------------------------------------------------------------------
# per-image score cache


class ScoreCache:
    """Append-only JSON-lines file of per-image records ``{"image": ..., "<metric>": ...}``.

    The first line holds the settings the scores depend on. A partially written last line (a run
    killed mid-write) is cut off when the file is opened.
    """

    def __init__(self, path: str, settings: Mapping[str, object]):
        self.path = path
        self.records: Dict[str, dict] = {}
        header = json.dumps({'settings': settings}, sort_keys=True)
        if os.path.isfile(path):
            self._load(header)
        else:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._append([header])

    def _load(self, header: str) -> None:
        with open(self.path, 'rb') as handle:
            content = handle.read()
        complete = content[:content.rfind(b'\n') + 1]
        if len(complete) != len(content):
            with open(self.path, 'r+b') as handle:
                handle.truncate(len(complete))
        lines = complete.decode('utf-8').splitlines()
        if not lines or json.dumps(json.loads(lines[0]), sort_keys=True) != header:
            raise ValueError(f'{self.path} was written with other settings; delete it to start over')
        for line in lines[1:]:
            record = json.loads(line)
            self.records[record['image']] = record

    def _append(self, lines: Sequence[str]) -> None:
        with open(self.path, 'a', encoding='utf-8') as handle:
            handle.write(''.join(line + '\n' for line in lines))
            handle.flush()
            os.fsync(handle.fileno())

    def add(self, records: Sequence[dict]) -> None:
        """Append ``records`` durably (one write, flushed and fsynced)."""
        if records:
            self._append([json.dumps(record, sort_keys=True) for record in records])
            self.records.update((record['image'], record) for record in records)


def settings_hash(settings: Mapping[str, object]) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode('utf-8')).hexdigest()[:10]


# ----------------------------------------------------------------------------------------------------------
# metrics


@dataclass
class Failure:
    image: str
    metric: str
    error: str


def run_ddr(ddr, dataset: IQADataset, cache: ScoreCache, short_side: Optional[int], batch_size: int,
            workers: int) -> List[Failure]:
    """Score the images of ``dataset`` missing from ``cache`` with DDR; returns the failures."""
    todo = [path for path in dataset.paths if relative_name(dataset, path) not in cache.records]
    failures, buffer = [], []
    try:
        for result in iter_quality_scores(ddr, todo, batch_size, workers, short_side,
                                          description=f'DDR {dataset.name}'):
            name = relative_name(dataset, result.path)
            if result.error:
                failures.append(Failure(name, 'ddr', result.error))
                continue
            buffer.append({'image': name, 'ddr': result.quality, 'responses': result.responses})
            if len(buffer) >= batch_size:
                cache.add(buffer)
                buffer = []
    finally:
        cache.add(buffer)
    return failures


def niqe_of_file(task: Tuple[str, Optional[int]]) -> Tuple[str, Optional[float], str]:
    """BasicSR's NIQE (Y channel, no border crop) of one file, preprocessed like the DDR input."""
    path, short_side = task
    try:
        image = resize_short_side(to_tensor(decode_image(path)), short_side).numpy()
        if image.dtype != np.uint8:
            image = image * 255.0
        value = calculate_niqe(image[::-1].transpose(1, 2, 0), crop_border=0, input_order='HWC', convert_to='y')
    except Exception as error:  # NIQE fails in many ways on small/flat images; the image is reported
        return path, None, f'{type(error).__name__}: {error}'
    if not math.isfinite(value):
        return path, None, 'NIQE is not finite (image too small or flat: it needs at least 2 blocks of 96x96 px)'
    return path, float(value), ''


def run_niqe(dataset: IQADataset, cache: ScoreCache, short_side: Optional[int], workers: int,
             flush_every: int = 16) -> List[Failure]:
    """Score the images of ``dataset`` missing from ``cache`` with NIQE, in ``workers`` processes."""
    todo = [(path, short_side) for path in dataset.paths if relative_name(dataset, path) not in cache.records]
    failures, buffer = [], []
    pool = multiprocessing.Pool(workers) if workers > 0 and len(todo) > 1 else None
    results: Iterable = pool.imap_unordered(niqe_of_file, todo) if pool else map(niqe_of_file, todo)
    try:
        for path, value, error in tqdm(results, total=len(todo), unit='img', desc=f'NIQE {dataset.name}',
                                       file=sys.stderr):
            name = relative_name(dataset, path)
            if error:
                failures.append(Failure(name, 'niqe', error))
                continue
            buffer.append({'image': name, 'niqe': value})
            if len(buffer) >= flush_every:
                cache.add(buffer)
                buffer = []
    finally:
        cache.add(buffer)
        if pool:
            pool.terminate()
    return failures


def relative_name(dataset: IQADataset, path: str) -> str:
    return os.path.relpath(path, dataset.root).replace(os.sep, '/')


# ----------------------------------------------------------------------------------------------------------
# correlations


def correlations(predicted: np.ndarray, subjective: np.ndarray, sign: int) -> Dict[str, float]:
    """SRCC, PLCC (plain Pearson) and KRCC, multiplied by ``sign`` (+1/-1) to handle score directions."""
    if len(predicted) < 3:
        return {'srcc': math.nan, 'plcc': math.nan, 'krcc': math.nan}
    return {'srcc': sign * float(stats.spearmanr(predicted, subjective)[0]),
            'plcc': sign * float(stats.pearsonr(predicted, subjective)[0]),
            'krcc': sign * float(stats.kendalltau(predicted, subjective)[0])}


def direction_sign(metric: str, dataset: IQADataset) -> int:
    return 1 if METRIC_HIGHER_BETTER[metric] == dataset.higher_better else -1


# ----------------------------------------------------------------------------------------------------------
# reports


def _number(value: Optional[float]) -> str:
    return '' if value is None or (isinstance(value, float) and math.isnan(value)) else f'{value:.4f}'


def format_results_csv(rows: Sequence[dict]) -> str:
    buffer = io.StringIO()
    fields = ['dataset', 'metric', 'images', 'scored', 'srcc', 'plcc', 'krcc', 'paper_srcc', 'subjective_score',
              'options']
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator='\n')
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **{key: _number(row[key]) for key in ('srcc', 'plcc', 'krcc', 'paper_srcc')}})
    return buffer.getvalue()


def format_results_markdown(rows: Sequence[dict], metrics: Sequence[str], settings: Mapping[str, object]) -> str:
    by_dataset: Dict[str, Dict[str, dict]] = {}
    for row in rows:
        by_dataset.setdefault(row['dataset'], {})[row['metric']] = row
    header = ['Dataset', 'Images']
    for metric in metrics:
        label = metric.upper()
        header += [f'{label} SRCC', f'{label} SRCC (paper)', f'{label} PLCC', f'{label} KRCC']
    lines = ['# Opinion-unaware blind IQA (paper Table 3)', '',
             'Correlations with the subjective scores over every distorted image, score directions handled '
             '(positive = agrees with people); PLCC without nonlinear regression.', '',
             '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for dataset, entries in by_dataset.items():
        first = next(iter(entries.values()))
        cells = [dataset, f"{min(entry['scored'] for entry in entries.values())}/{first['images']}"]
        for metric in metrics:
            entry = entries.get(metric, {})
            cells += [_number(entry.get(key)) for key in ('srcc', 'paper_srcc', 'plcc', 'krcc')]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', '## Settings', '']
    lines += [f'- {key}: {value}' for key, value in settings.items()]
    for dataset, entries in by_dataset.items():
        first = next(iter(entries.values()))
        lines.append(f"- {dataset}: subjective score {first['subjective_score']}; {first['options']}")
    return '\n'.join(lines) + '\n'


def format_scores_csv(dataset: IQADataset, caches: Mapping[str, ScoreCache]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(['image', dataset.score_label, *caches])
    for path, subjective in dataset.items:
        name = relative_name(dataset, path)
        values = [cache.records.get(name, {}).get(metric) for metric, cache in caches.items()]
        writer.writerow([name, subjective, *('' if value is None else f'{value:.8g}' for value in values)])
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------------------
# command line


def parse_dataset(text: str) -> Tuple[str, str]:
    name, separator, root = text.partition('=')
    if not separator or name not in LOADERS:
        raise argparse.ArgumentTypeError(f'expected NAME=ROOT with NAME in {", ".join(LOADERS)}, got {text!r}')
    return name, root


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dataset', action='append', type=parse_dataset, required=True, metavar='NAME=ROOT',
                        help=f'dataset to evaluate (repeatable); NAME in {", ".join(LOADERS)}')
    parser.add_argument('--output-dir', required=True, help='results and per-image score cache go here')
    parser.add_argument('--metrics', default='ddr,niqe', help='comma-separated, among ddr, niqe (default: both)')
    parser.add_argument('--koniq-resolution', default='1024x768', choices=KONIQ_RESOLUTIONS,
                        help='KonIQ-10k image folder (default: 1024x768)')
    parser.add_argument('--koniq-score', default='MOS_zscore', choices=KONIQ_SCORE_COLUMNS,
                        help='KonIQ-10k subjective score column (default: MOS_zscore)')
    parser.add_argument('--spaq-short-side', type=int, default=512, metavar='PX',
                        help='resize SPAQ photos so the shorter side is PX (bilinear, antialiased; 0 = full '
                             'resolution; default: 512 as in SPAQ\'s official evaluation)')
    parser.add_argument('--live-dmos', default='realigned', choices=LIVE_DMOS_CHOICES,
                        help='LIVE scores: dmos_realigned.mat (default) or dmos.mat')
    parser.add_argument('--niqe-workers', type=int, default=os.cpu_count() or 1,
                        help='NIQE processes (0: in this process; default: all CPUs)')
    add_model_arguments(parser)
    return parser


def dataset_options(name: str, args: argparse.Namespace) -> Tuple[dict, Optional[int]]:
    """Loader options and the shorter-side resize of dataset ``name`` from the command line."""
    if name == 'koniq10k':
        return {'resolution': args.koniq_resolution, 'score_column': args.koniq_score}, None
    if name == 'live':
        return {'dmos': args.live_dmos}, None
    if name == 'spaq':
        return {}, args.spaq_short_side or None
    return {}, None


def metric_settings(name: str, metric: str, options: Mapping, short_side: Optional[int], ddr) -> dict:
    """Everything the per-image scores of ``metric`` on dataset ``name`` depend on (the cache key)."""
    settings = {'dataset': name, 'metric': metric, 'loader_options': dict(options), 'short_side': short_side}
    if metric == 'ddr':
        settings.update({'clip': ddr.clip_description, 'prompts': dict(ddr.prompts), 'precision': ddr.precision,
                         'adaptation': ddr.adaptation, 'distance': ddr.distance})
    return settings


def result_row(dataset: IQADataset, metric: str, cache: ScoreCache, options: Mapping,
               short_side: Optional[int]) -> dict:
    """Correlations of the cached scores of ``metric`` with the subjective scores, and what they were run with."""
    names = [relative_name(dataset, path) for path in dataset.paths]
    scored = [index for index, image in enumerate(names) if image in cache.records]
    predicted = np.array([cache.records[names[index]][metric] for index in scored])
    values = correlations(predicted, dataset.scores[scored], direction_sign(metric, dataset))
    direction = 'higher' if dataset.higher_better else 'lower'
    choices = [f'{key}={value}' for key, value in options.items()] + [f'short_side={short_side or "full resolution"}']
    return {'dataset': dataset.name, 'metric': metric, 'images': len(names), 'scored': len(scored), **values,
            'paper_srcc': PAPER_TABLE3[dataset.name][metric],
            'subjective_score': f'{dataset.score_label} ({direction} is better)', 'options': '; '.join(choices)}


def evaluate(args: argparse.Namespace, ddr_factory: Callable) -> Tuple[List[dict], List[Failure], dict]:
    """Score every dataset of ``args`` with every metric (resuming from the caches); rows for the report."""
    metrics = [metric.strip() for metric in args.metrics.split(',') if metric.strip()]
    unknown = [metric for metric in metrics if metric not in METRIC_HIGHER_BETTER]
    if unknown or not metrics:
        raise ValueError(f'unknown metric(s) {unknown}; choose among {", ".join(METRIC_HIGHER_BETTER)}')
    ddr = ddr_factory() if 'ddr' in metrics else None
    settings = {'metrics': ', '.join(metrics)}
    if ddr is not None:
        settings.update({'DDR model': ddr.clip_description, 'DDR degradations': ', '.join(ddr.degradation_names),
                         'DDR precision': ddr.precision, 'device': str(ddr.device)})
    settings['NIQE'] = 'basicsr.metrics.calculate_niqe (Y channel, crop_border 0)'
    rows, failures = [], []
    for name, root in args.dataset:
        options, short_side = dataset_options(name, args)
        dataset = load_dataset(name, root, **options)
        caches = {}
        for metric in metrics:
            key = metric_settings(name, metric, options, short_side, ddr)
            cache_path = os.path.join(args.output_dir, 'cache', f'{name}-{metric}-{settings_hash(key)}.jsonl')
            cache = caches[metric] = ScoreCache(cache_path, key)
            if metric == 'ddr':
                failures += run_ddr(ddr, dataset, cache, short_side, args.batch_size, args.workers)
            else:
                failures += run_niqe(dataset, cache, short_side, args.niqe_workers)
            rows.append(result_row(dataset, metric, cache, options, short_side))
        write_text_atomically(os.path.join(args.output_dir, f'scores_{name}.csv'), format_scores_csv(dataset, caches))
    return rows, failures, settings


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    prompts = load_prompts(args.prompts) if args.prompts else None

    def ddr_factory():
        return build_ddr(args.model, args.pretrained, args.degradations, prompts, args.device, args.precision)

    rows, failures, settings = evaluate(args, ddr_factory)
    metrics = list(dict.fromkeys(row['metric'] for row in rows))
    markdown = format_results_markdown(rows, metrics, settings)
    write_text_atomically(os.path.join(args.output_dir, 'biqa_results.md'), markdown)
    write_text_atomically(os.path.join(args.output_dir, 'biqa_results.csv'), format_results_csv(rows))
    print(markdown)
    for failure in failures:
        print(f'{failure.metric} failed on {failure.image}: {failure.error}', file=sys.stderr)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
