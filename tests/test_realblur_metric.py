"""RealBlur's ECC-aligned PSNR/SSIM (ddr_basicsr/metrics/realblur_metric.py): alignment recovers a known shift,
intensity matching, masked formulas, and BasicSR's metric calling convention."""
import cv2
import numpy as np
import pytest
from basicsr.metrics import calculate_metric, calculate_psnr, calculate_ssim
from basicsr.utils.registry import METRIC_REGISTRY

from ddr_basicsr.metrics.realblur_metric import (
    EccAlignment,
    calculate_psnr_ecc,
    calculate_ssim_ecc,
    ecc_align,
    masked_psnr,
)

SHIFT = (1.5, -0.75)  # (x, y) in pixels: the restored image is the GT moved right and up


@pytest.fixture(scope='module')
def texture() -> np.ndarray:
    """A smooth random BGR uint8 texture, 96 x 128."""
    noise = np.random.default_rng(0).random((96, 128, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return np.round(smooth * 255).astype(np.uint8)


def shifted(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """out(x, y) = img(x - dx, y - dy), bicubic, rounded to uint8."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    moved = cv2.warpAffine(img.astype(np.float32), matrix, img.shape[1::-1], flags=cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REFLECT)
    return np.clip(np.round(moved), 0, 255).astype(np.uint8)


def test_registered_in_basicsr() -> None:
    assert 'calculate_psnr_ecc' in METRIC_REGISTRY and 'calculate_ssim_ecc' in METRIC_REGISTRY


def test_ecc_recovers_a_known_subpixel_shift(texture: np.ndarray) -> None:
    restored = shifted(texture, *SHIFT)
    alignment = ecc_align(restored / 255., texture / 255.)
    assert alignment.converged
    np.testing.assert_allclose(alignment.warp[:2, 2], SHIFT, atol=0.1)  # GT (x, y) -> restored (x + dx, y + dy)
    np.testing.assert_allclose(alignment.warp[:2, :2], np.eye(2), atol=0.01)
    assert 0.9 < alignment.mask.mean() < 1.0  # pixels shifted in from outside the restored image are masked out


def test_aligned_metrics_are_far_above_plain_ones_for_a_shift(texture: np.ndarray) -> None:
    restored = shifted(texture, *SHIFT)
    plain_psnr, ecc_psnr = calculate_psnr(restored, texture, crop_border=0), calculate_psnr_ecc(restored, texture)
    assert plain_psnr < 30 and ecc_psnr > plain_psnr + 10
    plain_ssim, ecc_ssim = calculate_ssim(restored, texture, crop_border=0), calculate_ssim_ecc(restored, texture)
    assert plain_ssim < 0.9 and ecc_ssim > 0.98


def test_identical_images_and_intensity_matching(texture: np.ndarray) -> None:
    assert calculate_psnr_ecc(texture, texture) == float('inf')
    assert calculate_ssim_ecc(texture, texture) == pytest.approx(1.0)
    darker = np.round(texture * 0.8).astype(np.uint8)  # one global gain: removed by intensity matching
    assert calculate_psnr(darker, texture, crop_border=0) < 20 and calculate_psnr_ecc(darker, texture) > 45


def test_masked_psnr_counts_only_valid_pixels() -> None:
    mask = np.zeros((4, 4, 3), np.float32)
    mask[:, :2] = 1  # 24 valid values
    reference = np.full((4, 4, 3), 0.5, np.float32) * mask
    aligned = (reference + 0.1) * mask  # error 0.1 on every valid value
    value = masked_psnr(EccAlignment(aligned, reference, mask, np.eye(3), True))
    assert value == pytest.approx(10 * np.log10(1 / 0.01), abs=1e-4)  # 20 dB, not diluted by masked pixels


def test_failed_alignment_falls_back_to_identity() -> None:
    flat = np.full((32, 32, 3), 128, np.uint8)
    alignment = ecc_align(flat / 255., flat / 255.)
    assert not alignment.converged and np.array_equal(alignment.warp, np.eye(3, dtype=np.float32))
    assert calculate_psnr_ecc(flat, flat) == float('inf')


def test_basicsr_calling_convention(texture: np.ndarray) -> None:
    restored = shifted(texture, *SHIFT)
    options = {'type': 'calculate_psnr_ecc', 'crop_border': 0, 'better': 'higher'}
    value = calculate_metric({'img': restored, 'img2': texture}, options)
    assert value == pytest.approx(calculate_psnr_ecc(restored, texture))
    chw = calculate_ssim_ecc(restored.transpose(2, 0, 1), texture.transpose(2, 0, 1), input_order='CHW')
    assert chw == pytest.approx(calculate_ssim_ecc(restored, texture))
    assert calculate_psnr_ecc(restored, texture, crop_border=8) != pytest.approx(value)
    with pytest.raises(ValueError, match='test_y_channel: false'):
        calculate_psnr_ecc(restored, texture, test_y_channel=True)
    with pytest.raises(ValueError, match='shapes differ'):
        calculate_ssim_ecc(restored[:-1], texture)
