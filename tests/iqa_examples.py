"""Small image folders and the ``ddr-score`` reference scores the IQA integrations are compared with."""
import csv
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np

from ddr_basicsr.cli.score import main as score_main

#: (name, height, width) of the 8-bit RGB files of :func:`write_rgb_photos` (non-square: patch averaging).
RGB_PHOTOS = (('a.png', 48, 64), ('b.png', 64, 40), ('c.png', 40, 40), ('d.png', 48, 64))


def write_rgb_photos(folder: Path) -> List[Path]:
    """8-bit RGB PNGs of :data:`RGB_PHOTOS` and an 8-bit grey PNG: files pyiqa and PIL decode as OpenCV does."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for name, height, width in RGB_PHOTOS:
        small = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
        photo = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)  # smooth, as photos are
        assert cv2.imwrite(str(folder / name), photo)
        paths.append(folder / name)
    assert cv2.imwrite(str(folder / 'grey.png'), rng.integers(0, 256, (40, 56), dtype=np.uint8))
    return sorted(paths + [folder / 'grey.png'])


def ddr_score(inputs: List[str], tiny_clip_path: str, output: Path, *options: str) -> Dict[str, Dict[str, float]]:
    """{path: {column: value}} of a ``ddr-score`` run of ``inputs`` with the tiny CLIP (one process, CPU)."""
    status = score_main([*inputs, '--output', str(output), '--pretrained', tiny_clip_path, '--device', 'cpu',
                         '--workers', '0', '--no-progress', *options])
    assert status == 0
    with open(output, newline='', encoding='utf-8') as handle:
        rows = list(csv.DictReader(handle))
    return {row['path']: {key: float(value) for key, value in row.items() if key not in ('path', 'error')}
            for row in rows}


def write_example_images(folder: Path) -> None:
    """``photo.png`` and ``photos/`` in ``folder``: the files the documentation's examples score."""
    write_rgb_photos(folder / 'photos')
    assert cv2.imwrite(str(folder / 'photo.png'), cv2.imread(str(folder / 'photos' / 'a.png')))
