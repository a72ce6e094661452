"""Small synthetic paired datasets (smooth random images and their blur or downscale) for tests and harnesses."""
from pathlib import Path
from typing import Dict

import cv2
import numpy as np


def write_synthetic_pairs(root: Path, counts: Dict[str, int], size: int = 48, scale: int = 1, seed: int = 0) -> Path:
    """Write ``root/<split>/{gt,lq}/<index>.png`` for each ``split: count``: ``size``² smooth random GT images;
    LQ is a Gaussian blur of GT (``scale`` 1) or its bicubic downscale by ``scale``."""
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        for sub in ('gt', 'lq'):
            (root / split / sub).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            coarse = rng.integers(0, 256, (max(size // 4, 2), max(size // 4, 2), 3), dtype=np.uint8)
            gt = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
            if scale == 1:
                lq = cv2.GaussianBlur(gt, (5, 5), 1.2)
            else:
                lq = cv2.resize(gt, (size // scale, size // scale), interpolation=cv2.INTER_CUBIC)
            cv2.imwrite(str(root / split / 'gt' / f'{index:03d}.png'), gt)
            cv2.imwrite(str(root / split / 'lq' / f'{index:03d}.png'), lq)
    return root
