"""Shared steps of the dataset preparation scripts (``scripts/prepare_*.py``).

Find and check GT/LQ image pairs, cut training sub-images, and write a pair set in one of BasicSR's
formats: an lmdb (PNG bytes keyed by the name, plus ``meta_info.txt``) or a folder of PNG files with the
same names for GT and LQ. Outputs are never half-written: each is built in a hidden
``.<name>.partial`` folder beside its target and renamed when complete, so an existing output is a
complete one, and a re-run skips it (or rebuilds it with ``overwrite``) instead of adding to it. An
output being replaced is first renamed aside (``.<name>.old``), so a run killed at any moment leaves each
output either complete (old or new) or absent, never a new GT beside an old LQ; the next run cleans up.
An image that cannot be read whole (OpenCV cannot decode it, or a truncated JPEG, which OpenCV would
decode with its missing part grey) fails its split, after every unreadable image of the split is listed.
``plan_split`` checks a split and ``run_plans`` writes planned splits; the datasets' layouts are in
:mod:`ddr_basicsr.data.layouts`.
"""
import functools
import io
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import cv2
import lmdb
import numpy as np
from PIL import Image
from tqdm import tqdm

from ddr_basicsr.utils.image_files import IMAGE_EXTENSIONS
from ddr_basicsr.utils.worker_pools import worker_executor

BACKENDS = ('lmdb', 'disk')
SPLITS = ('train', 'test')
_KEY_PATTERN = re.compile(r'^[A-Za-z0-9_-]+$')  # BasicSR splits meta_info lines at the first '.'
_INITIAL_MAP_SIZE = 1 << 30  # lmdb address space; doubled whenever it fills up
_MAX_LISTED = 10

Size = Tuple[int, int]  # (height, width)


@dataclass(frozen=True)
class ImagePair:
    """A GT/LQ pair; ``name`` is its key (lmdb) or file stem (folder) in the output, without extension."""
    name: str
    gt: Path
    lq: Path


@dataclass(frozen=True)
class CropSpec:
    """Square sub-images of ``size`` px every ``step`` px (BasicSR ``extract_subimages``, NAFNet ``gopro.py``).

    Along each side a last window flush with the far border is added when more than ``thresh_size`` px
    would be left uncovered; a side no longer than ``size`` gives one window covering it.
    """
    size: int
    step: int
    thresh_size: int = 0

    def __post_init__(self) -> None:
        if self.size <= 0 or self.step <= 0 or self.thresh_size < 0:
            raise ValueError(f'Crop size and step must be positive and thresh_size >= 0, got {self}')

    def starts(self, length: int) -> List[int]:
        """Window offsets along one side of ``length`` px."""
        if length <= self.size:
            return [0]
        starts = list(range(0, length - self.size + 1, self.step))
        if length - (starts[-1] + self.size) > self.thresh_size:
            starts.append(length - self.size)
        return starts

    def boxes(self, height: int, width: int) -> List[Size]:
        """(top, left) of every window, row by row."""
        return [(top, left) for top in self.starts(height) for left in self.starts(width)]


@dataclass(frozen=True)
class Record:
    """One output entry: its key and the PNG bytes and (h, w, c) shapes of the GT and LQ images."""
    key: str
    gt_png: bytes
    lq_png: bytes
    gt_shape: Tuple[int, int, int]
    lq_shape: Tuple[int, int, int]


def _listing(items: Sequence[str]) -> str:
    shown = ', '.join(str(item) for item in items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f' ... and {more} more' if more > 0 else '')


def list_images(folder: Path) -> Dict[str, Path]:
    """Map file stem -> path for the images directly inside ``folder`` (extension case ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'Image folder not found: {folder}')
    images: Dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not (path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS):
            continue
        if path.stem in images:
            raise ValueError(f'Two images named {path.stem!r} in {folder}: {images[path.stem].name} and {path.name}')
        images[path.stem] = path
    if not images:
        raise FileNotFoundError(f'No images ({", ".join(sorted(IMAGE_EXTENSIONS))}) in {folder}')
    return images


def check_matching(gt: Dict[str, Path], lq: Dict[str, Path]) -> None:
    """Raise ValueError naming every GT image without an LQ partner and every LQ image without a GT one."""
    gt_only = [str(gt[name]) for name in sorted(set(gt) - set(lq))]
    lq_only = [str(lq[name]) for name in sorted(set(lq) - set(gt))]
    problems = []
    if gt_only:
        problems.append(f'{len(gt_only)} GT image(s) without LQ partner: {_listing(gt_only)}')
    if lq_only:
        problems.append(f'{len(lq_only)} LQ image(s) without GT partner: {_listing(lq_only)}')
    if problems:
        raise ValueError('Unmatched images. ' + '; '.join(problems))


def pair_by_stem(gt_dir: Path, lq_dir: Path, prefix: str = '') -> List[ImagePair]:
    """Pair the images of two folders by file stem; output names are ``prefix + stem``."""
    gt, lq = list_images(gt_dir), list_images(lq_dir)
    check_matching(gt, lq)
    return [ImagePair(prefix + stem, gt[stem], lq[stem]) for stem in sorted(gt)]


def image_size(path: Path) -> Size:
    """(height, width) of an image, read from its header only."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except FileNotFoundError:
        raise FileNotFoundError(f'Image not found: {path}') from None
    except OSError as err:
        raise ValueError(f'Cannot read image {path}: {err}') from err
    return height, width


def matching_scale(gt_size: Size, lq_size: Size, lq_scales: Sequence[int]) -> Optional[int]:
    """The factor s in ``lq_scales`` with GT = s x LQ on both sides (to within s-1 px), or None."""
    for scale in lq_scales:
        if all(0 <= gt - lq * scale < scale for gt, lq in zip(gt_size, lq_size)):
            return scale
    return None


def check_pairs(pairs: Sequence[ImagePair], lq_scales: Sequence[int] = (1,)) -> List[Size]:
    """Check that names are unique lmdb-safe keys and that sizes fit; return each pair's GT (height, width).

    An LQ image must have the GT's size or, for a factor s > 1 in ``lq_scales``, be s times smaller.
    """
    if not pairs:
        raise ValueError('No image pairs found: check the input path and layout')
    first_use: Dict[str, Path] = {}
    for pair in pairs:
        if not _KEY_PATTERN.match(pair.name):
            raise ValueError(f'Output name {pair.name!r} (from {pair.gt}) may only contain letters, digits, '
                             '"_" and "-": it becomes an lmdb key')
        if pair.name in first_use:
            raise ValueError(f'{first_use[pair.name]} and {pair.gt} map to the same output name {pair.name!r}')
        first_use[pair.name] = pair.gt
    sizes = []
    for pair in tqdm(pairs, desc='check sizes', unit='pair', leave=False):
        gt_size, lq_size = image_size(pair.gt), image_size(pair.lq)
        if matching_scale(gt_size, lq_size, lq_scales) is None:
            wanted = ' or '.join('the same size' if s == 1 else f'{s}x smaller' for s in lq_scales)
            raise ValueError(f'Size mismatch: GT {pair.gt} is {gt_size[0]}x{gt_size[1]} (h x w) but LQ {pair.lq} '
                             f'is {lq_size[0]}x{lq_size[1]}; the LQ image must be {wanted}')
        sizes.append(gt_size)
    return sizes


def count_records(sizes: Sequence[Size], crop: Optional[CropSpec]) -> int:
    """Number of entries a pair set with these GT sizes produces (sub-images when ``crop`` is given)."""
    if crop is None:
        return len(sizes)
    return sum(len(crop.boxes(height, width)) for height, width in sizes)


def jpeg_problem(data: bytes) -> str:
    """Why the JPEG ``data`` cannot be decoded to its end ('' when it can), as Pillow reports it.

    ``cv2.imread`` decodes a truncated JPEG without an error (libjpeg only prints a warning) and fills the
    missing part with grey; Pillow raises.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except (OSError, SyntaxError, ValueError) as error:
        return str(error) or type(error).__name__
    return ''


def read_image(path: Path) -> np.ndarray:
    """8-bit BGR image as BasicSR reads it; ValueError naming a file OpenCV cannot read or a truncated JPEG."""
    data = np.fromfile(str(path), dtype=np.uint8)
    if data[:2].tobytes() == b'\xff\xd8':  # a JPEG, whatever its extension
        problem = jpeg_problem(data.tobytes())
        if problem:
            raise ValueError(f'JPEG image {path} is truncated or corrupt ({problem})')
    img = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if img is None:
        raise ValueError(f'OpenCV cannot read image {path} (empty, corrupt or truncated)')
    return img


def encode_png(img: np.ndarray, compress_level: int) -> bytes:
    ok, buffer = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
    if not ok:
        raise ValueError(f'PNG encoding failed for an image of shape {img.shape}')
    return buffer.tobytes()


def pair_records(pair: ImagePair, crop: Optional[CropSpec], compress_level: int) -> List[Record]:
    """Read a checked pair and encode it whole (key = name) or as sub-images (keys ``<name>_s001``, ...).

    An LQ image smaller than its GT (RealSR V3, allowed by ``check_pairs``) is first brought to the GT
    size by bicubic interpolation, because NAFNet and Restormer keep the input resolution.
    """
    gt, lq = read_image(pair.gt), read_image(pair.lq)
    height, width = gt.shape[:2]
    if lq.shape != gt.shape:
        lq = cv2.resize(lq, (width, height), interpolation=cv2.INTER_CUBIC)
    if crop is None:
        windows = [(pair.name, gt, lq)]
    else:
        windows = [(f'{pair.name}_s{index:03d}', gt[top:top + crop.size, left:left + crop.size],
                    lq[top:top + crop.size, left:left + crop.size])
                   for index, (top, left) in enumerate(crop.boxes(height, width), start=1)]
    return [Record(key, encode_png(gt_win, compress_level), encode_png(lq_win, compress_level),
                   gt_win.shape, lq_win.shape) for key, gt_win, lq_win in windows]


def _records_or_problem(pair: ImagePair, crop: Optional[CropSpec], compress_level: int) -> Tuple[List[Record], str]:
    """:func:`pair_records`, or no record and why an image of the pair cannot be read."""
    try:
        return pair_records(pair, crop, compress_level), ''
    except ValueError as error:
        return [], str(error)


def partial_path(final: Path) -> Path:
    """The hidden folder an output is built in before it is renamed to ``final``."""
    return final.parent / f'.{final.name}.partial'


def aside_path(final: Path) -> Path:
    """The hidden name an existing output gets while its replacement is renamed into place."""
    return final.parent / f'.{final.name}.old'


def output_path(folder: Path, stem: str, backend: str) -> Path:
    """``folder/stem.lmdb`` for the lmdb backend (BasicSR requires the suffix), ``folder/stem`` otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f'Unknown backend {backend!r}; choose one of {BACKENDS}')
    return Path(folder) / (f'{stem}.lmdb' if backend == 'lmdb' else stem)


def remove_leftovers(final: Path) -> None:
    """Delete what a killed run may have left of the output ``final``: its partial and set-aside folders."""
    for leftover in (partial_path(final), aside_path(final)):
        shutil.rmtree(leftover, ignore_errors=True)


class _PartialOutput:
    """One output (lmdb or PNG folder) built in its partial folder, then sealed and renamed into place."""

    def __init__(self, final: Path, backend: str, compress_level: int):
        self.final, self.partial, self.aside = final, partial_path(final), aside_path(final)
        self.compress_level = compress_level
        remove_leftovers(final)
        self.partial.mkdir(parents=True)
        self.env = lmdb.open(str(self.partial), map_size=_INITIAL_MAP_SIZE, sync=False, metasync=False) \
            if backend == 'lmdb' else None
        self.meta_lines: List[str] = []

    def put(self, entries: Sequence[Tuple[str, bytes, Tuple[int, int, int]]]) -> None:
        """Store (key, png bytes, shape) entries; the lmdb map grows when full."""
        if self.env is None:
            for key, png, _ in entries:
                (self.partial / f'{key}.png').write_bytes(png)
        else:
            while True:
                try:
                    with self.env.begin(write=True) as txn:
                        for key, png, _ in entries:
                            txn.put(key.encode('ascii'), png)
                    break
                except lmdb.MapFullError:
                    self.env.set_mapsize(self.env.info()['map_size'] * 2)
        self.meta_lines.extend(f'{key}.png ({h},{w},{c}) {self.compress_level}' for key, _, (h, w, c) in entries)

    def seal(self) -> None:
        """Verify the entry count, close the lmdb and write its ``meta_info.txt``."""
        if self.env is None:
            return
        stored = self.env.stat()['entries']
        if stored != len(self.meta_lines):
            raise RuntimeError(f'{self.final}: lmdb holds {stored} entries but {len(self.meta_lines)} were written')
        self.env.sync(True)
        self.env.close()
        self.env = None
        (self.partial / 'meta_info.txt').write_text('\n'.join(self.meta_lines) + '\n')

    def set_aside(self) -> None:
        """Rename an existing final output aside (one atomic step)."""
        if self.final.exists():
            os.replace(self.final, self.aside)

    def publish(self) -> None:
        """Rename the sealed partial folder to the final path (its old output was set aside)."""
        os.replace(self.partial, self.final)

    def remove_aside(self) -> None:
        shutil.rmtree(self.aside, ignore_errors=True)

    def discard(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
        shutil.rmtree(self.partial, ignore_errors=True)


def _iter_records(pairs: Sequence[ImagePair], crop: Optional[CropSpec], compress_level: int,
                  workers: int) -> Iterator[Tuple[List[Record], str]]:
    job = functools.partial(_records_or_problem, crop=crop, compress_level=compress_level)
    if workers <= 1:
        yield from map(job, pairs)
        return
    pool = worker_executor(workers)
    try:
        yield from pool.map(job, pairs, chunksize=4)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def write_pair_set(pairs: Sequence[ImagePair], gt_out: Path, lq_out: Path, *, crop: Optional[CropSpec] = None,
                   backend: str = 'lmdb', compress_level: int = 1, workers: int = 1, overwrite: bool = False,
                   expected_entries: Optional[int] = None) -> int:
    """Write checked ``pairs`` to the GT and LQ outputs; return the number of entries (0 when skipped).

    ``gt_out``/``lq_out`` are final paths (see ``output_path``). Both existing means a complete earlier
    run: skipped unless ``overwrite``. Unreadable images (see :func:`read_image`) are all listed in one
    ValueError at the end; a count other than ``expected_entries`` is an error. On any error the partial
    folders are removed; existing outputs are only replaced once both new ones are complete.
    """
    gt_out, lq_out = Path(gt_out), Path(lq_out)
    if backend not in BACKENDS:
        raise ValueError(f'Unknown backend {backend!r}; choose one of {BACKENDS}')
    if gt_out.exists() and lq_out.exists() and not overwrite:
        return 0
    outputs: List[_PartialOutput] = []
    written = 0
    problems: List[str] = []
    try:
        outputs = [_PartialOutput(gt_out, backend, compress_level), _PartialOutput(lq_out, backend, compress_level)]
        progress = tqdm(_iter_records(pairs, crop, compress_level, workers), total=len(pairs), unit='pair',
                        desc=f'write {gt_out.parent.name}/{gt_out.name}')
        for records, problem in progress:
            if problem:
                problems.append(problem)
                continue
            outputs[0].put([(r.key, r.gt_png, r.gt_shape) for r in records])
            outputs[1].put([(r.key, r.lq_png, r.lq_shape) for r in records])
            written += len(records)
        if problems:
            raise ValueError(f'{len(problems)} unreadable image(s), nothing written to {gt_out} and {lq_out}: '
                             f'{_listing(problems)}. Replace or remove these files and run again.')
        if expected_entries is not None and written != expected_entries:
            raise RuntimeError(f'{gt_out}: produced {written} entries, planned {expected_entries}')
        for output in outputs:
            output.seal()
        for output in outputs:  # never an old GT beside a new LQ: both old ones aside, then both new ones in
            output.set_aside()
        for output in outputs:
            output.publish()
        for output in outputs:
            output.remove_aside()
    except BaseException:
        for output in outputs:
            output.discard()
        raise
    return written


def output_stems(crop: Optional[CropSpec]) -> Tuple[str, str]:
    """(GT, LQ) output names of a split: ``target``/``input``, with ``_crops`` for sub-images."""
    return ('target_crops', 'input_crops') if crop else ('target', 'input')


def warn_on_count(label: str, found: int, expected: Optional[int]) -> Optional[str]:
    """The warning line when a split does not have the official number of pairs (e.g. an incomplete download)."""
    if expected is not None and found != expected:
        return f'  WARNING {label}: found {found} pairs, the official release has {expected}'
    return None


@dataclass(frozen=True)
class SplitPlan:
    """One checked split and the outputs it goes to; ``entries`` is the number of records it produces."""
    label: str
    pairs: Tuple[ImagePair, ...]
    gt_out: Path
    lq_out: Path
    backend: str
    crop: Optional[CropSpec]
    entries: int
    warnings: Tuple[str, ...] = ()

    @property
    def exists(self) -> bool:
        """Both outputs exist, i.e. an earlier run completed them."""
        return self.gt_out.exists() and self.lq_out.exists()

    def describe(self, overwrite: bool = False) -> str:
        """The plan as the preparation scripts print it (several lines)."""
        if self.crop:
            what = f'{self.entries} sub-images of {self.crop.size} px (step {self.crop.step})'
        else:
            what = f'{self.entries} whole images'
        state = 'exists, will be skipped' if self.exists and not overwrite else 'to write'
        return f'{self.label}: {len(self.pairs)} pairs -> {what}\n  GT: {self.gt_out}\n  LQ: {self.lq_out}\n  ({state})'


def plan_split(label: str, pairs: Sequence[ImagePair], folder: Path, stems: Tuple[str, str], *,
               backend: str = 'lmdb', crop: Optional[CropSpec] = None, lq_scales: Sequence[int] = (1,),
               expected_pairs: Optional[int] = None, warnings: Sequence[str] = ()) -> SplitPlan:
    """Check ``pairs`` (see ``check_pairs``) and plan writing them to ``folder`` under the (GT, LQ) ``stems``.

    ``warnings`` are carried over to the plan, after a count warning when ``expected_pairs`` differs.
    """
    sizes = check_pairs(pairs, lq_scales)
    count_warning = warn_on_count(label, len(pairs), expected_pairs)
    gt_stem, lq_stem = stems
    return SplitPlan(label, tuple(pairs), output_path(folder, gt_stem, backend), output_path(folder, lq_stem, backend),
                     backend, crop, count_records(sizes, crop),
                     tuple(warnings) + ((count_warning,) if count_warning else ()))


def print_report(lines: Iterable[str], program: str) -> int:
    """Print the report ``lines`` of :func:`run_plans` for the script ``program``; a dataset problem (a missing,
    unmatched or unreadable file, named in the message) ends it with ``program: error: ...`` on stderr.
    Returns the exit status: 0, or 1 after such an error."""
    try:
        for line in lines:
            print(line, flush=True)
    except (OSError, ValueError) as error:
        print(f'{program}: error: {error}', file=sys.stderr)
        return 1
    return 0


def run_plans(plans: Iterable[SplitPlan], *, compress_level: int = 1, workers: int = 1, overwrite: bool = False,
              dry_run: bool = False) -> Iterator[str]:
    """Write each plan's split (nothing for ``dry_run``), yielding the report lines as it goes.

    Lazy: nothing is checked or written until the result is iterated; then every split is checked (pairs, sizes)
    before the first is written. Complete outputs are skipped unless ``overwrite``.
    """
    plans = list(plans)  # plan generators check their split: a bad test split must stop the run before train is written
    for plan in plans:
        yield from plan.warnings
        yield plan.describe(overwrite)
        if dry_run:
            continue
        if plan.exists and not overwrite:
            for final in (plan.gt_out, plan.lq_out):
                remove_leftovers(final)
            yield f'  {plan.gt_out} and {plan.lq_out} exist: skipped (use --overwrite to rebuild)'
            continue
        write_pair_set(plan.pairs, plan.gt_out, plan.lq_out, crop=plan.crop, backend=plan.backend,
                       compress_level=compress_level, workers=workers, overwrite=overwrite,
                       expected_entries=plan.entries)
