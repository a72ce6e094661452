"""The batched blind-IQA scoring engine behind ``ddr-score`` and the evaluation scripts (Sec. 3.3, Eq. 7).

Images are decoded in DataLoader worker processes (:mod:`ddr_basicsr.utils.image_io`), which send them
stacked by size, a chunk of files at a time; here they are grouped by size, and each group of ``batch_size``
equal-size images goes to the GPU as one batch, so one CLIP encoder call sees the square patches of many
images. The CSV has one row per input file: ``path``, ``ddr`` (the blind-IQA score, mean over the
degradation set; higher = better quality), one column per degradation (DDR_d with patch averaging) and
``error`` (empty when the image was scored).

"""
import csv
import io
import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ddr_basicsr.core.ddr import DDR
from ddr_basicsr.core.prompts import BIQA_DEGRADATIONS, PromptsArgument
from ddr_basicsr.utils.image_files import DEFAULT_MAX_ASPECT_RATIO, DEFAULT_MAX_PIXELS
from ddr_basicsr.utils.image_io import decode_image, resize_short_side, to_float, to_tensor

#: Images of one size kept waiting for a full batch, at most this many batches' worth in all.
MAX_PENDING_BATCHES = 4
#: Pixels of one encoder call at most: images of one size go ``batch_size`` at a time or fewer, so that a batch
#: holds at most this many pixels (at least one image). 32 images of 64 MP were 25 GB as float32 on a CPU.
MAX_BATCH_PIXELS = 2 ** 26
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
    """Decodes ``paths[index]`` to (index, (3, H, W) uint8/float32 tensor or None, error message); images beyond
    ``max_pixels`` / ``max_aspect_ratio`` are refused from their header
    (:func:`~ddr_basicsr.utils.image_io.decode_image`).
    """

    def __init__(self, paths: Sequence[str], short_side: Optional[int] = None,
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                 max_aspect_ratio: Optional[float] = DEFAULT_MAX_ASPECT_RATIO):
        self.paths = list(paths)
        self.short_side = short_side
        self.max_pixels = max_pixels
        self.max_aspect_ratio = max_aspect_ratio

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Tuple[int, Optional[torch.Tensor], str]:
        path = self.paths[index]
        try:
            image = decode_image(path, self.max_pixels, self.max_aspect_ratio)
            image = resize_short_side(to_tensor(image), self.short_side)
        except (OSError, ValueError, cv2.error) as error:
            return index, None, str(error)
        except MemoryError:
            return index, None, f'{path}: out of memory while decoding; lower --max-pixels or free memory'
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
    """{degradation: DDR_d} of equal-size (3, H, W) images: the single call site of the DDR model (a batch of one
    dtype is converted to float once, in place of one copy per image and one stacked)."""
    if len({image.dtype for image in images}) > 1:  # 8-bit and 16-bit images of one size
        images = [to_float(image) for image in images]
    batch = to_float(torch.stack(images).to(ddr.device, non_blocking=True))
    with torch.no_grad():
        matrix = ddr.response_matrix(batch)
    return {name: matrix[:, index] for index, name in enumerate(ddr.degradation_names)}


def _out_of_memory(error: BaseException) -> bool:
    """A failed allocation: CUDA's, or the CPU's (a MemoryError, or a RuntimeError of torch's CPU allocator)."""
    return (isinstance(error, (torch.OutOfMemoryError, MemoryError))
            or any(text in str(error) for text in ("can't allocate memory", 'not enough memory')))


def _score_group(ddr: DDR, paths: Sequence[str], group: List[Tuple[int, torch.Tensor]]) -> List[ImageScore]:
    try:
        responses = score_images(ddr, [image for _, image in group])
    except ValueError as error:  # e.g. an image too small for DDR: every image of the group has its size
        return [ImageScore(index, paths[index], error=str(error)) for index, _ in group]
    except (RuntimeError, MemoryError) as error:
        if not _out_of_memory(error):
            raise
        if len(group) > 1:  # try the images one at a time
            return [result for member in group for result in _score_group(ddr, paths, [member])]
        index, image = group[0]
        return [ImageScore(index, paths[index], error=f'{paths[index]}: out of memory scoring {image.shape[2]}x'
                                                      f'{image.shape[1]} px; use --short-side or a lower --max-pixels')]
    names = list(responses)
    matrix = torch.stack([responses[name] for name in names], dim=1).float().cpu()
    quality = matrix.mean(dim=1)  # Eq. 7
    return [ImageScore(index, paths[index], float(quality[row]), dict(zip(names, matrix[row].tolist())))
            for row, (index, _) in enumerate(group)]


def iter_quality_scores(ddr: DDR, paths: Sequence[str], batch_size: int = 32, workers: int = 4,
                        short_side: Optional[int] = None, progress: bool = True, description: str = 'DDR',
                        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                        max_aspect_ratio: Optional[float] = DEFAULT_MAX_ASPECT_RATIO) -> Iterator[ImageScore]:
    """Score every file of ``paths``; yields one :class:`ImageScore` per path, in completion order.

    ``workers`` decoding processes (0: decode in this process); ``short_side`` resizes each image so its
    shorter side is at most that many pixels (:func:`~ddr_basicsr.utils.image_io.resize_short_side`). A file
    beyond ``max_pixels`` or ``max_aspect_ratio`` (None: no limit) and an image that runs out of memory get
    an error row; the others are scored. A batch holds at most :data:`MAX_BATCH_PIXELS` pixels.
    """
    if batch_size < 1:
        raise ValueError(f'batch_size must be at least 1, got {batch_size}')
    if workers < 0:
        raise ValueError(f'workers must be 0 or more, got {workers}')
    files = ImageFiles(paths, short_side, max_pixels, max_aspect_ratio)
    loader = DataLoader(files, batch_size=DECODE_CHUNK, shuffle=False, num_workers=workers,
                        collate_fn=stack_by_size,
                        prefetch_factor=max(2, -(-batch_size // (workers * DECODE_CHUNK))) if workers else None)
    groups: Dict[Tuple[int, ...], List[Tuple[int, torch.Tensor]]] = defaultdict(list)
    pending = pending_pixels = 0

    def batch_limit(shape):
        return min(batch_size, max(1, MAX_BATCH_PIXELS // (shape[1] * shape[2])))

    with tqdm(total=len(paths), unit='img', desc=description, disable=not progress, file=sys.stderr) as bar:
        def flush(shape):
            nonlocal pending, pending_pixels
            limit = batch_limit(shape)
            group, rest = groups[shape][:limit], groups[shape][limit:]
            if rest:
                groups[shape] = rest
            else:
                del groups[shape]
            pending -= len(group)
            pending_pixels -= len(group) * shape[1] * shape[2]
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
                pending_pixels += len(indices) * shape[1] * shape[2]
                while len(groups.get(shape, ())) >= batch_limit(shape):
                    yield from flush(shape)
                while (pending >= MAX_PENDING_BATCHES * batch_size
                       or pending_pixels > MAX_PENDING_BATCHES * MAX_BATCH_PIXELS):
                    yield from flush(max(groups, key=lambda key: len(groups[key])))
        while groups:
            yield from flush(next(iter(groups)))


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
              prompts: Optional[PromptsArgument], device: Optional[str], precision: str,
              default_degradations: Sequence[str] = BIQA_DEGRADATIONS, adaptation: bool = True,
              distance: str = 'cosine') -> DDR:
    """DDR from command-line values; without ``degradations`` and ``prompts``, ``default_degradations``
    (the paper's blind-IQA set {color, noise, blur, exposure} unless told otherwise). ``adaptation=False`` is
    Table 8's "w/o adaptation" row (no Eq. 4); ``distance`` the disparity M of Eq. 1 (the paper: cosine)."""
    if degradations is None and not prompts:
        degradations = ','.join(default_degradations)
    return DDR(model=model, pretrained=pretrained, degradations=degradations, prompts=prompts, device=device,
               precision=precision, adaptation=adaptation, distance=distance)


def ddr_settings(ddr: DDR) -> Dict[str, object]:
    """What the scores of ``ddr`` depend on, as JSON values: the CLIP model, the prompts, the precision, the
    adaptation (Eq. 4) and the distance (Eq. 1)."""
    settings = {'clip': ddr.clip_description, 'prompts': dict(ddr.prompts), 'precision': ddr.precision,
                'adaptation': ddr.adaptation, 'distance': ddr.distance}
    if ddr.learned_prompts is not None:  # tuned vectors change the scores, not the prompt sentences
        settings['learned_prompts'] = ddr.learned_prompts.digest
    return settings
