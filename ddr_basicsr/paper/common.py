"""Shared pieces of the paper reproduction: dataset folders, the per-image cache, report files, figures.

Every sub-command writes ``<output_dir>/<stem>.md`` (our numbers beside the paper's, with the difference, then
the protocol: every choice that shaped the numbers) and ``<stem>.csv`` (the same table), whole or not at all.
Per-image measurements go to ``<output_dir>/cache/<stem>-<what>-<settings hash>.jsonl`` (:class:`ScoreCache` of
:mod:`ddr_basicsr.iqa.evaluation`): an interrupted run resumes where it stopped, and a changed setting starts a
fresh file.
"""
import csv
import dataclasses
import io
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from tqdm import tqdm

from ddr_basicsr.core.ddr import DDR
from ddr_basicsr.iqa.datasets import IQADataset, load_dataset
from ddr_basicsr.iqa.evaluation import (
    Failure,
    ScoreCache,
    dataset_options,
    format_number,
    record_outcomes,
    relative_name,
    run_ddr,
    settings_hash,
)
from ddr_basicsr.iqa.scoring import ddr_settings as scoring_ddr_settings
from ddr_basicsr.paper.folders import DEFAULT_ROOTS, DEFAULT_WORKERS
from ddr_basicsr.utils.atomic_files import atomic_path, write_text_atomically

#: Records written to a cache per append (each append is flushed and fsynced).
FLUSH_EVERY = 16


def open_dataset(name: str, roots: Mapping[str, str]) -> Tuple[IQADataset, Optional[int], Dict[str, object]]:
    """Dataset ``name`` from ``roots`` (or :data:`DEFAULT_ROOTS`) with the loader options and shorter-side resize
    of the Table 3 evaluation (``evaluation.dataset_options``); returns it, the resize and the recorded choices."""
    root = roots.get(name, DEFAULT_ROOTS[name])
    options, short_side = dataset_options(name)
    dataset = load_dataset(name, root, **options)
    choices = {'root': root, **options, 'short_side': short_side or 'full resolution',
               'subjective score': f"{dataset.score_label} ({'higher' if dataset.higher_better else 'lower'} "
                                   'is better)'}
    return dataset, short_side, choices


def subset(dataset: IQADataset, folder: str) -> IQADataset:
    """The images of ``dataset`` inside its sub-folder ``folder`` (e.g. LIVE's ``gblur``)."""
    items = tuple(item for item in dataset.items if relative_name(dataset, item[0]).split('/')[0] == folder)
    if not items:
        raise ValueError(f'{dataset.name}: no image in the sub-folder {folder!r} of {dataset.root}')
    return dataclasses.replace(dataset, items=items)


def open_cache(output_dir: str, stem: str, what: str, settings: Mapping[str, object]) -> ScoreCache:
    """The per-image cache of ``what`` for sub-command ``stem`` under these ``settings``."""
    return ScoreCache(os.path.join(output_dir, 'cache', f'{stem}-{what}-{settings_hash(settings)}.jsonl'), settings)


def _outcomes(paths: Sequence[str], measure: Callable[[str], Dict[str, object]],
              description: str) -> Iterator[Tuple[str, Dict[str, object], str]]:
    """(path, fields, error) of each path, with a progress bar; ValueError and OSError become the error."""
    for path in tqdm(paths, desc=description, unit='img', file=sys.stderr):
        try:
            yield path, measure(path), ''
        except (ValueError, OSError) as error:
            yield path, {}, f'{type(error).__name__}: {error}'


def fill_cache(dataset: IQADataset, cache: ScoreCache, measure: Callable[[str], Dict[str, object]],
               description: str) -> List[Failure]:
    """Measure every image of ``dataset`` missing from ``cache`` (``measure(path)`` -> fields), with a progress bar;
    an image whose ``measure`` raises ValueError or OSError is reported, not cached."""
    missing = [path for path in dataset.paths if relative_name(dataset, path) not in cache.records]
    return record_outcomes(dataset, cache, description, _outcomes(missing, measure, description), FLUSH_EVERY)


def cached_values(dataset: IQADataset, cache: ScoreCache, key: Callable[[dict], object]) -> List[Optional[object]]:
    """``key(record)`` of each image of ``dataset`` in its order, None where the image has no record."""
    records = [cache.records.get(relative_name(dataset, path)) for path in dataset.paths]
    return [None if record is None else key(record) for record in records]


def difference(ours: Optional[float], paper: Optional[float]) -> Optional[float]:
    """ours - paper, None when either is missing or not a number."""
    if ours is None or paper is None or (isinstance(ours, float) and math.isnan(ours)):
        return None
    return ours - paper


def cell(value: object, digits: int = 4) -> str:
    """A table cell: floats with ``digits`` decimals, None/NaN empty, anything else as text."""
    if isinstance(value, float):
        return format_number(value, digits)
    return '' if value is None else str(value)


@dataclass
class Report:
    """One table of results, written as Markdown and CSV.

    ``header`` and ``rows`` hold the table (ours, the paper's, the difference side by side); ``protocol`` every
    choice that shaped the numbers; ``notes`` what the reader must know (quoted values, missing weights, ...);
    ``failures`` the images that could not be measured (listed after the notes, the first five by name).
    """
    stem: str
    title: str
    intro: str
    header: Sequence[str]
    rows: List[Sequence[object]]
    protocol: Dict[str, object]
    notes: List[str] = field(default_factory=list)
    failures: Sequence[Failure] = ()
    digits: int = 4
    figures: List[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f'# {self.title}', '', self.intro, '', '| ' + ' | '.join(self.header) + ' |',
                 '|' + '---|' * len(self.header)]
        lines += ['| ' + ' | '.join(cell(value, self.digits) for value in row) + ' |' for row in self.rows]
        notes = list(self.notes) + [f'{failure.metric} failed on {failure.image}: {failure.error}'
                                    for failure in self.failures[:5]]
        if len(self.failures) > 5:
            notes.append(f'... and {len(self.failures) - 5} more images failed')
        if notes:
            lines += [''] + [f'- {note}' for note in notes]
        if self.figures:
            lines += [''] + [f'![{os.path.basename(path)}]({os.path.basename(path)})' for path in self.figures]
        lines += ['', '## Protocol', ''] + [f'- {key}: {value}' for key, value in self.protocol.items()]
        return '\n'.join(lines) + '\n'

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator='\n')
        writer.writerow(self.header)
        writer.writerows([cell(value, max(self.digits, 6)) for value in row] for row in self.rows)
        return buffer.getvalue()

    def write(self, output_dir: str) -> str:
        """Write ``<stem>.md`` and ``<stem>.csv`` into ``output_dir``; returns the Markdown."""
        markdown = self.markdown()
        write_text_atomically(os.path.join(output_dir, f'{self.stem}.md'), markdown)
        write_text_atomically(os.path.join(output_dir, f'{self.stem}.csv'), self.csv())
        return markdown


def trunk_weights_error(arch: str, option: str, weights_path: Optional[str],
                        error: FileNotFoundError) -> FileNotFoundError:
    """The missing-weights error of a torchvision trunk (LPIPS, VGG19) with the fix spelled as the command-line
    ``option`` (the loss modules' own message names their option-file key)."""
    from ddr_basicsr.losses.vgg_features import expected_cache_file
    cache = expected_cache_file(arch)
    if weights_path:
        return FileNotFoundError(f'{option} {weights_path}: no such file; it must be a torchvision {arch} state '
                                 f'dict such as {cache.name}')
    return FileNotFoundError(f'the torchvision {arch} ImageNet weights are not at {cache} and could not be '
                             f'downloaded ({error.__cause__ or error}); put {cache.name} there (or set TORCH_HOME), or '
                             f'pass {option} /path/to/{cache.name}')


def save_figure(figure, path: str) -> str:
    """Save a matplotlib ``Figure`` as PNG at ``path`` (whole or not at all); returns ``path``."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format='png', dpi=110)
    return path


@dataclass
class ModelChoice:
    """The CLIP model DDR runs on and how (the ``add_model_arguments`` options of the command line)."""
    model: str = 'ViT-B-32'
    pretrained: Optional[str] = 'openai'
    device: Optional[str] = None
    precision: str = 'fp32'
    batch_size: int = 32
    workers: int = DEFAULT_WORKERS
    loaded: Optional[str] = field(default=None, init=False)

    def ddr(self, **options) -> DDR:
        """DDR on this CLIP with ``options`` (degradations, adaptation, domain, pixel_levels, model, pretrained)."""
        settings = {'model': self.model, 'pretrained': self.pretrained, **options}
        ddr = DDR(device=self.device, precision=self.precision, **settings)
        self.loaded = ddr.clip_description
        return ddr

    @property
    def clip_label(self) -> str:
        """The CLIP the last :meth:`ddr` loaded, by its architecture (a local file may not be ``model``)."""
        return self.loaded or f'{self.model} ({self.pretrained})'


def ddr_settings(ddr: DDR, dataset: str, choices: Mapping[str, object]) -> Dict[str, object]:
    """Everything the per-image DDR of ``ddr`` on ``dataset`` depends on (the cache key): the loader choices and
    ``scoring.ddr_settings`` for the text-driven DDR, the pixel-domain levels and noise seed for Eq. 2."""
    settings: Dict[str, object] = {'dataset': dataset, 'loader': dict(choices), 'domain': ddr.domain}
    if ddr.domain == 'feature':
        settings.update(scoring_ddr_settings(ddr))
    else:
        settings.update({'clip': ddr.clip_description, 'precision': ddr.precision, 'distance': ddr.distance,
                         'pixel_levels': dict(ddr.pixel_levels), 'seed': ddr.seed})
    return settings


def score_ddr(ddr: DDR, dataset: IQADataset, short_side: Optional[int], choices: Mapping[str, object],
              output_dir: str, stem: str, model: ModelChoice) -> Tuple[ScoreCache, List[Failure]]:
    """DDR_d and the Eq. 7 score of every image of ``dataset``, resumed from and stored in the cache."""
    cache = open_cache(output_dir, stem, f'{dataset.name}-ddr', ddr_settings(ddr, dataset.name, choices))
    return cache, run_ddr(ddr, dataset, cache, short_side, model.batch_size, model.workers)


def quality_sign(dataset: IQADataset) -> int:
    """+1 when the dataset's subjective score is higher-is-better (MOS), -1 for DMOS: SRCC x sign > 0 means the
    measure agrees with people when the measure is higher-is-better."""
    return 1 if dataset.higher_better else -1
