"""DDR as an image descriptor (paper Sec. 3.2): Fig. 4-style montage and Table 2-style SRCC table.

For every image, DDR_d of each degradation type d (blind-IQA patch averaging) is measured, with
image attributes that need no learned model:

* colorfulness M of Hasler and Süsstrunk (2003): on 0-255 RGB, rg = R - G, yb = (R + G) / 2 - B,
  M = sqrt(σ_rg² + σ_yb²) + 0.3 · sqrt(μ_rg² + μ_yb²);
* sharpness: CPBD, the cumulative probability of blur detection of Narvekar and Karam (2011, the
  paper's [44]), as the authors' reference code computes it (:mod:`ddr_basicsr.iqa.cpbd`). Higher = sharper.
  An image smaller than one 64×64 block gets no sharpness (its failure says it is too small for CPBD) and is
  left out of that column's SRCC;
* quality: a MOS column of a CSV file, or the subjective scores of an IQA dataset (DMOS negated, so
  higher = better). Image complexity (the paper's IC9600 model) is left out: it is a learned model.

Outputs (:func:`write_descriptor_report`): ``descriptor_montage.png`` (per degradation: the top-k images with
the highest DDR_d, then the k lowest), ``descriptor_srcc.md`` / ``.csv`` (SRCC of each DDR_d with each
attribute, next to the paper's Table 2, measured on CSIQ) and ``descriptor_scores.csv`` (per image).
The four are replaced together, only once all of them are written: a run killed at any moment leaves
the previous report whole (a new run measures every image again).
"""
import csv
import io
import math
import os
import sys
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from ddr_basicsr.core.ddr import DDR
from ddr_basicsr.iqa.cpbd import BLOCK as CPBD_BLOCK
from ddr_basicsr.iqa.cpbd import cpbd
from ddr_basicsr.iqa.datasets import load_dataset
from ddr_basicsr.iqa.evaluation import format_number, srcc, too_small_message
from ddr_basicsr.iqa.scoring import iter_quality_scores
from ddr_basicsr.utils.atomic_files import atomic_path, atomic_paths
from ddr_basicsr.utils.image_files import collect_inputs
from ddr_basicsr.utils.image_io import read_image, resize_short_side

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ['ATTRIBUTES', 'PAPER_TABLE2', 'colorfulness', 'cpbd_sharpness', 'dataset_quality', 'descriptor_report',
           'format_descriptor_scores_csv', 'format_table_csv', 'format_table_markdown', 'gather_quality',
           'image_attributes', 'montage_figure', 'montage_selection', 'read_mos_csv', 'save_montage',
           'score_descriptors', 'srcc_table', 'write_descriptor_report']

#: Table 2 of the paper (CSIQ): SRCC of DDR_d with complexity, colorfulness, sharpness, quality.
PAPER_TABLE2 = {
    'color': {'complexity': -0.223, 'colorfulness': 0.757, 'sharpness': 0.715, 'quality': 0.790},
    'noise': {'complexity': -0.444, 'colorfulness': 0.673, 'sharpness': 0.600, 'quality': 0.694},
    'blur': {'complexity': -0.206, 'colorfulness': 0.612, 'sharpness': 0.732, 'quality': 0.756},
    'exposure': {'complexity': -0.435, 'colorfulness': 0.684, 'sharpness': 0.699, 'quality': 0.770},
    'content': {'complexity': -0.357, 'colorfulness': 0.612, 'sharpness': 0.561, 'quality': 0.642},
}
ATTRIBUTES = ('colorfulness', 'sharpness', 'quality')
THUMBNAIL_SIDE = 160
MONTAGE_DPI = 100


# ----------------------------------------------------------------------------------------------------------
# attributes


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler and Süsstrunk's colorfulness M of an (H, W, 3) RGB image in [0, 255]."""
    rgb = rgb.astype(np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean()))


def cpbd_sharpness(rgb: np.ndarray) -> float:
    """CPBD sharpness in [0, 1] of an (H, W, 3) RGB image in [0, 255] (:func:`ddr_basicsr.iqa.cpbd.cpbd`);
    ValueError for an image smaller than one block."""
    height, width = rgb.shape[:2]
    if height < CPBD_BLOCK or width < CPBD_BLOCK:
        raise ValueError(too_small_message('CPBD sharpness', height, width,
                                           f'at least one {CPBD_BLOCK}x{CPBD_BLOCK} block'))
    return cpbd(rgb)


def image_attributes(path: str) -> Tuple[Dict[str, Optional[float]], str]:
    """Colorfulness and CPBD sharpness of the image file ``path``; and '' or why the sharpness is None
    (an image too small for CPBD)."""
    rgb = read_image(path).permute(1, 2, 0).numpy() * 255.0
    try:
        sharpness, problem = cpbd_sharpness(rgb), ''
    except ValueError as error:
        sharpness, problem = None, str(error)
    return {'colorfulness': colorfulness(rgb), 'sharpness': sharpness}, problem


# ----------------------------------------------------------------------------------------------------------
# images and quality labels


def read_mos_csv(path: str, name_column: str, mos_column: str, lower_better: bool) -> Dict[str, float]:
    """{image file name: quality} from a CSV; names are matched by basename; DMOS-like scores are negated."""
    with open(path, newline='', encoding='utf-8-sig') as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in (name_column, mos_column) if column not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f'{path}: no column {missing}; columns are {reader.fieldnames} '
                             '(choose with --name-column / --mos-column)')
        quality = {}
        for row in reader:
            name = os.path.basename(row[name_column].strip())
            if name in quality:
                raise ValueError(f'{path}: image name {name!r} appears twice; names are matched by basename')
            try:
                value = float(row[mos_column])
            except (TypeError, ValueError):  # an empty, missing or text cell
                value = math.nan
            if not math.isfinite(value):
                raise ValueError(f'{path} line {reader.line_num}: column {mos_column} of image {name!r} is '
                                 f'{row[mos_column]!r}, not a finite number; fix or remove that row')
            quality[name] = -value if lower_better else value
    return quality


def dataset_quality(name: str, root: str) -> Dict[str, float]:
    """{image path: quality} of the IQA dataset ``name`` at ``root``; DMOS negated, so higher = better."""
    dataset = load_dataset(name, root)
    return {path: score if dataset.higher_better else -score for path, score in dataset.items}


def gather_quality(inputs: Sequence[str] = (), recursive: bool = False, dataset: Optional[Tuple[str, str]] = None,
                   mos_csv: Optional[str] = None, name_column: str = 'image', mos_column: str = 'mos',
                   mos_lower_better: bool = False) -> Dict[str, Optional[float]]:
    """{image path: quality or None}: the images of ``dataset`` ((name, root)) with their subjective scores,
    then the files of ``inputs`` (files, folders, glob patterns); the ``mos_csv`` file (see :func:`read_mos_csv`)
    overrides the quality of the images it names (matched by basename)."""
    images: Dict[str, Optional[float]] = dict(dataset_quality(*dataset)) if dataset else {}
    for path, problem in collect_inputs(inputs, recursive):
        if problem or not os.path.isfile(path):
            raise FileNotFoundError(f'{path}: {problem or "no such image file"}')
        images.setdefault(path, None)
    if mos_csv:
        quality = read_mos_csv(mos_csv, name_column, mos_column, mos_lower_better)
        for path in images:
            images[path] = quality.get(os.path.basename(path), images[path])
    if not images:
        raise ValueError('no image given: pass image files/folders or --dataset NAME=ROOT')
    return images


def score_descriptors(ddr: DDR, images: Mapping[str, Optional[float]], batch_size: int = 32,
                      workers: int = 4) -> Tuple[List[dict], List[str]]:
    """Per image of ``images`` ({path: quality or None}), in that order: ``{'path', <DDR_d per degradation>,
    'quality', 'colorfulness', 'sharpness'}``; and the failures (``'path: error'``: images DDR could not
    score, which have no record, and images too small for CPBD, whose sharpness is None)."""
    paths = list(images)
    records, failures = [], []
    for result in iter_quality_scores(ddr, paths, batch_size, workers, description='DDR_d'):
        if result.error:
            failures.append(f'{result.path}: {result.error}')
        else:
            records.append({'path': result.path, **result.responses, 'quality': images[result.path]})
    order = {path: index for index, path in enumerate(paths)}
    records.sort(key=lambda record: order[record['path']])
    for record in tqdm(records, desc='attributes', unit='img', file=sys.stderr):
        attributes, problem = image_attributes(record['path'])
        record.update(attributes)
        if problem:
            failures.append(f'{record["path"]}: {problem}')
    return records, failures


# ----------------------------------------------------------------------------------------------------------
# outputs


def srcc_table(records: Sequence[dict], names: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """{degradation: {attribute: SRCC(DDR_d, attribute)}} over the images that have both values."""
    return {name: {attribute: srcc([record[name] for record in records], [record[attribute] for record in records])
                   for attribute in ATTRIBUTES} for name in names}


def format_table_markdown(table: Mapping[str, Mapping[str, float]], image_count: int, settings: Mapping) -> str:
    """``descriptor_srcc.md``: the SRCC table next to the paper's Table 2, then the settings."""
    header = ['Degradation']
    for attribute in ATTRIBUTES:
        header += [attribute.capitalize(), f'{attribute.capitalize()} (paper)']
    lines = ['# DDR as an image descriptor (paper Table 2 style)', '',
             f'SRCC between DDR_d and image attributes over {image_count} images. Paper figures: CSIQ, '
             'sharpness = CPBD, colorfulness = Hasler & Süsstrunk, quality = MOS.', '',
             '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for name, values in table.items():
        cells = [name]
        for attribute in ATTRIBUTES:
            cells += [format_number(values[attribute], 3), format_number(PAPER_TABLE2.get(name, {}).get(attribute), 3)]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', '## Settings', ''] + [f'- {key}: {value}' for key, value in settings.items()]
    return '\n'.join(lines) + '\n'


def format_table_csv(table: Mapping[str, Mapping[str, float]]) -> str:
    """``descriptor_srcc.csv``: the SRCC table (4 decimals) and the paper's Table 2."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(['degradation', *ATTRIBUTES, *(f'paper_{attribute}' for attribute in ATTRIBUTES)])
    for name, values in table.items():
        paper = PAPER_TABLE2.get(name, {})
        writer.writerow([name, *(format_number(values[attribute], 4) for attribute in ATTRIBUTES),
                         *(format_number(paper.get(attribute), 3) for attribute in ATTRIBUTES)])
    return buffer.getvalue()


def format_descriptor_scores_csv(records: Sequence[dict], names: Sequence[str]) -> str:
    """``descriptor_scores.csv``: per image, DDR_d of each degradation and the attributes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(['path', *(f'ddr_{name}' for name in names), *ATTRIBUTES])
    for record in records:
        values = [record[key] for key in (*names, *ATTRIBUTES)]
        writer.writerow([record['path'], *('' if value is None else f'{value:.8g}' for value in values)])
    return buffer.getvalue()


def montage_selection(records: Sequence[dict], name: str, top_k: int) -> List[dict]:
    """The ``k`` records with the highest DDR_d (descending), then the ``k`` lowest (ascending);
    k = top_k, reduced so the two groups do not overlap."""
    ranked = sorted(records, key=lambda record: record[name], reverse=True)
    count = min(top_k, max(1, len(ranked) // 2))
    return ranked[:count] + ranked[::-1][:count]


def montage_figure(records: Sequence[dict], names: Sequence[str], top_k: int) -> 'Figure':
    """Fig. 4 style: one row per degradation, top-k highest DDR_d then bottom-k lowest."""
    from matplotlib.figure import Figure
    rows = {name: montage_selection(records, name, top_k) for name in names}
    columns = max(len(selection) for selection in rows.values())
    figure = Figure(figsize=(2.2 * columns, 2.6 * len(names)), layout='constrained')
    axes = figure.subplots(len(names), columns, squeeze=False)
    for row, name in enumerate(names):
        selection = rows[name]
        for column, axis in enumerate(axes[row]):
            axis.set_xticks([])
            axis.set_yticks([])
            if column >= len(selection):
                axis.set_axis_off()
                continue
            record = selection[column]
            thumbnail = resize_short_side(read_image(record['path']), THUMBNAIL_SIDE)
            axis.imshow(thumbnail.permute(1, 2, 0).numpy())
            group = 'high' if column < len(selection) // 2 else 'low'
            axis.set_title(f'{group} {record[name]:.4f}\n{os.path.basename(record["path"])}', fontsize=7)
        axes[row][0].set_ylabel(f'DDR {name}', fontsize=9)
    figure.suptitle('Images with the highest (left) and lowest (right) DDR per degradation type', fontsize=10)
    return figure


def save_montage(records: Sequence[dict], names: Sequence[str], top_k: int, path: str) -> None:
    """Write :func:`montage_figure` to the PNG file ``path``."""
    figure = montage_figure(records, names, top_k)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format='png', dpi=MONTAGE_DPI)


def write_descriptor_report(output_dir: str, records: Sequence[dict], names: Sequence[str], top_k: int,
                            settings: Mapping[str, object]) -> str:
    """Write the SRCC table (``descriptor_srcc.md`` / ``.csv``), ``descriptor_scores.csv`` and
    ``descriptor_montage.png`` into ``output_dir``, replacing the old ones only once all four are written;
    returns the Markdown."""
    table = srcc_table(records, names)
    markdown = format_table_markdown(table, len(records), settings)
    texts = {'descriptor_srcc.md': markdown, 'descriptor_srcc.csv': format_table_csv(table),
             'descriptor_scores.csv': format_descriptor_scores_csv(records, names)}
    figure = montage_figure(records, names, top_k)
    paths = [os.path.join(output_dir, name) for name in (*texts, 'descriptor_montage.png')]
    with atomic_paths(paths) as temporaries:
        for temporary, text in zip(temporaries, texts.values()):
            with open(temporary, 'w', encoding='utf-8', newline='') as stream:
                stream.write(text)
        figure.savefig(temporaries[-1], format='png', dpi=MONTAGE_DPI)
    return markdown


def descriptor_report(ddr: DDR, images: Mapping[str, Optional[float]], output_dir: str, top_k: int = 4,
                      source: str = '', batch_size: int = 32, workers: int = 4) -> Tuple[str, List[str]]:
    """Measure DDR_d and the attributes of ``images`` ({path: quality or None}) and write the report into
    ``output_dir`` (:func:`write_descriptor_report`); returns the Markdown and the failures (``'path: error'``).
    Raises ValueError when no image could be scored."""
    names = list(ddr.degradation_names)
    records, failures = score_descriptors(ddr, images, batch_size, workers)
    if not records:
        raise ValueError('no image could be scored: ' + '; '.join(failures))
    settings = {'DDR model': ddr.clip_description, 'degradations': ', '.join(names),
                'prompts': ddr.learned_prompts.opinion_aware_label if ddr.learned_prompts else 'hand-written',
                'images scored': f'{len(records)}/{len(images)}',
                'images with quality': sum(record['quality'] is not None for record in records),
                'source': source}
    return write_descriptor_report(output_dir, records, names, top_k, settings), failures
