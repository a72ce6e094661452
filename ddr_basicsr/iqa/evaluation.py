"""Opinion-unaware blind-IQA evaluation of the paper's Table 3: DDR and NIQE (:func:`niqe_score`), SRCC/PLCC/KRCC.

Every distorted image of each dataset (:mod:`ddr_basicsr.iqa.datasets`) is scored by each metric; the
correlations with the subjective scores are taken over the whole set. Directions are handled: a
correlation is multiplied by -1 when exactly one of (metric, subjective score) is lower-is-better
(NIQE; DMOS of CSIQ and LIVE), so a metric that agrees with people gets a positive number, as in the
paper. PLCC is the plain Pearson correlation (no nonlinear regression).

Per-image scores are appended to ``OUTPUT/cache/<dataset>-<metric>-<settings hash>.jsonl`` in batches
(flushed and fsynced), so an interrupted run resumes where it stopped; changing a setting that changes
scores (model, degradations, resolution, ...) uses a fresh cache file. The reports are replaced only once
all of them are written. BasicSR (for NIQE) is imported only when NIQE is computed; NIQE runs in a pool of
worker processes (:mod:`ddr_basicsr.utils.worker_pools`).

An image a metric cannot score (unreadable, too small for NIQE, or a score that is not finite) is a
:class:`Failure`: it is named in the failures, left out of that metric's correlations (the ``scored``
column counts the images that are in) and never cached, so the next run tries it again.
"""
import csv
import hashlib
import io
import json
import math
import os
import sys
from concurrent.futures import as_completed
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy import stats
from tqdm import tqdm

from ddr_basicsr.core.ddr import DDR
from ddr_basicsr.iqa.datasets import IQADataset, load_dataset
from ddr_basicsr.iqa.scoring import ddr_settings, iter_quality_scores
from ddr_basicsr.utils.atomic_files import atomic_paths, write_text_atomically
from ddr_basicsr.utils.image_io import decode_image, resize_short_side, to_tensor
from ddr_basicsr.utils.worker_pools import worker_executor

__all__ = ['METRIC_HIGHER_BETTER', 'NIQE_BLOCK', 'NIQE_SOURCE', 'PAPER_TABLE3', 'TABLE3_METHODS', 'CacheError',
           'Failure', 'ScoreCache',
           'correlations', 'dataset_options', 'direction_sign', 'evaluate', 'format_number', 'format_results_csv',
           'format_results_markdown', 'format_scores_csv', 'metric_settings', 'niqe_of_file', 'niqe_score',
           'niqe_size_problem', 'record_outcomes', 'relative_name', 'result_row', 'run_ddr', 'run_niqe',
           'settings_hash', 'srcc', 'too_small_message', 'write_reports']

#: Table 3 of the paper: SRCC of the opinion-unaware methods on each dataset (column order of the paper; 'ddr'
#: is "Ours"), the one copy read by the evaluation reports and by the reproduction (ddr_basicsr.paper.numbers).
TABLE3_METHODS: Tuple[str, ...] = ('niqe', 'qac', 'piqe', 'lpsi', 'ilniqe', 'dipiq', 'snp-niqe', 'npqi', 'contentsep',
                                   'ddr')
_TABLE3_ROWS = {
    'csiq': (0.6191, 0.4804, 0.5120, 0.5218, 0.8045, 0.5191, 0.6090, 0.6341, 0.5871, 0.8289),
    'live': (0.9062, 0.8683, 0.8398, 0.8181, 0.8975, 0.9378, 0.9073, 0.9108, 0.7478, 0.8793),
    'tid2013': (0.3106, 0.3719, 0.3636, 0.3949, 0.4938, 0.4377, 0.3329, 0.2804, 0.2530, 0.5844),
    'kadid10k': (0.3779, 0.2394, 0.2372, 0.1478, 0.5406, 0.2977, 0.3719, 0.3909, 0.5060, 0.5968),
    'koniq10k': (0.5300, 0.3397, 0.2452, 0.2239, 0.5057, 0.2375, 0.6284, 0.6132, 0.6401, 0.6455),
    'livec': (0.4495, 0.2258, 0.2325, 0.0832, 0.4393, 0.2089, 0.4654, 0.4752, 0.5060, 0.6613),
    'cid2013': (0.6589, 0.0299, 0.0448, 0.3229, 0.3062, 0.3776, 0.7159, 0.7698, 0.6116, 0.8009),
    'spaq': (0.3105, 0.4397, 0.2317, 0.0001, 0.6959, 0.2189, 0.5402, 0.5999, 0.7084, 0.7249),
}
PAPER_TABLE3: Dict[str, Dict[str, float]] = {dataset: dict(zip(TABLE3_METHODS, values))
                                             for dataset, values in _TABLE3_ROWS.items()}
#: Metric name -> True when a higher score means better quality.
METRIC_HIGHER_BETTER = {'ddr': True, 'niqe': False}


# ----------------------------------------------------------------------------------------------------------
# per-image score cache


class CacheError(ValueError):
    """A score cache file that cannot be read; the message names the file, the line and the fix."""


class ScoreCache:
    """Append-only JSON-lines file of per-image records ``{"image": ..., "<metric>": <score>, ...}``.

    The first line holds the settings the scores depend on. A partially written last line (a run
    killed mid-write) is cut off when the file is opened, and a file left without its settings line is
    started again. With ``metric`` given, every record must hold a number under that key, and a record
    whose score is not finite (written by an older version) is ignored, so the image is scored again.
    Any other unreadable line is a :class:`CacheError` naming the file and line.
    """

    def __init__(self, path: str, settings: Mapping[str, object], metric: Optional[str] = None):
        self.path, self.metric = path, metric
        self.records: Dict[str, dict] = {}
        header = json.dumps({'settings': settings}, sort_keys=True)
        if not (os.path.isfile(path) and self._load(header)):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path, 'w', encoding='utf-8'):  # empties a file left without its settings line
                pass
            self._append([header])

    def _corrupt(self, number: int, problem: str) -> CacheError:
        return CacheError(f'score cache {self.path}, line {number}: {problem}. The file is written by '
                          'eval_biqa.py alone, so it was edited or damaged: delete that line (its image is scored '
                          'again) or the whole file (every image is scored again), then run again.')

    def _load(self, header: str) -> bool:
        """Read the records; False when the file holds no complete line (nothing to keep)."""
        with open(self.path, 'rb') as handle:
            content = handle.read()
        complete = content[:content.rfind(b'\n') + 1]
        if len(complete) != len(content):
            with open(self.path, 'r+b') as handle:
                handle.truncate(len(complete))
        lines = complete.splitlines()
        if not lines:
            return False
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
                raise self._corrupt(number, f'not a JSON record ({error})') from None
            if number == 1:
                if not isinstance(record, dict) or 'settings' not in record:
                    raise self._corrupt(1, 'the first line must hold the settings')
                if json.dumps(record, sort_keys=True) != header:
                    raise CacheError(f'{self.path} was written with other settings; delete it to start over')
                continue
            if not (isinstance(record, dict) and isinstance(record.get('image'), str)
                    and (self.metric is None or _is_number(record.get(self.metric)))):
                score = f'"{self.metric}": <number>, ' if self.metric else ''
                shown = line[:80].decode('utf-8', errors='replace')
                raise self._corrupt(number, f'expected {{"image": <name>, {score}...}}, got {shown!r}')
            if record['image'] in self.records:
                raise self._corrupt(number, f'a second record of {record["image"]}')
            if self.metric is None or math.isfinite(record[self.metric]):
                self.records[record['image']] = record
        return True

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


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def settings_hash(settings: Mapping[str, object]) -> str:
    """Short hash of ``settings`` (part of the cache file name)."""
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode('utf-8')).hexdigest()[:10]


def relative_name(dataset: IQADataset, path: str) -> str:
    """``path`` relative to the dataset root, with forward slashes (the key of the cache records)."""
    return os.path.relpath(path, dataset.root).replace(os.sep, '/')


# ----------------------------------------------------------------------------------------------------------
# metrics


@dataclass
class Failure:
    """An image a metric could not score."""
    image: str
    metric: str
    error: str


#: One scored image: (image path, the fields of its cache record, error message; empty when scored).
Outcome = Tuple[str, Optional[dict], str]


def _missing_paths(dataset: IQADataset, cache: ScoreCache) -> List[str]:
    return [path for path in dataset.paths if relative_name(dataset, path) not in cache.records]


def record_outcomes(dataset: IQADataset, cache: ScoreCache, metric: str, outcomes: Iterable[Outcome],
                     flush_every: int) -> List[Failure]:
    """Add the scored ``outcomes`` to ``cache``, ``flush_every`` records per write (and what is left when
    the loop ends, also on an exception or interruption); returns the failures, a score under ``metric`` that is
    not finite among them."""
    failures, buffer = [], []
    try:
        for path, fields, error in outcomes:
            name = relative_name(dataset, path)
            score = fields.get(metric) if fields else None
            if not error and _is_number(score) and not math.isfinite(score):
                error = f'the {metric.upper()} score is {score} (not finite): left out of the correlations'
            if error:
                failures.append(Failure(name, metric, error))
                continue
            buffer.append({'image': name, **fields})
            if len(buffer) >= flush_every:
                cache.add(buffer)
                buffer = []
    finally:
        cache.add(buffer)
    return failures


def run_ddr(ddr: DDR, dataset: IQADataset, cache: ScoreCache, short_side: Optional[int], batch_size: int,
            workers: int) -> List[Failure]:
    """Score the images of ``dataset`` missing from ``cache`` with DDR; returns the failures."""
    results = iter_quality_scores(ddr, _missing_paths(dataset, cache), batch_size, workers, short_side,
                                  description=f'DDR {dataset.name}')
    outcomes: Iterator[Outcome] = ((result.path, {'ddr': result.quality, 'responses': result.responses},
                                    result.error) for result in results)
    return record_outcomes(dataset, cache, 'ddr', outcomes, batch_size)


#: What computes NIQE in every report (:func:`niqe_score`).
NIQE_SOURCE = 'ddr_basicsr.iqa.evaluation.niqe_score (BasicSR calculate_niqe, Y channel, crop_border 0)'
#: NIQE (BasicSR's) fits its model to 96x96 blocks and needs at least two of them.
NIQE_BLOCK = 96


def too_small_message(metric: str, height: int, width: int, needs: str) -> str:
    """The failure message of a metric with a minimum image size (NIQE, CPBD sharpness)."""
    return f'image too small for {metric}: {width}x{height} px (width x height); {metric} needs {needs}'


def niqe_size_problem(height: int, width: int) -> str:
    """Why NIQE cannot score an image of this size ('' when it can)."""
    if (height // NIQE_BLOCK) * (width // NIQE_BLOCK) >= 2:
        return ''
    return too_small_message('NIQE', height, width,
                             f'at least two {NIQE_BLOCK}x{NIQE_BLOCK} blocks, e.g. {2 * NIQE_BLOCK}x{NIQE_BLOCK} px')


def niqe_score(rgb: np.ndarray) -> float:
    """The project's one NIQE (lower = better) of a (3, H, W) RGB image in [0, 255] (uint8 or float): BasicSR's
    ``calculate_niqe`` on the BT.601 Y channel, no border crop, with its bundled pristine model (within 4 % of the
    original release on the calibration images; docs/blind-iqa.md, "NIQE"). ValueError for an image it cannot score."""
    from basicsr.metrics.niqe import calculate_niqe
    problem = niqe_size_problem(*rgb.shape[1:])
    if problem:
        raise ValueError(problem)
    try:
        value = calculate_niqe(rgb[::-1].transpose(1, 2, 0), crop_border=0, input_order='HWC', convert_to='y')
    except Exception as error:  # NIQE's model fit fails in several ways on flat images; the image is reported
        raise ValueError(f'NIQE failed ({type(error).__name__}: {error}); a flat image?') from error
    return float(value)


def niqe_of_file(task: Tuple[str, Optional[int]]) -> Tuple[str, Optional[float], str]:
    """:func:`niqe_score` of one file, preprocessed like the DDR input; (path, score, '') or (path, None, why it
    failed)."""
    path, short_side = task
    try:
        image = resize_short_side(to_tensor(decode_image(path)), short_side).numpy()
        return path, niqe_score(image if image.dtype == np.uint8 else image * 255.0), ''
    except (OSError, ValueError) as error:
        return path, None, str(error)


def run_niqe(dataset: IQADataset, cache: ScoreCache, short_side: Optional[int], workers: int,
             flush_every: int = 16) -> List[Failure]:
    """Score the images of ``dataset`` missing from ``cache`` with NIQE, in ``workers`` processes
    (0: in this one)."""
    todo = [(path, short_side) for path in _missing_paths(dataset, cache)]
    import basicsr.metrics.niqe  # noqa: F401 (once here: the forked workers inherit it)
    pool = worker_executor(min(workers, len(todo))) if workers > 0 and len(todo) > 1 else None
    try:
        if pool:
            results: Iterable = (future.result() for future in
                                 as_completed([pool.submit(niqe_of_file, task) for task in todo]))
        else:
            results = map(niqe_of_file, todo)
        progress = tqdm(results, total=len(todo), unit='img', desc=f'NIQE {dataset.name}', file=sys.stderr)
        outcomes = ((path, {'niqe': value}, error) for path, value, error in progress)
        return record_outcomes(dataset, cache, 'niqe', outcomes, flush_every)
    finally:
        if pool:
            pool.shutdown(wait=False, cancel_futures=True)


# ----------------------------------------------------------------------------------------------------------
# correlations


def srcc(x: Sequence[Optional[float]], y: Sequence[Optional[float]]) -> float:
    """Spearman's rank correlation over the pairs where both values are known (not None); NaN with fewer
    than 3 such pairs or when one side is constant."""
    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None]
    if len(pairs) < 3 or len({a for a, _ in pairs}) < 2 or len({b for _, b in pairs}) < 2:
        return math.nan
    return float(stats.spearmanr(*zip(*pairs))[0])


def correlations(predicted: np.ndarray, subjective: np.ndarray, sign: int) -> Dict[str, float]:
    """SRCC, PLCC (plain Pearson) and KRCC, multiplied by ``sign`` (+1/-1) to handle score directions."""
    if len(predicted) < 3:
        return {'srcc': math.nan, 'plcc': math.nan, 'krcc': math.nan}
    return {'srcc': sign * srcc(predicted, subjective),
            'plcc': sign * float(stats.pearsonr(predicted, subjective)[0]),
            'krcc': sign * float(stats.kendalltau(predicted, subjective)[0])}


def direction_sign(metric: str, dataset: IQADataset) -> int:
    """+1 when ``metric`` and the subjective score of ``dataset`` point the same way (both higher-better
    or both lower-better), else -1."""
    return 1 if METRIC_HIGHER_BETTER[metric] == dataset.higher_better else -1


# ----------------------------------------------------------------------------------------------------------
# reports


def format_number(value: Optional[float], digits: int = 4) -> str:
    """``value`` with ``digits`` decimals; empty for None and NaN."""
    return '' if value is None or (isinstance(value, float) and math.isnan(value)) else f'{value:.{digits}f}'


def format_results_csv(rows: Sequence[dict]) -> str:
    """``biqa_results.csv``: one row per (dataset, metric)."""
    buffer = io.StringIO()
    fields = ['dataset', 'metric', 'images', 'scored', 'srcc', 'plcc', 'krcc', 'paper_srcc', 'subjective_score',
              'options', 'opinion_aware']
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator='\n')
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **{key: format_number(row[key]) for key in ('srcc', 'plcc', 'krcc', 'paper_srcc')}})
    return buffer.getvalue()


def format_results_markdown(rows: Sequence[dict], metrics: Sequence[str], settings: Mapping[str, object]) -> str:
    """``biqa_results.md``: one table row per dataset, the metrics side by side, next to the paper's Table 3; rows
    of a DDR with tuned prompts (opinion-aware) in a table of their own, without the paper's figures."""
    aware = [row for row in rows if row.get('opinion_aware')]
    metrics = [metric for metric in metrics if any(row['metric'] == metric and not row.get('opinion_aware')
                                                   for row in rows)]
    by_dataset: Dict[str, Dict[str, dict]] = {}
    for row in rows:
        if row.get('opinion_aware'):
            continue
        by_dataset.setdefault(row['dataset'], {})[row['metric']] = row
    header = ['Dataset', 'Images']
    for metric in metrics:
        label = metric.upper()
        header += [f'{label} SRCC', f'{label} SRCC (paper)', f'{label} PLCC', f'{label} KRCC']
    lines = ['# Opinion-unaware blind IQA (paper Table 3)', '',
             'Correlations with the subjective scores over every distorted image, score directions handled '
             '(positive = agrees with people); PLCC without nonlinear regression.', '']
    lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)] if by_dataset else \
        ['No opinion-unaware metric was run.']
    for dataset, entries in by_dataset.items():
        first = next(iter(entries.values()))
        cells = [dataset, f"{min(entry['scored'] for entry in entries.values())}/{first['images']}"]
        for metric in metrics:
            entry = entries.get(metric, {})
            cells += [format_number(entry.get(key)) for key in ('srcc', 'paper_srcc', 'plcc', 'krcc')]
        lines.append('| ' + ' | '.join(cells) + ' |')
    if aware:
        lines += ['', '## Opinion-aware: DDR with tuned prompts, apart from the opinion-unaware Table 3', '',
                  f"{aware[0]['opinion_aware']}. Trained on subjective scores, so not comparable with Table 3's "
                  'opinion-unaware methods; no paper figure beside it.', '',
                  '| Dataset | Images | DDR SRCC | DDR PLCC | DDR KRCC |', '|---|---|---|---|---|']
        lines += [f"| {row['dataset']} | {row['scored']}/{row['images']} | "
                  + ' | '.join(format_number(row[key]) for key in ('srcc', 'plcc', 'krcc')) + ' |' for row in aware]
    lines += ['', '## Settings', '']
    lines += [f'- {key}: {value}' for key, value in settings.items()]
    for dataset, entries in {row['dataset']: {row['metric']: row} for row in rows}.items():
        first = next(iter(entries.values()))
        lines.append(f"- {dataset}: subjective score {first['subjective_score']}; {first['options']}")
    return '\n'.join(lines) + '\n'


def format_scores_csv(dataset: IQADataset, caches: Mapping[str, ScoreCache]) -> str:
    """``scores_<dataset>.csv``: per image, the subjective score and each metric's cached score."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(['image', dataset.score_label, *caches])
    for path, subjective in dataset.items:
        name = relative_name(dataset, path)
        values = [cache.records.get(name, {}).get(metric) for metric, cache in caches.items()]
        writer.writerow([name, subjective, *('' if value is None else f'{value:.8g}' for value in values)])
    return buffer.getvalue()


def write_reports(output_dir: str, rows: Sequence[dict], settings: Mapping[str, object]) -> str:
    """Write ``biqa_results.md`` and ``biqa_results.csv`` into ``output_dir`` (the old ones are replaced only
    once both new ones are written); returns the Markdown."""
    metrics = list(dict.fromkeys(row['metric'] for row in rows))
    markdown = format_results_markdown(rows, metrics, settings)
    texts = {'biqa_results.md': markdown, 'biqa_results.csv': format_results_csv(rows)}
    with atomic_paths([os.path.join(output_dir, name) for name in texts]) as temporaries:
        for temporary, text in zip(temporaries, texts.values()):
            with open(temporary, 'w', encoding='utf-8', newline='') as stream:
                stream.write(text)
    return markdown


# ----------------------------------------------------------------------------------------------------------
# evaluation


def dataset_options(name: str, koniq_resolution: str = '1024x768', koniq_score: str = 'auto',
                    live_dmos: str = 'realigned', spaq_short_side: Optional[int] = 512,
                    koniq_split: str = 'all') -> Tuple[dict, Optional[int]]:
    """Loader options and the shorter-side resize (None: full resolution) of dataset ``name``;
    ``spaq_short_side`` 0 or None keeps SPAQ at full resolution."""
    if name == 'koniq10k':
        options = {'resolution': koniq_resolution, 'score_column': koniq_score}
        return ({**options, 'split': koniq_split} if koniq_split != 'all' else options), None
    if name == 'live':
        return {'dmos': live_dmos}, None
    if name == 'spaq':
        return {}, spaq_short_side or None
    return {}, None


def metric_settings(name: str, metric: str, options: Mapping, short_side: Optional[int],
                    ddr: Optional[DDR], root: Optional[str] = None) -> dict:
    """Everything the per-image scores of ``metric`` on dataset ``name`` (at ``root``) depend on (the cache key)."""
    settings = {'dataset': name, 'metric': metric, 'loader_options': dict(options), 'short_side': short_side}
    if root is not None:  # another copy of a dataset (re-encoded, edited) gets its own scores
        settings['root'] = os.path.realpath(root)
    if metric == 'ddr':
        settings.update(ddr_settings(ddr))
    return settings


def result_row(dataset: IQADataset, metric: str, cache: ScoreCache, options: Mapping,
               short_side: Optional[int]) -> dict:
    """Correlations of the cached scores of ``metric`` with the subjective scores, and what they were run with."""
    names = [relative_name(dataset, path) for path in dataset.paths]
    scored = [index for index, image in enumerate(names) if image in cache.records]
    predicted = np.array([cache.records[names[index]][metric] for index in scored])
    values = correlations(predicted, dataset.scores[scored], direction_sign(metric, dataset))
    direction = 'higher' if dataset.higher_better else 'lower'
    resolved = {**options, **dataset.options}  # e.g. KonIQ's score_column 'auto' -> the column read
    choices = [f'{key}={value}' for key, value in resolved.items()]
    choices.append(f'short_side={short_side or "full resolution"}')
    return {'dataset': dataset.name, 'metric': metric, 'images': len(names), 'scored': len(scored), **values,
            'paper_srcc': PAPER_TABLE3[dataset.name][metric],
            'subjective_score': f'{dataset.score_label} ({direction} is better; {dataset.score_source})',
            'options': '; '.join(choices)}


def evaluate(datasets: Sequence[Tuple[str, str]], output_dir: str, metrics: Sequence[str] = ('ddr', 'niqe'),
             ddr_factory: Optional[Callable[[], DDR]] = None, batch_size: int = 32, workers: int = 4,
             niqe_workers: int = 0, koniq_resolution: str = '1024x768', koniq_score: str = 'auto',
             spaq_short_side: Optional[int] = 512, live_dmos: str = 'realigned',
             koniq_split: str = 'all') -> Tuple[List[dict], List[Failure], Dict[str, str]]:
    """Score every dataset of ``datasets`` ((name, root) pairs) with every metric, resuming from the caches
    in ``output_dir``, and write ``scores_<dataset>.csv`` there; returns the report rows, the failures and
    the settings. ``ddr_factory`` builds the DDR (called only when 'ddr' is in ``metrics``)."""
    metrics = list(metrics)
    unknown = [metric for metric in metrics if metric not in METRIC_HIGHER_BETTER]
    if unknown or not metrics:
        raise ValueError(f'unknown metric(s) {unknown}; choose among {", ".join(METRIC_HIGHER_BETTER)}')
    if 'ddr' in metrics and ddr_factory is None:
        raise ValueError("metric 'ddr' needs a ddr_factory")
    ddr = ddr_factory() if 'ddr' in metrics else None
    settings = {'metrics': ', '.join(metrics)}
    if ddr is not None:
        settings.update({'DDR model': ddr.clip_description, 'DDR degradations': ', '.join(ddr.degradation_names),
                         'DDR precision': ddr.precision, 'DDR adaptation (Eq. 4)': 'on' if ddr.adaptation else 'off',
                         'DDR distance': ddr.distance, 'device': str(ddr.device)})
        if ddr.learned_prompts is not None:
            settings['DDR prompts'] = ddr.learned_prompts.opinion_aware_label
    settings['NIQE'] = NIQE_SOURCE
    rows, failures = [], []
    for name, root in datasets:
        options, short_side = dataset_options(name, koniq_resolution, koniq_score, live_dmos, spaq_short_side,
                                              koniq_split)
        dataset = load_dataset(name, root, **options)
        caches = {}
        for metric in metrics:
            key = metric_settings(name, metric, options, short_side, ddr, root)
            cache_path = os.path.join(output_dir, 'cache', f'{name}-{metric}-{settings_hash(key)}.jsonl')
            cache = caches[metric] = ScoreCache(cache_path, key, metric)
            if metric == 'ddr':
                failures += run_ddr(ddr, dataset, cache, short_side, batch_size, workers)
            else:
                failures += run_niqe(dataset, cache, short_side, niqe_workers)
            row = result_row(dataset, metric, cache, options, short_side)
            if metric == 'ddr' and ddr.learned_prompts is not None:
                row.update(paper_srcc=None, opinion_aware=ddr.learned_prompts.opinion_aware_label)
            rows.append(row)
        write_text_atomically(os.path.join(output_dir, f'scores_{name}.csv'), format_scores_csv(dataset, caches))
    return rows, failures, settings
