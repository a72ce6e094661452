"""Loaders for the eight IQA datasets of the paper's Table 3, read from their official distribution files.

Each loader takes the dataset's root folder and returns an :class:`IQADataset`: every distorted image
(reference copies and LIVE in the Wild's 7 training images excluded) with its subjective score, and
the score direction. Formats, counts, scales and directions are in the table below.

| name | official files read | images | score (scale) |
|---|---|---|---|
| csiq | csiq.DMOS.xlsx (sheet all_by_image), dst_imgs/ | 866 | DMOS (0-1), lower is better |
| tid2013 | mos_with_names.txt, distorted_images/ | 3000 | MOS (0-9), higher is better |
| kadid10k | dmos.csv (column dmos holds a MOS), images/ | 10125 | MOS (1-5), higher is better |
| koniq10k | koniq10k_*.csv (see below), 1024x768/ or 512x384/ | 10073 | MOS (see below), higher is better |
| livec | Data/AllImages_release.mat, Data/AllMOS_release.mat, Images/ | 1162 | MOS (0-100), higher is better |
| live | dmos_realigned.mat (or dmos.mat), <type>/img<k>.bmp | 779 | DMOS (0-100), lower is better |
| cid2013 | CID2013 data*.xlsx (sheet CID2013 MOS), IS*/co*/<id>.jpg | 474 | realigned MOS (0-100), higher |
| spaq | Annotations/MOS and Image attribute scores.xlsx, TestImage/ | 11125 | MOS (0-100), higher is better |

KonIQ-10k ships its scores in two files: ``koniq10k_scores_and_distributions.csv`` (the database's
download: ``MOS`` on a 1-5 scale and ``MOS_zscore`` on a 1-100 scale) and ``koniq10k_distributions_sets.csv``
(the authors' GitHub repository, ``metadata/``: ``MOS`` on a 1-100 scale and a ``set`` column with the
official training / validation / test split). The loader reads whichever is present (the first when both
are, the second when a split is asked for); the default score column is the file's 1-100 score.

File and folder names are matched case-insensitively when the exact name is missing (TID2013 and CSIQ
copies mix cases, e.g. ``dst_imgs/AWGN/``).

Every subjective score is checked against its documented scale (:class:`ScoreScale`): a value that is not
finite or lies outside the scale (by more than :data:`SCALE_MARGIN` of its span), or a column on a 0-100
scale whose values all fit in its lowest tenth (a 1-5 column taken for a 1-100 one), is refused with an
error naming the file, the column and the scale. ``IQADataset.score_source`` says which file, column and
scale were used.
"""
import csv
import glob
import math
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class ScoreScale:
    """The documented range of a subjective score column."""
    low: float
    high: float

    def __str__(self) -> str:
        return f'{self.low:g}-{self.high:g}'


#: Share of a scale's span a score may lie beyond its documented ends (rounding, realignment).
SCALE_MARGIN = 0.15


@dataclass(frozen=True)
class IQADataset:
    """Images of one IQA dataset with their subjective scores.

    ``higher_better`` is True for MOS (higher = better quality), False for DMOS. ``score_source`` names the
    label file, column and scale the scores were read from. ``options`` records the choices that shaped
    ``items`` (resolution folder, score column, ...).
    """
    name: str
    root: str
    items: Tuple[Tuple[str, float], ...]
    higher_better: bool
    score_label: str
    options: Mapping[str, object] = field(default_factory=dict)
    score_source: str = ''

    @property
    def paths(self) -> List[str]:
        return [path for path, _ in self.items]

    @property
    def scores(self) -> np.ndarray:
        return np.array([score for _, score in self.items], dtype=np.float64)


def _layout_hint(dataset: str) -> str:
    return f'expected the official layout of {dataset} under its root folder; see ddr_basicsr/iqa/datasets.py'


class _CaseInsensitivePaths:
    """Resolve paths below a root folder, each component matched case-insensitively when the exact one is
    missing (listings cached)."""

    def __init__(self, dataset: str, root: str):
        self.dataset, self.root = dataset, root
        self._lower_names: Dict[str, Dict[str, str]] = {}

    def find(self, relative: str) -> Optional[str]:
        """The existing path of ``relative`` (components separated by '/'), or None."""
        path = self.root
        for part in relative.split('/'):
            exact = os.path.join(path, part)
            if os.path.exists(exact):
                path = exact
                continue
            if path not in self._lower_names:
                entries = os.listdir(path) if os.path.isdir(path) else []
                self._lower_names[path] = {entry.lower(): entry for entry in entries}
            match = self._lower_names[path].get(part.lower())
            if match is None:
                return None
            path = os.path.join(path, match)
        return path

    def _existing(self, relative: str, exists: Callable[[str], bool], problem: str, layout_hint: bool) -> str:
        path = self.find(relative)
        if path is None or not exists(path):
            hint = f' ({_layout_hint(self.dataset)})' if layout_hint else ''
            raise FileNotFoundError(f'{self.dataset}: {problem}: {os.path.join(self.root, relative)}{hint}')
        return path

    def image(self, relative: str, label_file: str) -> str:
        """The path of an image listed in ``label_file``; FileNotFoundError naming both when it is missing."""
        return self._existing(relative, os.path.isfile, f'image listed in {label_file} is missing', False)

    def folder(self, relative: str) -> str:
        """The path of an image folder; FileNotFoundError naming it when it is missing."""
        return self._existing(relative, os.path.isdir, 'image folder not found', True)

    def file(self, relative: str) -> str:
        """The path of a label file; FileNotFoundError naming it when it is missing."""
        return self._existing(relative, os.path.isfile, 'label file not found', True)


def check_scale(dataset: str, source: str, column: str, scale: ScoreScale, items: Sequence[Tuple[str, float]],
                hint: str = '') -> None:
    """Refuse scores of ``column`` (read from ``source``) that are not finite or not on the documented
    ``scale`` (see the module docstring); ``items`` are (image path, score) pairs, ``hint`` ends the message."""
    fix = f' {hint}' if hint else ''
    for path, score in items:
        if not math.isfinite(score):
            raise ValueError(f'{dataset}: {source}: column {column} of image {os.path.basename(path)} is {score}, '
                             f'not a score on the documented {scale} scale.{fix}')
    if not items:
        return
    span = scale.high - scale.low
    margin = SCALE_MARGIN * span
    scores = [score for _, score in items]
    lowest, highest = min(scores), max(scores)
    outside = next(((path, score) for path, score in items
                    if not scale.low - margin <= score <= scale.high + margin), None)
    if outside is not None:
        raise ValueError(f'{dataset}: {source}: column {column} holds values from {lowest:g} to {highest:g} '
                         f'(image {os.path.basename(outside[0])}: {outside[1]:g}), outside its documented {scale} '
                         f'scale: a column on another scale?{fix}')
    if span >= 50 and highest <= scale.low + 0.1 * span:
        raise ValueError(f'{dataset}: {source}: column {column} holds values from {lowest:g} to {highest:g} only, '
                         f'the lowest tenth of its documented {scale} scale: a column on a smaller scale (1-5?).{fix}')


def _read_xlsx_table(path: str, dataset: str, columns: Sequence[str],
                     sheet: Optional[str] = None) -> List[Dict[str, object]]:
    """Rows of an xlsx sheet (default: the first) as dicts keyed by normalised header name.

    The header row is the first row holding every name in ``columns`` (compared case- and
    whitespace-insensitively); data rows are the later rows with a value in ``columns[0]``.
    """
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        if sheet is not None and sheet not in workbook.sheetnames:
            raise ValueError(f'{dataset}: sheet {sheet!r} not found in {path}; sheets: {workbook.sheetnames}')
        worksheet = workbook[sheet] if sheet is not None else workbook.worksheets[0]
        wanted = [_normalise_header(name) for name in columns]
        header = None
        records = []
        for row in worksheet.iter_rows(values_only=True):
            if header is None:
                names = [_normalise_header(cell) for cell in row]
                header = names if all(name in names for name in wanted) else None
                continue
            record = dict(zip(header, row))
            if record.get(wanted[0]) is not None and str(record[wanted[0]]).strip():
                records.append(record)
    finally:
        workbook.close()
    if header is None:
        raise ValueError(f'{dataset}: no header row with columns {list(columns)} in {path}')
    return records


def _normalise_header(value: object) -> str:
    return ' '.join(str(value).split()).lower() if value is not None else ''


def _cell_text(value: object) -> str:
    """Excel cell -> text; whole numbers stored as floats (1600.0) become '1600'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _number(value: object, dataset: str, source: str, column: str, image: object) -> float:
    """A score cell as a float; ValueError naming the file, column and image when it is not a number."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f'{dataset}: {source}: column {column} of image {_cell_text(image)} is {value!r}, '
                         'not a number') from None


def _read_csv_table(path: str, dataset: str, columns: Sequence[str], hint: str = '') -> List[Dict[str, str]]:
    """Rows (as dicts) of a CSV label file that must have ``columns``; ``hint`` ends the error message."""
    with open(path, newline='', encoding='utf-8-sig') as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in columns if name not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f'{dataset}: {path} lacks the columns {missing}; found {reader.fieldnames}'
                             + (f'. {hint}' if hint else ''))
        return list(reader)


def _load_mat_vector(path: str, dataset: str, variable: str) -> np.ndarray:
    from scipy.io import loadmat

    content = loadmat(path)
    if variable not in content:
        found = sorted(key for key in content if not key.startswith('__'))
        raise ValueError(f'{dataset}: variable {variable!r} not found in {path}; found {found}')
    return np.asarray(content[variable]).ravel()


def _dataset(name: str, root: str, items: Sequence[Tuple[str, float]], higher_better: bool, label: str,
             label_file: str, column: str, scale: ScoreScale, options: Optional[Mapping[str, object]] = None,
             hint: str = '') -> IQADataset:
    """The checked (:func:`check_scale`) dataset; ``score_source`` names ``label_file``, ``column`` and ``scale``."""
    source = os.path.basename(label_file)
    check_scale(name, label_file, column, scale, items, hint)
    return IQADataset(name, root, tuple(items), higher_better, label, dict(options or {}),
                      score_source=f'column {column} of {source}, {scale} scale')


_CSIQ_TYPES = {  # dst_type in csiq.DMOS.xlsx -> (folder under dst_imgs, tag in the file name)
    'noise': ('awgn', 'AWGN'),
    'jpeg': ('jpeg', 'JPEG'),
    'jpeg 2000': ('jpeg2000', 'jpeg2000'),
    'fnoise': ('fnoise', 'fnoise'),
    'blur': ('blur', 'BLUR'),
    'contrast': ('contrast', 'contrast'),
}


def load_csiq(root: str) -> IQADataset:
    """CSIQ: 866 distorted images, DMOS in [0, 1] (lower is better); reference images (src_imgs) are not used."""
    paths = _CaseInsensitivePaths('csiq', root)
    label_file = paths.file('csiq.DMOS.xlsx')
    rows = _read_xlsx_table(label_file, 'csiq', ('image', 'dst_type', 'dst_lev', 'dmos'), sheet='all_by_image')
    items = []
    for row in rows:
        kind = _normalise_header(row['dst_type'])
        if kind not in _CSIQ_TYPES:
            raise ValueError(f'csiq: {label_file}: unknown dst_type {row["dst_type"]!r}; known: {sorted(_CSIQ_TYPES)}')
        folder, tag = _CSIQ_TYPES[kind]
        name = f'{_cell_text(row["image"])}.{tag}.{_cell_text(row["dst_lev"])}.png'
        items.append((paths.image(f'dst_imgs/{folder}/{name}', label_file),
                      _number(row['dmos'], 'csiq', label_file, 'dmos', name)))
    return _dataset('csiq', root, items, False, 'DMOS', label_file, 'dmos', ScoreScale(0, 1))


def load_tid2013(root: str) -> IQADataset:
    """TID2013: 3000 distorted images, MOS in [0, 9] (higher is better)."""
    paths = _CaseInsensitivePaths('tid2013', root)
    label_file = paths.file('mos_with_names.txt')
    paths.folder('distorted_images')
    items = []
    with open(label_file, encoding='utf-8') as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f'tid2013: {label_file} line {number} is not "MOS filename": {line.strip()!r}')
            score = _number(parts[0], 'tid2013', f'{label_file} line {number}', 'MOS', parts[1])
            items.append((paths.image(f'distorted_images/{parts[1]}', label_file), score))
    return _dataset('tid2013', root, items, True, 'MOS', label_file, 'MOS', ScoreScale(0, 9))


def load_kadid10k(root: str) -> IQADataset:
    """KADID-10k: 10,125 distorted images; the column named ``dmos`` holds a MOS in [1, 5] (higher is better)."""
    paths = _CaseInsensitivePaths('kadid10k', root)
    label_file = paths.file('dmos.csv')
    rows = _read_csv_table(label_file, 'kadid10k', ('dist_img', 'dmos'))
    paths.folder('images')
    items = [(paths.image(f'images/{row["dist_img"]}', label_file),
              _number(row['dmos'], 'kadid10k', label_file, 'dmos', row['dist_img'])) for row in rows]
    return _dataset('kadid10k', root, items, True, 'MOS (column dmos)', label_file, 'dmos', ScoreScale(1, 5))


KONIQ_RESOLUTIONS = ('1024x768', '512x384')
#: Label file -> {score column: its documented scale}; see the module docstring.
KONIQ_LABEL_FILES = {
    'koniq10k_scores_and_distributions.csv': {'MOS_zscore': ScoreScale(1, 100), 'MOS': ScoreScale(1, 5)},
    'koniq10k_distributions_sets.csv': {'MOS': ScoreScale(1, 100)},
}
KONIQ_SCORE_COLUMNS = ('auto', 'MOS_zscore', 'MOS')
#: Values of the ``set`` column of koniq10k_distributions_sets.csv ('all' keeps every image).
KONIQ_SPLITS = ('all', 'training', 'validation', 'test')
_KONIQ_SPLIT_FILE = 'koniq10k_distributions_sets.csv'
_KONIQ_SCALES_HINT = ('KonIQ-10k scales: koniq10k_scores_and_distributions.csv has MOS on 1-5 and MOS_zscore on '
                      '1-100; koniq10k_distributions_sets.csv has MOS on 1-100. Keep the official file names and '
                      'choose the column with --koniq-score (score_column).')


def _koniq_label_file(paths: _CaseInsensitivePaths, split: str) -> str:
    """The KonIQ label file to read: the split file when a split is asked for, else the first one present."""
    names = [_KONIQ_SPLIT_FILE] if split != 'all' else list(KONIQ_LABEL_FILES)
    for name in names:
        path = paths.find(name)
        if path is not None and os.path.isfile(path):
            return path
    wanted = ' or '.join(os.path.join(paths.root, name) for name in names)
    why = f" (split={split!r} needs its 'set' column)" if split != 'all' else ''
    raise FileNotFoundError(f'koniq10k: label file not found: {wanted}{why}; koniq10k_distributions_sets.csv is in '
                            "the metadata/ folder of the authors' GitHub repository (subpic/koniq)")


def load_koniq10k(root: str, resolution: str = '1024x768', score_column: str = 'auto',
                  split: str = 'all') -> IQADataset:
    """KonIQ-10k: 10,073 images from the ``1024x768/`` or ``512x384/`` folder, or those of one official ``split``.

    ``score_column`` 'auto' takes the label file's 1-100 score (MOS_zscore, or MOS of the authors' GitHub file);
    'MOS' and 'MOS_zscore' name a column, whose scale depends on the file (see the module docstring).
    """
    if resolution not in KONIQ_RESOLUTIONS:
        raise ValueError(f'koniq10k: resolution must be one of {KONIQ_RESOLUTIONS}, got {resolution!r}')
    if score_column not in KONIQ_SCORE_COLUMNS:
        raise ValueError(f'koniq10k: score_column must be one of {KONIQ_SCORE_COLUMNS}, got {score_column!r}')
    if split not in KONIQ_SPLITS:
        raise ValueError(f'koniq10k: split must be one of {KONIQ_SPLITS}, got {split!r}')
    paths = _CaseInsensitivePaths('koniq10k', root)
    label_file = _koniq_label_file(paths, split)
    scales = KONIQ_LABEL_FILES[os.path.basename(label_file).lower()]
    column = next(iter(scales)) if score_column == 'auto' else score_column
    if column not in scales:
        raise ValueError(f'koniq10k: {label_file} has no {column} column (its score columns: '
                         f'{", ".join(scales)}). {_KONIQ_SCALES_HINT}')
    wanted = ('image_name', column) + (('set',) if split != 'all' else ())
    rows = _read_csv_table(label_file, 'koniq10k', wanted, _KONIQ_SCALES_HINT)
    if split != 'all':
        found = sorted({row['set'] for row in rows})
        rows = [row for row in rows if row['set'] == split]
        if not rows:
            raise ValueError(f"koniq10k: no image of set {split!r} in {label_file}; its set column holds {found}")
    folder = paths.folder(resolution)
    items = [(paths.image(f'{os.path.basename(folder)}/{row["image_name"]}', label_file),
              _number(row[column], 'koniq10k', label_file, column, row['image_name'])) for row in rows]
    options = {'resolution': resolution, 'score_column': column}
    if split != 'all':
        options['split'] = split
    return _dataset('koniq10k', root, items, True, column, label_file, column, scales[column], options,
                    _KONIQ_SCALES_HINT)


LIVEC_TRAINING_IMAGES = 7


def load_livec(root: str) -> IQADataset:
    """LIVE in the Wild: 1,162 images, MOS in [0, 100] (higher is better); the first 7 (training) are dropped."""
    paths = _CaseInsensitivePaths('livec', root)
    names_file = paths.file('Data/AllImages_release.mat')
    label_file = paths.file('Data/AllMOS_release.mat')
    names = _load_mat_vector(names_file, 'livec', 'AllImages_release')
    mos = _load_mat_vector(label_file, 'livec', 'AllMOS_release')
    if len(names) != len(mos):
        raise ValueError(f'livec: {len(names)} image names in {names_file} but {len(mos)} MOS values in {label_file}')
    folder = os.path.basename(paths.folder('Images'))
    items = [(paths.image(f'{folder}/{str(np.asarray(name).ravel()[0]).strip()}', names_file), float(score))
             for name, score in zip(names[LIVEC_TRAINING_IMAGES:], mos[LIVEC_TRAINING_IMAGES:])]
    return _dataset('livec', root, items, True, 'MOS', label_file, 'AllMOS_release', ScoreScale(0, 100))


#: LIVE release 2: the 982 entries of dmos.mat in order (folder, number of images img1..imgN).
LIVE_FOLDERS = (('jp2k', 227), ('jpeg', 233), ('wn', 174), ('gblur', 174), ('fastfading', 174))
LIVE_DMOS_CHOICES = ('realigned', 'original')


def load_live(root: str, dmos: str = 'realigned') -> IQADataset:
    """LIVE (release 2): 779 distorted images, DMOS (lower is better); entries with orgs=1 (reference copies)
    are dropped. ``dmos='realigned'`` reads dmos_realigned.mat (dmos_new), ``'original'`` reads dmos.mat."""
    if dmos not in LIVE_DMOS_CHOICES:
        raise ValueError(f'live: dmos must be one of {LIVE_DMOS_CHOICES}, got {dmos!r}')
    paths = _CaseInsensitivePaths('live', root)
    label_file, variable = (paths.file('dmos_realigned.mat'), 'dmos_new') if dmos == 'realigned' \
        else (paths.file('dmos.mat'), 'dmos')
    scores = _load_mat_vector(label_file, 'live', variable)
    orgs = _load_mat_vector(label_file, 'live', 'orgs')
    relative = [f'{folder}/img{k}.bmp' for folder, count in LIVE_FOLDERS for k in range(1, count + 1)]
    if not len(scores) == len(orgs) == len(relative):
        raise ValueError(f'live: expected {len(relative)} entries in {label_file}, found {len(scores)} scores '
                         f'and {len(orgs)} orgs flags')
    items = [(paths.image(name, label_file), float(score))
             for name, score, original in zip(relative, scores, orgs) if int(original) == 0]
    return _dataset('live', root, items, False, f'DMOS ({dmos})', label_file, variable, ScoreScale(0, 100),
                    {'dmos': dmos})


def load_cid2013(root: str) -> IQADataset:
    """CID2013: 474 images, realigned MOS in [0, 100] (higher is better); images found by basename under root."""
    workbooks = sorted(glob.glob(os.path.join(glob.escape(root), 'CID2013*.xlsx')))
    if not workbooks:
        expected = os.path.join(root, 'CID2013 data - version 12112014.xlsx')
        raise FileNotFoundError(f'cid2013: label file not found: {expected} (any CID2013*.xlsx in the root folder)')
    label_file = workbooks[0]
    rows = _read_xlsx_table(label_file, 'cid2013', ('Source_ID', 'Realigned MOS'), sheet='CID2013 MOS')
    images = {}
    for path in glob.glob(os.path.join(glob.escape(root), '**', '*'), recursive=True):
        stem, extension = os.path.splitext(os.path.basename(path))
        if extension.lower() == '.jpg':
            images[stem.lower()] = path
    items = []
    for row in rows:
        source_id = _cell_text(row['source_id'])
        if source_id.lower() not in images:
            raise FileNotFoundError(f'cid2013: image {source_id}.jpg listed in {label_file} not found under {root}')
        items.append((images[source_id.lower()],
                      _number(row['realigned mos'], 'cid2013', label_file, 'Realigned MOS', source_id)))
    return _dataset('cid2013', root, items, True, 'Realigned MOS', label_file, 'Realigned MOS', ScoreScale(0, 100))


def load_spaq(root: str) -> IQADataset:
    """SPAQ: 11,125 smartphone photos, MOS in [0, 100] (higher is better), full resolution
    (resizing, e.g. shorter side to 512, is an evaluation option)."""
    paths = _CaseInsensitivePaths('spaq', root)
    label_file = paths.file('Annotations/MOS and Image attribute scores.xlsx')
    rows = _read_xlsx_table(label_file, 'spaq', ('Image name', 'MOS'))
    folder = os.path.basename(paths.folder('TestImage'))
    items = [(paths.image(f'{folder}/{_cell_text(row["image name"])}', label_file),
              _number(row['mos'], 'spaq', label_file, 'MOS', row['image name'])) for row in rows]
    return _dataset('spaq', root, items, True, 'MOS', label_file, 'MOS', ScoreScale(0, 100))


#: Dataset name -> loader, in the row order of Table 3's text (synthetic first).
LOADERS: Dict[str, Callable[..., IQADataset]] = {
    'csiq': load_csiq,
    'live': load_live,
    'tid2013': load_tid2013,
    'kadid10k': load_kadid10k,
    'koniq10k': load_koniq10k,
    'livec': load_livec,
    'cid2013': load_cid2013,
    'spaq': load_spaq,
}


def load_dataset(name: str, root: str, **options) -> IQADataset:
    """Load dataset ``name`` (a key of :data:`LOADERS`) from ``root`` with loader-specific ``options``."""
    if name not in LOADERS:
        raise ValueError(f'unknown IQA dataset {name!r}; known: {", ".join(LOADERS)}')
    if not os.path.isdir(root):
        raise FileNotFoundError(f'{name}: dataset root folder not found: {root}')
    dataset = LOADERS[name](root, **options)
    if not dataset.items:
        raise ValueError(f'{name}: the label files under {root} list no image')
    return dataset
