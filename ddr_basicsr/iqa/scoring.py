"""The batched blind-IQA scoring engine behind ``ddr-score`` and the evaluation scripts (Sec. 3.3, Eq. 7).

Images are decoded in DataLoader worker processes (:mod:`ddr_basicsr.image_io`), which send them
stacked by size, a chunk of files at a time; here they are grouped by size, and each group of ``batch_size``
equal-size images goes to the GPU as one batch, so one CLIP encoder call sees the square patches of many
images. The CSV has one row per input file: ``path``, ``ddr`` (the blind-IQA score, mean over the
degradation set; higher = better quality), one column per degradation (DDR_d with patch averaging) and
``error`` (empty when the image was scored).

"""
import csv
import glob
import io
import os
import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import torch
import yaml
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ddr_basicsr.ddr import DDR
from ddr_basicsr.image_io import decode_image, is_image_file, resize_short_side, to_float, to_tensor
from ddr_basicsr.prompts import BIQA_DEGRADATIONS

#: Images of one size kept waiting for a full batch, at most this many batches' worth in all.
MAX_PENDING_BATCHES = 4
#: Files decoded per worker task (their images cross to the main process stacked by size).
DECODE_CHUNK = 8


@dataclass
class ImageScore:
    """Result for ``paths[index]``: ``responses`` {degradation: DDR_d} and ``quality`` (their mean, Eq. 7),
    or ``error`` (then both are None)."""
    index: int
    path: str
    quality: Optional[float] = None
    responses: Optional[Dict[str, float]] = None
    error: str = ''


class ImageFiles(Dataset):
    """Decodes ``paths[index]`` to (index, (3, H, W) uint8/float32 tensor or None, error message)."""

    def __init__(self, paths: Sequence[str], short_side: Optional[int] = None):
        self.paths = list(paths)
        self.short_side = short_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Tuple[int, Optional[torch.Tensor], str]:
        try:
            image = resize_short_side(to_tensor(decode_image(self.paths[index])), self.short_side)
        except (OSError, ValueError, cv2.error) as error:
            return index, None, str(error)
        return index, image, ''


def stack_by_size(samples: List[Tuple[int, Optional[torch.Tensor], str]]) -> Tuple[list, list]:
    """Collates a chunk of decoded files in the worker: ([(index, error)] of failures, [(indices, (n, 3, H, W)
    tensor)] per image size and dtype). One stacked tensor crosses the process boundary instead of n images."""
    failures = [(index, error) for index, image, error in samples if image is None]
    by_kind: Dict[tuple, List[Tuple[int, torch.Tensor]]] = defaultdict(list)
    for index, image, _ in samples:
        if image is not None:
            by_kind[(tuple(image.shape), image.dtype)].append((index, image))
    stacks = [([index for index, _ in members], torch.stack([image for _, image in members]))
              for members in by_kind.values()]
    return failures, stacks


def score_images(ddr: DDR, images: List[torch.Tensor]) -> Dict[str, torch.Tensor]:
    """{degradation: DDR_d} of equal-size (3, H, W) images: the single call site of the DDR model."""
    batch = [to_float(image.to(ddr.device, non_blocking=True)) for image in images]
    return ddr.quality_responses(batch, batch_size=len(batch))


def _score_group(ddr: DDR, paths: Sequence[str], group: List[Tuple[int, torch.Tensor]]) -> List[ImageScore]:
    try:
        responses = score_images(ddr, [image for _, image in group])
    except ValueError as error:  # e.g. an image too small for DDR: every image of the group has its size
        return [ImageScore(index, paths[index], error=str(error)) for index, _ in group]
    names = list(responses)
    matrix = torch.stack([responses[name] for name in names], dim=1).float().cpu()
    quality = matrix.mean(dim=1)  # Eq. 7
    return [ImageScore(index, paths[index], float(quality[row]), dict(zip(names, matrix[row].tolist())))
            for row, (index, _) in enumerate(group)]


def iter_quality_scores(ddr: DDR, paths: Sequence[str], batch_size: int = 32, workers: int = 4,
                        short_side: Optional[int] = None, progress: bool = True,
                        description: str = 'DDR') -> Iterator[ImageScore]:
    """Score every file of ``paths``; yields one :class:`ImageScore` per path, in completion order.

    ``workers`` decoding processes (0: decode in this process); ``short_side`` resizes each image so its
    shorter side is at most that many pixels (:func:`~ddr_basicsr.image_io.resize_short_side`).
    """
    if batch_size < 1:
        raise ValueError(f'batch_size must be at least 1, got {batch_size}')
    if workers < 0:
        raise ValueError(f'workers must be 0 or more, got {workers}')
    loader = DataLoader(ImageFiles(paths, short_side), batch_size=DECODE_CHUNK, shuffle=False, num_workers=workers,
                        collate_fn=stack_by_size,
                        prefetch_factor=max(2, -(-batch_size // (workers * DECODE_CHUNK))) if workers else None)
    groups: Dict[Tuple[int, ...], List[Tuple[int, torch.Tensor]]] = defaultdict(list)
    pending = 0
    with tqdm(total=len(paths), unit='img', desc=description, disable=not progress, file=sys.stderr) as bar:
        def flush(shape):
            nonlocal pending
            group, rest = groups[shape][:batch_size], groups[shape][batch_size:]
            if rest:
                groups[shape] = rest
            else:
                del groups[shape]
            pending -= len(group)
            results = _score_group(ddr, paths, group)
            bar.update(len(results))
            return results

        for failures, stacks in loader:
            for index, error in failures:
                bar.update(1)
                yield ImageScore(index, paths[index], error=error)
            for indices, stack in stacks:
                shape = tuple(stack.shape[1:])
                groups[shape].extend(zip(indices, stack.unbind(0)))
                pending += len(indices)
                while len(groups.get(shape, ())) >= batch_size:
                    yield from flush(shape)
                if pending >= MAX_PENDING_BATCHES * batch_size:
                    yield from flush(max(groups, key=lambda key: len(groups[key])))
        while groups:
            yield from flush(next(iter(groups)))


def _has_wildcard(text: str) -> bool:
    return any(char in text for char in '*?[')


def collect_inputs(inputs: Sequence[str], recursive: bool = False) -> List[Tuple[str, str]]:
    """Expand files, folders and glob patterns into (path, problem) rows in the given order.

    Folders give their image files (:data:`~ddr_basicsr.image_io.IMAGE_EXTENSIONS`), sorted, including
    sub-folders when ``recursive``. Explicit files are kept whatever their extension. ``problem`` is
    empty, or says why the row cannot be scored (a pattern matching nothing, an empty folder).
    """
    rows: List[Tuple[str, str]] = []
    for item in inputs:
        if os.path.isdir(item):
            pattern = os.path.join(glob.escape(item), '**', '*') if recursive else os.path.join(glob.escape(item), '*')
            found = sorted(path for path in glob.glob(pattern, recursive=recursive)
                           if os.path.isfile(path) and is_image_file(path))
            rows.extend((path, '') for path in found)
            if not found:
                rows.append((item, 'no image file in this folder' + ('' if recursive else ' (try --recursive)')))
        elif _has_wildcard(item) and not os.path.exists(item):
            found = sorted(path for path in glob.glob(item, recursive=True) if os.path.isfile(path))
            rows.extend((path, '') for path in found)
            if not found:
                rows.append((item, 'no file matches this pattern'))
        else:
            rows.append((item, ''))
    return rows


def load_prompts(path: str) -> Union[str, Dict[str, List[str]]]:
    """Read a YAML or JSON mapping {degradation name: [degraded prompt, clean prompt]}; a ``.pt`` file is a tuned
    prompt file (``ddr-tune-prompts``), returned as its path for ``DDR(prompts=...)`` to read."""
    if path.endswith('.pt'):
        return path
    with open(path, encoding='utf-8') as handle:
        prompts = yaml.safe_load(handle)
    if not isinstance(prompts, dict) or not prompts:
        raise ValueError(f'{path}: expected a mapping {{name: [degraded prompt, clean prompt]}}, '
                         f'e.g. {{"haze": ["hazy", "clear"]}}')
    return prompts


def format_csv(results: Sequence[ImageScore], names: Sequence[str]) -> str:
    """CSV text: path, ddr, one column per degradation, error."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(['path', 'ddr', *names, 'error'])
    for result in results:
        if result.error:
            writer.writerow([result.path, '', *([''] * len(names)), result.error])
        else:
            writer.writerow([result.path, f'{result.quality:.8g}',
                             *(f'{result.responses[name]:.8g}' for name in names), ''])
    return buffer.getvalue()


def build_ddr(model: str, pretrained: Optional[str], degradations: Optional[str],
              prompts: Optional[Union[str, Mapping[str, Sequence[str]]]], device: Optional[str], precision: str,
              default_degradations: Sequence[str] = BIQA_DEGRADATIONS) -> DDR:
    """DDR from command-line values; without ``degradations`` and ``prompts``, ``default_degradations``
    (the paper's blind-IQA set {color, noise, blur, exposure} unless told otherwise)."""
    if degradations is None and not prompts:
        degradations = ','.join(default_degradations)
    return DDR(model=model, pretrained=pretrained, degradations=degradations, prompts=prompts, device=device,
               precision=precision)
