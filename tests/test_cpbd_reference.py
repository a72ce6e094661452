"""CPBD (:mod:`ddr_basicsr.iqa.cpbd`) against the published python-cpbd on 24 images: sample photos of
scikit-image and synthetic step patterns, sharp and Gaussian-blurred (values in tests/data/cpbd_reference.json)."""
import json
from pathlib import Path
from typing import Iterator, Tuple

import cv2
import numpy as np
import pytest
from skimage import data

from ddr_basicsr.iqa.cpbd import cpbd

REFERENCE = Path(__file__).resolve().parent / 'data' / 'cpbd_reference.json'
PHOTOS = ('camera', 'astronaut', 'coffee', 'chelsea', 'rocket', 'coins')
PHOTO_SIGMAS = (0.0, 1.0, 2.5)
STEP_SIGMAS = (0.0, 0.8, 1.5)
SIDE = 192


def _blurred(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (σ px, float64) rounded back to 8 bits; σ = 0 leaves the image as it is."""
    if not sigma:
        return image
    return np.clip(np.rint(cv2.GaussianBlur(image.astype(np.float64), (0, 0), sigma)), 0, 255).astype(np.uint8)


def reference_images() -> Iterator[Tuple[str, np.ndarray]]:
    """(name, (SIDE, SIDE, 3) uint8 RGB) of the images the reference values were computed on."""
    for name in PHOTOS:
        photo = getattr(data, name)()
        photo = np.repeat(photo[:, :, None], 3, axis=2) if photo.ndim == 2 else photo[:, :, :3]
        top, left = (photo.shape[0] - SIDE) // 2, (photo.shape[1] - SIDE) // 2
        for sigma in PHOTO_SIGMAS:
            yield f'{name} sigma={sigma:g}', _blurred(photo[top:top + SIDE, left:left + SIDE], sigma)
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        steps = np.kron(rng.integers(0, 256, (SIDE // 16, SIDE // 16, 3)), np.ones((16, 16, 1)))
        noisy = np.clip(np.rint(steps + rng.normal(0, 3, steps.shape)), 0, 255).astype(np.uint8)
        for sigma in STEP_SIGMAS:
            yield f'steps{seed} sigma={sigma:g}', _blurred(noisy, sigma)


@pytest.fixture(scope='module')
def reference():
    return json.loads(REFERENCE.read_text())


def test_cpbd_equals_python_cpbd(reference):
    values = reference['values']
    images = dict(reference_images())
    assert len(images) == len(values) >= 20
    checksums = {name: int(image.astype(np.int64).sum()) for name, image in images.items()}
    assert checksums == reference['pixel_sums']  # the same images as when the values were made
    differences = {name: abs(cpbd(image.astype(np.float64)) - values[name]) for name, image in images.items()}
    assert max(differences.values()) <= 1e-6, differences
    assert len({round(value, 3) for value in values.values()}) > len(values) // 2  # the set is not degenerate
