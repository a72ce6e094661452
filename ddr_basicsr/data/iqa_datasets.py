"""Loaders for the eight IQA datasets of the paper's Table 3, read from their official distribution files.

Each loader takes the dataset's root folder and returns an :class:`IQADataset`: every distorted image
(reference copies and LIVE in the Wild's 7 training images excluded) with its subjective score, and
the score direction. Formats, counts and directions are in the table below.

| name | official files read | images | score |
|---|---|---|---|
| csiq | csiq.DMOS.xlsx (sheet all_by_image), dst_imgs/ | 866 | DMOS, lower is better |
| tid2013 | mos_with_names.txt, distorted_images/ | 3000 | MOS, higher is better |
| kadid10k | dmos.csv (column dmos holds a MOS), images/ | 10125 | MOS, higher is better |
| koniq10k | koniq10k_scores_and_distributions.csv, 1024x768/ or 512x384/ | 10073 | MOS_zscore (or MOS), higher |
| livec | Data/AllImages_release.mat, Data/AllMOS_release.mat, Images/ | 1162 | MOS, higher is better |
| live | dmos_realigned.mat (or dmos.mat), <type>/img<k>.bmp | 779 | DMOS, lower is better |
| cid2013 | CID2013 data*.xlsx (sheet CID2013 MOS), IS*/co*/<id>.jpg | 474 | realigned MOS, higher |
| spaq | Annotations/MOS and Image attribute scores.xlsx, TestImage/ | 11125 | MOS, higher is better |

File names are matched case-insensitively when the exact name is missing (TID2013 and CSIQ mix cases).
"""
import csv
import glob
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class IQADataset:
    """Images of one IQA dataset with their subjective scores.

    ``higher_better`` is True for MOS (higher = better quality), False for DMOS.
    ``options`` records the choices that shaped ``items`` (resolution folder, score column, ...).
    """
    name: str
    root: str
    items: Tuple[Tuple[str, float], ...]
    higher_better: bool
    score_label: str
    options: Mapping[str, object] = field(default_factory=dict)

    @property
    def paths(self) -> List[str]:
        return [path for path, _ in self.items]

    @property
    def scores(self) -> np.ndarray:
        return np.array([score for _, score in self.items], dtype=np.float64)


def _require_file(path: str, dataset: str, what: str) -> str:
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{dataset}: {what} not found: {path} (expected the official layout of the '
                                f'dataset under its root folder; see ddr_basicsr/data/iqa_datasets.py)')
    return path


def _require_dir(path: str, dataset: str, what: str) -> str:
    if not os.path.isdir(path):
        raise FileNotFoundError(f'{dataset}: {what} folder not found: {path} (expected the official layout of '
                                f'the dataset under its root folder; see ddr_basicsr/data/iqa_datasets.py)')
    return path


class _FolderIndex:
    """Resolve file names inside folders, falling back to a case-insensitive match."""

    def __init__(self, dataset: str):
        self.dataset = dataset
        self._lower_names: Dict[str, Dict[str, str]] = {}

    def resolve(self, folder: str, name: str) -> str:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
        head, tail = os.path.split(path)
        if head not in self._lower_names:
            entries = os.listdir(head) if os.path.isdir(head) else []
            self._lower_names[head] = {entry.lower(): entry for entry in entries}
        match = self._lower_names[head].get(tail.lower())
        if match is None:
            raise FileNotFoundError(f'{self.dataset}: image listed in the label file is missing: {path}')
        return os.path.join(head, match)


def _normalise_header(value: object) -> str:
    return ' '.join(str(value).split()).lower() if value is not None else ''


def _read_xlsx_table(path: str, dataset: str, columns: Sequence[str],
                     sheet: Optional[str] = None) -> List[Dict[str, object]]:
    """Rows of an xlsx sheet (default: the first) as dicts keyed by normalised header name.

    The header row is the first row holding every name in ``columns`` (compared case- and
    whitespace-insensitively); data rows are the later rows with a value in ``columns[0]``.
    """
    from openpyxl import load_workbook

    workbook = load_workbook(_require_file(path, dataset, 'label file'), read_only=True, data_only=True)
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


def _cell_text(value: object) -> str:
    """Excel cell -> text; whole numbers stored as floats (1600.0) become '1600'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_csv_table(path: str, dataset: str, columns: Sequence[str]) -> List[Dict[str, str]]:
    with open(_require_file(path, dataset, 'label file'), newline='', encoding='utf-8-sig') as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in columns if name not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f'{dataset}: {path} lacks the columns {missing}; found {reader.fieldnames}')
        return list(reader)


def _load_mat_vector(path: str, dataset: str, variable: str) -> np.ndarray:
    from scipy.io import loadmat

    content = loadmat(_require_file(path, dataset, 'label file'))
    if variable not in content:
        found = sorted(key for key in content if not key.startswith('__'))
        raise ValueError(f'{dataset}: variable {variable!r} not found in {path}; found {found}')
    return np.asarray(content[variable]).ravel()


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
    rows = _read_xlsx_table(os.path.join(root, 'csiq.DMOS.xlsx'), 'csiq',
                            ('image', 'dst_type', 'dst_lev', 'dmos'), sheet='all_by_image')
    index = _FolderIndex('csiq')
    items = []
    for row in rows:
        kind = _normalise_header(row['dst_type'])
        if kind not in _CSIQ_TYPES:
            raise ValueError(f'csiq: unknown dst_type {row["dst_type"]!r}; known: {sorted(_CSIQ_TYPES)}')
        folder, tag = _CSIQ_TYPES[kind]
        name = f'{_cell_text(row["image"])}.{tag}.{_cell_text(row["dst_lev"])}.png'
        items.append((index.resolve(os.path.join(root, 'dst_imgs', folder), name), float(row['dmos'])))
    return IQADataset('csiq', root, tuple(items), higher_better=False, score_label='DMOS')


def load_tid2013(root: str) -> IQADataset:
    """TID2013: 3000 distorted images, MOS in [0, 9] (higher is better)."""
    label_file = _require_file(os.path.join(root, 'mos_with_names.txt'), 'tid2013', 'label file')
    folder = _require_dir(os.path.join(root, 'distorted_images'), 'tid2013', 'image')
    index = _FolderIndex('tid2013')
    items = []
    with open(label_file, encoding='utf-8') as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f'tid2013: {label_file} line {number} is not "MOS filename": {line.strip()!r}')
            items.append((index.resolve(folder, parts[1]), float(parts[0])))
    return IQADataset('tid2013', root, tuple(items), higher_better=True, score_label='MOS')


def load_kadid10k(root: str) -> IQADataset:
    """KADID-10k: 10,125 distorted images; the column named ``dmos`` holds a MOS in [1, 5] (higher is better)."""
    rows = _read_csv_table(os.path.join(root, 'dmos.csv'), 'kadid10k', ('dist_img', 'dmos'))
    folder = _require_dir(os.path.join(root, 'images'), 'kadid10k', 'image')
    index = _FolderIndex('kadid10k')
    items = tuple((index.resolve(folder, row['dist_img']), float(row['dmos'])) for row in rows)
    return IQADataset('kadid10k', root, items, higher_better=True, score_label='MOS (column dmos)')


KONIQ_RESOLUTIONS = ('1024x768', '512x384')
KONIQ_SCORE_COLUMNS = ('MOS_zscore', 'MOS')


def load_koniq10k(root: str, resolution: str = '1024x768', score_column: str = 'MOS_zscore') -> IQADataset:
    """KonIQ-10k: 10,073 images from the ``1024x768/`` or ``512x384/`` folder; MOS_zscore (1-100) or MOS (1-5)."""
    if resolution not in KONIQ_RESOLUTIONS:
        raise ValueError(f'koniq10k: resolution must be one of {KONIQ_RESOLUTIONS}, got {resolution!r}')
    if score_column not in KONIQ_SCORE_COLUMNS:
        raise ValueError(f'koniq10k: score_column must be one of {KONIQ_SCORE_COLUMNS}, got {score_column!r}')
    rows = _read_csv_table(os.path.join(root, 'koniq10k_scores_and_distributions.csv'), 'koniq10k',
                           ('image_name', score_column))
    folder = _require_dir(os.path.join(root, resolution), 'koniq10k', 'image')
    index = _FolderIndex('koniq10k')
    items = tuple((index.resolve(folder, row['image_name']), float(row[score_column])) for row in rows)
    return IQADataset('koniq10k', root, items, higher_better=True, score_label=score_column,
                      options={'resolution': resolution, 'score_column': score_column})


LIVEC_TRAINING_IMAGES = 7


def load_livec(root: str) -> IQADataset:
    """LIVE in the Wild: 1,162 images, MOS in [0, 100] (higher is better); the first 7 (training) are dropped."""
    names = _load_mat_vector(os.path.join(root, 'Data', 'AllImages_release.mat'), 'livec', 'AllImages_release')
    mos = _load_mat_vector(os.path.join(root, 'Data', 'AllMOS_release.mat'), 'livec', 'AllMOS_release')
    if len(names) != len(mos):
        raise ValueError(f'livec: {len(names)} image names but {len(mos)} MOS values')
    folder = _require_dir(os.path.join(root, 'Images'), 'livec', 'image')
    index = _FolderIndex('livec')
    items = tuple((index.resolve(folder, str(np.asarray(name).ravel()[0]).strip()), float(score))
                  for name, score in zip(names[LIVEC_TRAINING_IMAGES:], mos[LIVEC_TRAINING_IMAGES:]))
    return IQADataset('livec', root, items, higher_better=True, score_label='MOS')


#: LIVE release 2: the 982 entries of dmos.mat in order (folder, number of images img1..imgN).
LIVE_FOLDERS = (('jp2k', 227), ('jpeg', 233), ('wn', 174), ('gblur', 174), ('fastfading', 174))
LIVE_DMOS_CHOICES = ('realigned', 'original')


def load_live(root: str, dmos: str = 'realigned') -> IQADataset:
    """LIVE (release 2): 779 distorted images, DMOS (lower is better); entries with orgs=1 (reference copies)
    are dropped. ``dmos='realigned'`` reads dmos_realigned.mat (dmos_new), ``'original'`` reads dmos.mat."""
    if dmos not in LIVE_DMOS_CHOICES:
        raise ValueError(f'live: dmos must be one of {LIVE_DMOS_CHOICES}, got {dmos!r}')
    if dmos == 'realigned':
        label_file, variable = os.path.join(root, 'dmos_realigned.mat'), 'dmos_new'
    else:
        label_file, variable = os.path.join(root, 'dmos.mat'), 'dmos'
    scores = _load_mat_vector(label_file, 'live', variable)
    orgs = _load_mat_vector(label_file, 'live', 'orgs')
    relative = [f'{folder}/img{k}.bmp' for folder, count in LIVE_FOLDERS for k in range(1, count + 1)]
    if not len(scores) == len(orgs) == len(relative):
        raise ValueError(f'live: expected {len(relative)} entries in {label_file}, found {len(scores)} scores '
                         f'and {len(orgs)} orgs flags')
    index = _FolderIndex('live')
    items = tuple((index.resolve(root, name), float(score))
                  for name, score, original in zip(relative, scores, orgs) if int(original) == 0)
    return IQADataset('live', root, items, higher_better=False, score_label=f'DMOS ({dmos})',
                      options={'dmos': dmos})


def load_cid2013(root: str) -> IQADataset:
    """CID2013: 474 images, realigned MOS in [0, 100] (higher is better); images found by basename under root."""
    workbooks = sorted(glob.glob(os.path.join(glob.escape(root), 'CID2013*.xlsx')))
    if not workbooks:
        expected = os.path.join(root, 'CID2013 data - version 12112014.xlsx')
        raise FileNotFoundError(f'cid2013: label file not found: {expected} (any CID2013*.xlsx in the root folder)')
    rows = _read_xlsx_table(workbooks[0], 'cid2013', ('Source_ID', 'Realigned MOS'), sheet='CID2013 MOS')
    images = {}
    for path in glob.glob(os.path.join(glob.escape(root), '**', '*'), recursive=True):
        stem, extension = os.path.splitext(os.path.basename(path))
        if extension.lower() == '.jpg':
            images[stem.lower()] = path
    items = []
    for row in rows:
        source_id = _cell_text(row['source_id'])
        if source_id.lower() not in images:
            raise FileNotFoundError(f'cid2013: image {source_id}.jpg listed in {workbooks[0]} not found under {root}')
        items.append((images[source_id.lower()], float(row['realigned mos'])))
    return IQADataset('cid2013', root, tuple(items), higher_better=True, score_label='Realigned MOS')


def load_spaq(root: str) -> IQADataset:
    """SPAQ: 11,125 smartphone photos, MOS in [0, 100] (higher is better), full resolution
    (resizing, e.g. shorter side to 512, is an evaluation option)."""
    rows = _read_xlsx_table(os.path.join(root, 'Annotations', 'MOS and Image attribute scores.xlsx'), 'spaq',
                            ('Image name', 'MOS'))
    folder = _require_dir(os.path.join(root, 'TestImage'), 'spaq', 'image')
    index = _FolderIndex('spaq')
    items = tuple((index.resolve(folder, _cell_text(row['image name'])), float(row['mos'])) for row in rows)
    return IQADataset('spaq', root, items, higher_better=True, score_label='MOS')


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
