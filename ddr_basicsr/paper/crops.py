"""Figs. 5, 6, 8-10: the same region cropped from several methods' outputs, enlarged, side by side.

The first panel is the first image scaled to the crops' height with the region outlined in red; then one enlarged
crop per image (nearest-neighbour, so pixels stay visible), each under its label. With a reference label, the
table gives each crop's PSNR against the reference crop.
"""
import math
import os
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ddr_basicsr.paper.common import Report
from ddr_basicsr.utils.atomic_files import atomic_path
from ddr_basicsr.utils.image_io import decode_image

RED = (255, 0, 0)
GAP = 8
LABEL_HEIGHT = 28


def parse_box(text: str) -> Tuple[int, int, int, int]:
    """'X,Y,W,H' (pixels, top-left corner) -> (x, y, w, h)."""
    parts = text.split(',')
    if len(parts) != 4 or not all(part.strip().isdigit() for part in parts):
        raise ValueError(f'--box must be X,Y,W,H in pixels (e.g. 120,80,64,64), got {text!r}')
    x, y, width, height = (int(part) for part in parts)
    if width < 1 or height < 1:
        raise ValueError(f'--box needs a positive width and height, got {text!r}')
    return x, y, width, height


def to_uint8(image: np.ndarray) -> np.ndarray:
    return image if image.dtype == np.uint8 else np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def labelled(panel: np.ndarray, label: str) -> np.ndarray:
    """``panel`` under a white strip carrying ``label``."""
    strip = np.full((LABEL_HEIGHT, panel.shape[1], 3), 255, dtype=np.uint8)
    scale = min(0.6, 0.6 * panel.shape[1] / max(1, 11 * len(label)))
    cv2.putText(strip, label, (4, LABEL_HEIGHT - 9), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, panel])


def compose(images: Sequence[np.ndarray], labels: Sequence[str], box: Tuple[int, int, int, int],
            scale: int) -> np.ndarray:
    """The side-by-side figure (RGB uint8)."""
    x, y, width, height = box
    crops = [cv2.resize(image[y:y + height, x:x + width], (width * scale, height * scale),
                        interpolation=cv2.INTER_NEAREST) for image in images]
    overview = images[0].copy()
    thickness = max(1, round(max(overview.shape[:2]) / 300))
    cv2.rectangle(overview, (x, y), (x + width - 1, y + height - 1), RED, thickness)
    target = height * scale
    overview = cv2.resize(overview, (max(1, round(overview.shape[1] * target / overview.shape[0])), target),
                          interpolation=cv2.INTER_AREA)
    panels = [labelled(overview, labels[0] + ' (region in red)')]
    panels += [labelled(crop, label) for crop, label in zip(crops, labels)]
    gap = np.full((panels[0].shape[0], GAP, 3), 255, dtype=np.uint8)
    row: List[np.ndarray] = []
    for panel in panels:
        row += [panel, gap]
    return np.concatenate(row[:-1], axis=1)


def crop_psnr(crop: np.ndarray, reference: np.ndarray) -> float:
    """PSNR (dB) of two uint8 crops; inf when identical."""
    error = np.mean((crop.astype(np.float64) - reference.astype(np.float64)) ** 2)
    return math.inf if error == 0 else 10 * math.log10(255.0 ** 2 / error)


def crops(entries: Sequence[Tuple[str, str]], box: Tuple[int, int, int, int], output_dir: str, name: str = 'crops',
          scale: int = 4, reference: Optional[str] = None) -> Report:
    """Write ``<output_dir>/<name>.png`` from ``entries`` ((label, image path) pairs) and its ``.md`` / ``.csv``."""
    if not entries:
        raise ValueError('crops needs at least one --image LABEL=PATH')
    if scale < 1:
        raise ValueError(f'--scale must be at least 1, got {scale}')
    labels = [label for label, _ in entries]
    if reference is not None and reference not in labels:
        raise ValueError(f'--reference {reference!r} is none of the labels {labels}')
    images = [to_uint8(decode_image(path)) for _, path in entries]
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        sizes = ', '.join(f'{label}: {image.shape[1]}x{image.shape[0]}' for label, image in zip(labels, images))
        raise ValueError(f'the images differ in size ({sizes}); crops compares outputs of the same input')
    x, y, width, height = box
    image_height, image_width = images[0].shape[:2]
    if x + width > image_width or y + height > image_height:
        raise ValueError(f'--box {x},{y},{width},{height} leaves the {image_width}x{image_height} image')
    figure = compose(images, labels, box, scale)
    path = os.path.join(output_dir, f'{name}.png')
    with atomic_path(path) as temporary:
        if not cv2.imwrite(temporary, cv2.cvtColor(figure, cv2.COLOR_RGB2BGR)):
            raise OSError(f'OpenCV could not write {path}')
    region = [image[y:y + height, x:x + width] for image in images]
    target = region[labels.index(reference)] if reference else None
    rows = [[label, file, None if target is None else crop_psnr(crop, target)]
            for (label, file), crop in zip(entries, region)]
    protocol = {'region': f'x={x}, y={y}, width={width}, height={height} (pixels, top-left corner)',
                'enlargement': f'x{scale}, nearest neighbour', 'overview': f'{labels[0]} with the region in red',
                'reference': reference or 'none'}
    return Report(name, f'Zoomed crops: {name}', 'The same region of each image, enlarged (paper Figs. 5, 6, 8-10).',
                  ['label', 'image', 'crop PSNR vs reference (dB)'], rows, protocol, figures=[path])
