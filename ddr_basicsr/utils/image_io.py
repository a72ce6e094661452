"""Read image files into RGB tensors for DDR scoring.

Conversion rules (one place, used by ``ddr-score``, the BIQA benchmark and the descriptor report):

* formats: whatever OpenCV decodes (PNG, JPEG, BMP, TIFF, ...); the first page of a multi-page TIFF;
  pixels as stored, EXIF orientation is not applied (like PIL and pyiqa's dataset loaders);
* bit depth: 8-bit values are divided by 255, 16-bit values by 65535, floating-point images are taken
  as [0, 1] and clipped to it;
* grayscale is replicated to three channels;
* alpha is composited over a white background (``rgb * a + (1 - a)``), i.e. the image as a viewer on a
  white page shows it; fully opaque images are unchanged.

``decode_image`` keeps 8-bit images without alpha as ``uint8`` (four times less data to move between
processes and to the GPU); ``to_float`` maps any decoded tensor to float32 in [0, 1].

Size limits: ``decode_image(path, max_pixels, max_aspect_ratio)`` reads the size from the file's header
first (PIL, no pixel decoded) and raises :class:`ImageTooLargeError` for an image beyond a limit, so a small
file that decodes to gigabytes is refused before it is decoded. The size of the decoded array is checked as
well (formats whose header PIL cannot read).

:func:`image_tensors` turns what Python users pass to ``DDR.quality`` (files, folders, PIL images, numpy arrays,
tensors) into tensors by these rules.
"""
import os
from typing import Any, List, Optional, Sequence, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ddr_basicsr.utils.image_files import DEFAULT_MAX_ASPECT_RATIO, DEFAULT_MAX_PIXELS, image_files

_INTEGER_RANGES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


class ImageTooLargeError(ValueError):
    """An image beyond ``max_pixels`` or ``max_aspect_ratio``; the message names the file and the option."""


def check_image_size(path: str, height: int, width: int, max_pixels: Optional[int] = None,
                     max_aspect_ratio: Optional[float] = None) -> None:
    """Raise :class:`ImageTooLargeError` when height x width exceeds a limit (None or 0: no limit)."""
    pixels = height * width
    if max_pixels and pixels > max_pixels:
        raise ImageTooLargeError(f'{path}: {width}x{height} px is {pixels:,} pixels, more than the limit of '
                                 f'{max_pixels:,} (--max-pixels)')
    ratio = max(height, width) / max(1, min(height, width))
    if max_aspect_ratio and ratio > max_aspect_ratio:
        raise ImageTooLargeError(f'{path}: {width}x{height} px has an aspect ratio of {ratio:.1f}:1, more than the '
                                 f'limit of {max_aspect_ratio:g}:1 (--max-aspect-ratio; DDR scores about one '
                                 f'square patch per unit of ratio)')


def check_image_header(path: str, max_pixels: Optional[int] = None, max_aspect_ratio: Optional[float] = None) -> None:
    """:func:`check_image_size` with the size read from the header of ``path`` (PIL; nothing is decoded).

    Files PIL cannot identify pass (their decoded size is checked after decoding). PIL's own decompression-bomb
    limit is off while the header is read, so the limits given here apply whatever their value.
    """
    bomb_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError):
        return
    finally:
        Image.MAX_IMAGE_PIXELS = bomb_limit
    check_image_size(path, height, width, max_pixels, max_aspect_ratio)


def _to_unit_float(array: np.ndarray, path: str) -> np.ndarray:
    if array.dtype in _INTEGER_RANGES:
        return array.astype(np.float32) / _INTEGER_RANGES[array.dtype]
    if np.issubdtype(array.dtype, np.floating):
        return np.clip(np.nan_to_num(array.astype(np.float32)), 0.0, 1.0)
    raise ValueError(f'{path}: unsupported pixel type {array.dtype}; convert the image to 8 or 16 bits per channel')


def decode_image(path: str, max_pixels: Optional[int] = None, max_aspect_ratio: Optional[float] = None) -> np.ndarray:
    """Decode ``path`` to an (H, W, 3) RGB array: ``uint8`` for plain 8-bit images, float32 in [0, 1] otherwise.

    Raises FileNotFoundError for a missing file, :class:`ImageTooLargeError` for an image beyond ``max_pixels``
    or ``max_aspect_ratio`` (checked on the header before decoding) and ValueError for an empty, corrupt or
    unsupported one.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'image file not found: {path}')
    check_image_header(path, max_pixels, max_aspect_ratio)
    data = np.fromfile(path, dtype=np.uint8)  # works for any path encoding, unlike cv2.imread
    if data.size == 0:
        raise ValueError(f'{path}: the file is empty')
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f'{path}: cannot decode the file as an image (corrupt, truncated or not a '
                         f'PNG/JPEG/BMP/TIFF file)')
    check_image_size(path, image.shape[0], image.shape[1], max_pixels, max_aspect_ratio)
    return pixels_to_rgb(image, path)


def pixels_to_rgb(image: np.ndarray, path: str, channel_order: str = 'BGR') -> np.ndarray:
    """Decoded pixels, (H, W) or (H, W, 1-4) in ``channel_order`` ('BGR': OpenCV's BGR/BGRA; 'RGB': RGB/RGBA),
    to the (H, W, 3) RGB array of :func:`decode_image` by this module's rules; ``path`` names the image in errors."""
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if channels not in (1, 2, 3, 4):
        raise ValueError(f'{path}: {channels} channels are not supported; expected gray, gray+alpha, RGB or RGBA')
    if channels in (2, 4):
        color = _to_unit_float(image[:, :, :channels - 1], path)
        alpha = _to_unit_float(image[:, :, channels - 1:], path)
        image = color * alpha + (1.0 - alpha)  # composite over white
    elif image.dtype != np.uint8:
        image = _to_unit_float(image, path)
    if image.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(image, 3, axis=2))
    if channel_order == 'RGB':
        return np.ascontiguousarray(image)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)  # 5x faster than numpy's reversed-stride copy


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) array from :func:`decode_image` -> (3, H, W) tensor of the same dtype (no copy of values)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def to_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 tensor -> float32 / 255; float tensors are returned as float32 unchanged."""
    if image.dtype == torch.uint8:
        return image.float().div_(255.0)
    return image.float()


def resize_short_side(image: torch.Tensor, size: Optional[int]) -> torch.Tensor:
    """Resize a (3, H, W) tensor so its shorter side is ``size`` (bilinear with antialiasing, aspect kept).

    Images whose shorter side is already ``size`` or smaller are returned unchanged, dtype included
    (no upscaling, as in SPAQ's official evaluation); ``size=None`` or 0 disables resizing. A resized
    image is float32 in [0, 1].
    """
    if not size or min(image.shape[-2:]) <= size:
        return image
    height, width = image.shape[-2:]
    scale = size / min(height, width)
    out_size = (round(height * scale), round(width * scale))
    resized = F.interpolate(to_float(image)[None], size=out_size, mode='bilinear', align_corners=False,
                            antialias=True)[0]
    return resized.clamp_(0.0, 1.0)


def read_image(path: str, short_side: Optional[int] = None) -> torch.Tensor:
    """Read ``path`` as a float32 (3, H, W) RGB tensor in [0, 1], optionally resized (:func:`resize_short_side`)."""
    return to_float(resize_short_side(to_tensor(decode_image(path)), short_side))


#: Channel orders of numpy arrays: 'RGB' (PIL, imageio, matplotlib) or 'BGR' (OpenCV's ``cv2.imread``).
CHANNEL_ORDERS = ('RGB', 'BGR')
#: PIL modes read as they are (grey, grey+alpha, RGB, RGBA, 16-bit grey, float); others are converted first.
_PIL_DIRECT_MODES = ('L', 'LA', 'RGB', 'RGBA', 'F', 'I;16', 'I;16L', 'I;16B')
#: PIL modes with transparency or a palette, converted to RGBA (so alpha is composited over white).
_PIL_RGBA_MODES = ('P', 'PA', 'RGBa', 'La')

#: One image for DDR from Python, or a folder of them.
ImageInput = Union[str, os.PathLike, np.ndarray, torch.Tensor, Any]


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
