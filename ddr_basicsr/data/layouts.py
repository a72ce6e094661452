"""Where GoPro, RealBlur and RealSR + City100 keep their image pairs, and how each is split and written.

Each ``*_plans`` function yields one :class:`~ddr_basicsr.data.preparation.SplitPlan` per split, lazily (a split
is found and checked only when the previous one has been handled); pass them to
:func:`~ddr_basicsr.data.preparation.run_plans`. The train split is cut into sub-images when ``crop`` is given.
"""
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from ddr_basicsr.data.preparation import (
    SPLITS,
    CropSpec,
    ImagePair,
    SplitPlan,
    check_matching,
    check_pairs,
    list_images,
    output_stems,
    pair_by_stem,
    plan_split,
    warn_on_count,
)

__all__ = [
    'CITY100_CAMERAS', 'CITY100_PAIRS_PER_CAMERA', 'CITY100_TEST_IDS', 'GOPRO_OFFICIAL_PAIRS', 'GOPRO_OUTPUT_STEMS',
    'REALBLUR_OFFICIAL_PAIRS', 'REALBLUR_VARIANTS', 'REALSR_CAMERAS', 'REALSR_SPLITS', 'City100Split',
    'city100_pairs', 'city100_split', 'gopro_pairs', 'gopro_plans', 'realblur_list_file', 'realblur_pair_name',
    'realblur_pairs', 'realblur_plans', 'realsr_city100_plans', 'realsr_pairs',
]

GOPRO_OFFICIAL_PAIRS = {'train': 2103, 'test': 1111}
GOPRO_OUTPUT_STEMS = {'train': ('sharp_crops', 'blur_crops'), 'test': ('target', 'input')}  # (GT, LQ)
REALBLUR_OFFICIAL_PAIRS = {'train': 3758, 'test': 980}
REALBLUR_VARIANTS = ('J', 'R')
REALSR_CAMERAS = ('Canon', 'Nikon')
REALSR_SPLITS = {'train': 'Train', 'test': 'Test'}
CITY100_CAMERAS = ('NikonD5500', 'iPhoneX')
CITY100_PAIRS_PER_CAMERA = 100
CITY100_TEST_IDS = ('001', '016', '048', '060', '098')
_REALSR_NAME = re.compile(r'^(?P<id>.+)_(?:HR|LR(?P<scale>\d+))$')
_CITY100_NAME = re.compile(r'^(?P<id>\d+)(?P<kind>[HL])$', re.IGNORECASE)


def _split_crop(split: str, crop: Optional[CropSpec]) -> Optional[CropSpec]:
    """Only the train split is cut into sub-images."""
    return crop if split == 'train' else None


# --------------------------------------------------------------------------- GoPro
def gopro_pairs(split_dir: Path, blur_folder: str = 'blur') -> List[ImagePair]:
    """Pairs of one GoPro split, in the GOPRO_Large layout or the flat ``input``/``target`` one."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(f'{split_dir} not found: --input must contain train/ and test/ of GOPRO_Large '
                                'or of the flat input/target layout')
    if (split_dir / 'input').is_dir() or (split_dir / 'target').is_dir():
        return pair_by_stem(split_dir / 'target', split_dir / 'input')
    sequences = sorted(path for path in split_dir.iterdir() if path.is_dir())
    if not sequences:
        raise FileNotFoundError(f'No sequence folders (GOPRxxxx_xx_xx) and no input/target folders in {split_dir}')
    pairs: List[ImagePair] = []
    for sequence in sequences:
        pairs.extend(pair_by_stem(sequence / 'sharp', sequence / blur_folder, prefix=f'{sequence.name}_'))
    return pairs


def gopro_plans(input_dir: Path, output: Path, *, splits: Sequence[str] = SPLITS, blur_folder: str = 'blur',
                backend: str = 'lmdb', crop: Optional[CropSpec] = None) -> Iterator[SplitPlan]:
    """Plans for ``output/<split>/{sharp_crops,blur_crops}`` (train) and ``{target,input}`` (test)."""
    for split in splits:
        yield plan_split(f'GoPro {split}', gopro_pairs(Path(input_dir) / split, blur_folder), Path(output) / split,
                         GOPRO_OUTPUT_STEMS[split], backend=backend, crop=_split_crop(split, crop),
                         expected_pairs=GOPRO_OFFICIAL_PAIRS[split])


# --------------------------------------------------------------------------- RealBlur
def realblur_list_file(root: Path, variant: str, split: str) -> Path:
    """The official list file of a RealBlur variant (J or R) and split."""
    return Path(root) / f'RealBlur_{variant}_{split}_list.txt'


def realblur_pair_name(gt_relative: str) -> str:
    """``sceneNNN_k`` for ``.../sceneNNN/gt/gt_k.png``."""
    path = Path(gt_relative)
    stem = path.stem[len('gt_'):] if path.stem.startswith('gt_') else path.stem
    return f'{path.parent.parent.name}_{stem}'


def realblur_pairs(root: Path, variant: str, split: str) -> List[ImagePair]:
    """Pairs named by one official list file; a missing list or image is an error naming it."""
    root = Path(root)
    listing = realblur_list_file(root, variant, split)
    if not listing.is_file():
        raise FileNotFoundError(f'List file not found: {listing} (--input must be the RealBlur root that holds '
                                f'RealBlur_{{J,R}}_{{train,test}}_list.txt)')
    pairs = []
    for number, line in enumerate(listing.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ValueError(f'{listing}:{number}: expected "<gt path> <blur path>", got {line!r}')
        gt, lq = root / fields[0], root / fields[1]
        for path in (gt, lq):
            if not path.is_file():
                raise FileNotFoundError(f'{listing}:{number} names {path}, which does not exist')
        pairs.append(ImagePair(realblur_pair_name(fields[0]), gt, lq))
    return pairs


def realblur_plans(root: Path, output: Path, *, variants: Sequence[str] = REALBLUR_VARIANTS,
                   splits: Sequence[str] = SPLITS, backend: str = 'lmdb',
                   crop: Optional[CropSpec] = None) -> Iterator[SplitPlan]:
    """Plans for ``output/RealBlur_<variant>/<split>/{target,input}`` (``_crops`` for a cropped train split)."""
    for variant in variants:
        for split in splits:
            split_crop = _split_crop(split, crop)
            yield plan_split(f'RealBlur-{variant} {split}', realblur_pairs(root, variant, split),
                             Path(output) / f'RealBlur_{variant}' / split, output_stems(split_crop), backend=backend,
                             crop=split_crop, expected_pairs=REALBLUR_OFFICIAL_PAIRS[split])


# --------------------------------------------------------------------------- RealSR + City100
def realsr_pairs(root: Path, split: str, scale: int) -> List[ImagePair]:
    """RealSR pairs of one split and scale, both cameras; a stray or unmatched file is an error naming it."""
    pairs = []
    for camera in REALSR_CAMERAS:
        hr: Dict[str, Path] = {}
        lr: Dict[str, Path] = {}
        for stem, path in list_images(Path(root) / camera / REALSR_SPLITS[split] / str(scale)).items():
            match = _REALSR_NAME.match(stem)
            if match is None or (match['scale'] is not None and int(match['scale']) != scale):
                raise ValueError(f'Unexpected file {path}: RealSR files are named <id>_HR or <id>_LR{scale}')
            (hr if match['scale'] is None else lr)[match['id']] = path
        check_matching(hr, lr)
        pairs.extend(ImagePair(f'RealSR_{image_id}', hr[image_id], lr[image_id]) for image_id in sorted(hr))
    return pairs


def city100_pairs(root: Path, camera: str) -> Dict[str, ImagePair]:
    """City100 pairs of one camera by id (``001`` ...)."""
    hr: Dict[str, Path] = {}
    lr: Dict[str, Path] = {}
    for stem, path in list_images(Path(root) / f'City100_{camera}').items():
        match = _CITY100_NAME.match(stem)
        if match is None:
            raise ValueError(f'Unexpected file {path}: City100 files are named <NNN>H.PNG or <NNN>L.PNG')
        (hr if match['kind'].upper() == 'H' else lr)[match['id']] = path
    check_matching(hr, lr)
    return {image_id: ImagePair(f'City100_{camera}_{image_id}', hr[image_id], lr[image_id]) for image_id in sorted(hr)}


@dataclass(frozen=True)
class City100Split:
    """City100 pairs of both cameras by split (``train``, ``test``) and the count warnings."""
    pairs: Dict[str, List[ImagePair]]
    warnings: Tuple[str, ...]


def city100_split(root: Path, test_ids: Sequence[str] = CITY100_TEST_IDS) -> City100Split:
    """City100 pairs of both cameras split by id; every test id must exist for every camera."""
    split: Dict[str, List[ImagePair]] = {'train': [], 'test': []}
    warnings = []
    for camera in CITY100_CAMERAS:
        pairs = city100_pairs(root, camera)
        warning = warn_on_count(f'City100 {camera}', len(pairs), CITY100_PAIRS_PER_CAMERA)
        if warning:
            warnings.append(warning)
        missing = sorted(set(test_ids) - set(pairs))
        if missing:
            raise ValueError(f'City100 {camera} has no pair with test id(s) {", ".join(missing)}')
        for image_id, pair in pairs.items():
            split['test' if image_id in test_ids else 'train'].append(pair)
    check_pairs(split['train'] + split['test'])  # City100 LR and HR must have the same size
    return City100Split(split, tuple(warnings))


def realsr_city100_plans(realsr_root: Path, city100_root: Path, output: Path, *, splits: Sequence[str] = SPLITS,
                         scale: int = 4, city100_test_ids: Sequence[str] = CITY100_TEST_IDS, backend: str = 'lmdb',
                         crop: Optional[CropSpec] = None) -> Iterator[SplitPlan]:
    """Plans for ``output/<split>/{target,input}`` (``_crops`` for a cropped train split): RealSR + City100.

    RealSR LR images may be ``scale`` times smaller than HR; City100's count warnings come with the first plan.
    """
    city100 = city100_split(city100_root, city100_test_ids)
    warnings = city100.warnings
    for split in splits:
        split_crop = _split_crop(split, crop)
        pairs = realsr_pairs(realsr_root, split, scale) + city100.pairs[split]
        yield plan_split(f'RealSR+City100 {split}', pairs, Path(output) / split, output_stems(split_crop),
                         backend=backend, crop=split_crop, lq_scales=(1, scale), warnings=warnings)
        warnings = ()
