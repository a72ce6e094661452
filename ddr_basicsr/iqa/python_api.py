"""Blind-IQA DDR from Python as ``ddr-score`` computes it: images given as files, folders, PIL images or numpy
arrays, read with ``ddr-score``'s decoder and size limits (:mod:`ddr_basicsr.utils.image_io`), and DDR built from
``ddr-score``'s options. Used by ``DDR.quality``, the pyiqa metric and the torchmetrics metric."""
import os
from typing import Any, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from ddr_basicsr.cli.arguments import DEFAULT_MAX_ASPECT_RATIO, DEFAULT_MAX_PIXELS
from ddr_basicsr.core.ddr import DDR
from ddr_basicsr.utils.image_io import ImageTooLargeError, decode_image, pixels_to_rgb, to_float, to_tensor

#: Channel orders of numpy arrays: 'RGB' (PIL, imageio, matplotlib) or 'BGR' (OpenCV's ``cv2.imread``).
CHANNEL_ORDERS = ('RGB', 'BGR')
#: PIL modes read as they are (grey, grey+alpha, RGB, RGBA, 16-bit grey, float); others are converted first.
_PIL_DIRECT_MODES = ('L', 'LA', 'RGB', 'RGBA', 'F', 'I;16', 'I;16L', 'I;16B')
#: PIL modes with transparency or a palette, converted to RGBA (so alpha is composited over white).
_PIL_RGBA_MODES = ('P', 'PA', 'RGBa', 'La')

#: One image for DDR from Python, or a folder of them.
ImageInput = Union[str, os.PathLike, np.ndarray, torch.Tensor, Any]


def image_files(folder: Union[str, os.PathLike]) -> List[str]:
    """The image files of ``folder`` (not its sub-folders) in the order ``ddr-score`` and ``DDR.quality`` score
    them (sorted; :data:`~ddr_basicsr.utils.image_io.IMAGE_EXTENSIONS`, hidden names skipped)."""
    from ddr_basicsr.iqa.scoring import collect_input_rows

    folder = os.fspath(folder)
    rows = collect_input_rows([folder])
    if rows[0][2]:
        raise ValueError(f'{folder}: no image file in this folder (sub-folders are not scanned: pass them too)')
    return [path for path, _, _ in rows]


def _read_file(path: str, max_pixels: Optional[int], max_aspect_ratio: Optional[float]) -> torch.Tensor:
    try:
        return to_float(to_tensor(decode_image(path, max_pixels, max_aspect_ratio)))
    except ImageTooLargeError as error:
        raise ImageTooLargeError(f'{error}. In Python: image_tensors(paths, max_pixels=..., max_aspect_ratio=...) '
                                 'from ddr_basicsr.iqa.python_api (None: no limit), then DDR.quality of the '
                                 'tensors') from error


def _pil_pixels(image) -> np.ndarray:
    if image.mode not in _PIL_DIRECT_MODES:
        image = image.convert('RGBA' if image.mode in _PIL_RGBA_MODES else 'L' if image.mode == '1' else 'RGB')
    pixels = np.asarray(image)
    return pixels if pixels.dtype.isnative else pixels.astype(pixels.dtype.newbyteorder('='))


def _array_pixels(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] > 4 and array.shape[0] in (1, 3, 4):
        raise ValueError(f'{name}: shape {array.shape} looks channels-first; arrays are (H, W, C): pass '
                         'array.transpose(1, 2, 0)')
    if array.ndim not in (2, 3):
        hint = '; for a batch of images pass list(array)' if array.ndim == 4 else ''
        raise ValueError(f'{name}: expected an (H, W) or (H, W, C) array, got shape {array.shape}{hint}')
    return np.ascontiguousarray(array)


def image_tensors(images: Union[ImageInput, Sequence[ImageInput]], channel_order: str = 'RGB',
                  max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                  max_aspect_ratio: Optional[float] = DEFAULT_MAX_ASPECT_RATIO) -> List[torch.Tensor]:
    """RGB (3, H, W) tensors of ``images``: one image or folder, or a list of them, in order.

    * a path (str or ``os.PathLike``): decoded as ``ddr-score`` decodes it; files beyond ``max_pixels`` or
      ``max_aspect_ratio`` (``ddr-score``'s defaults; None: no limit) are refused from their header;
    * a folder: its image files, sorted as ``ddr-score`` lists them (sub-folders are not scanned);
    * a PIL image: its pixels by the same rules (palette and transparency through RGBA, alpha over white);
    * a numpy array (H, W) or (H, W, C), C = 1-4, uint8, uint16 or float in [0, 1], with its colour channels in
      ``channel_order``: 'RGB' (PIL, imageio), or 'BGR' for OpenCV's ``cv2.imread`` arrays (BGRA with alpha);
    * a torch tensor (3, H, W) or (1, 3, H, W): RGB in [0, 1], kept as it is.
    """
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"channel_order must be 'RGB' or 'BGR' (OpenCV's cv2.imread arrays are BGR), "
                         f'got {channel_order!r}')
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    tensors = []
    for index, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            path = os.fspath(item)
            paths = image_files(path) if os.path.isdir(path) else [path]
            tensors.extend(_read_file(file, max_pixels, max_aspect_ratio) for file in paths)
        elif torch.is_tensor(item):
            tensors.append(item)
        elif isinstance(item, np.ndarray):
            name = f'image {index} (numpy array)'
            tensors.append(to_float(to_tensor(pixels_to_rgb(_array_pixels(item, name), name, channel_order))))
        elif hasattr(item, 'mode') and hasattr(item, 'getbands'):  # a PIL image
            name = f'image {index} (PIL image, mode {item.mode})'
            tensors.append(to_float(to_tensor(pixels_to_rgb(_pil_pixels(item), name, 'RGB'))))
        else:
            raise TypeError(f'image {index}: expected a file or folder path, a PIL image, a numpy array or a '
                            f'torch tensor, got {type(item).__name__}')
    return tensors


def iqa_ddr(degradations: Optional[Union[str, Sequence]] = None,
            prompts: Optional[Union[str, os.PathLike, Mapping[str, Sequence[str]]]] = None,
            model: str = 'ViT-B-32', pretrained: Optional[str] = 'openai', device: Optional[str] = None,
            precision: str = 'fp32', adaptation: bool = True, distance: str = 'cosine') -> DDR:
    """DDR as ``ddr-score`` builds it from the same options (default degradations: the paper's blind-IQA set).

    ``prompts``: {name: (degraded, clean)}, or a file as ``ddr-score --prompts`` takes it (YAML/JSON, or the
    ``.pt`` prompt file of ``ddr-tune-prompts``).
    """
    from ddr_basicsr.iqa.scoring import build_ddr, load_prompts

    if isinstance(prompts, (str, os.PathLike)):
        prompts = load_prompts(os.fspath(prompts))
    return build_ddr(model, pretrained, degradations, prompts, device, precision, adaptation=adaptation,
                     distance=distance)
