"""RealBlur's evaluation protocol (Rim et al., ECCV 2020) as BasicSR metrics: ECC-aligned PSNR and SSIM.

RealBlur's GT and blurred images are not pixel-aligned, so the official evaluation
(``evaluation_RealBlur_ecc.py``; also Restormer's and MPRNet's ``evaluate_realblur.py``) aligns every
restored image to its GT before measuring. Plain PSNR on RealBlur reads 1-2 dB lower. For a restored
image z and GT x, both float in [0, 1]:

1. intensity matching: z <- (sum x*z / sum z*z) * z, one factor for all channels;
2. a homography from x to z by OpenCV's ECC on the grey images (``cv2.findTransformECC``,
   MOTION_HOMOGRAPHY, identity start, at most 100 iterations, eps 0, Gaussian pre-filter 5);
3. z is warped onto x's grid (bicubic, reflected border); an all-ones image warped the same way
   (nearest, zero border) is the mask of pixels with a source; z and x are multiplied by the mask;
4. PSNR = 10 log10(1 / (sum of squared errors / sum of the mask)); SSIM = skimage's Gaussian SSIM map
   (sigma 1.5, population covariance, data range 1) times the mask, with the 5-px window radius
   cropped at the border, summed per channel over the mask sum of that channel, averaged over channels.

The metric functions follow BasicSR's calling convention: ``img`` is the restored image, ``img2`` the GT,
both HWC (or CHW with ``input_order``) BGR in [0, 255] as ``tensor2img`` returns them; unknown options such
as ``better`` are ignored.
"""
import hashlib
from dataclasses import dataclass
from typing import Dict, Tuple

import cv2
import numpy as np
from basicsr.metrics.metric_util import reorder_image
from basicsr.utils import get_root_logger
from basicsr.utils.registry import METRIC_REGISTRY
from skimage.metrics import structural_similarity

ECC_ITERATIONS = 100
ECC_EPS = 0.0
ECC_GAUSS_FILTER_SIZE = 5
SSIM_SIGMA = 1.5
SSIM_BORDER = int(3.5 * SSIM_SIGMA + 0.5)  # radius of skimage's Gaussian window (truncate 3.5)


@dataclass(frozen=True)
class EccAlignment:
    """Result of aligning a restored image to its GT (all HWC float32 in [0, 1])."""
    aligned: np.ndarray  # intensity-matched restored image on the GT grid, times the mask
    reference: np.ndarray  # GT times the mask
    mask: np.ndarray  # 1 where the warped restored image has a source pixel
    warp: np.ndarray  # 3x3 homography mapping GT pixel coordinates to restored-image coordinates
    converged: bool  # False when ECC failed and the identity warp was used


def _grey(img: np.ndarray) -> np.ndarray:
    return img[..., 0] if img.shape[2] == 1 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def _warp(img: np.ndarray, warp: np.ndarray, flags: int, border: int) -> np.ndarray:
    height, width = img.shape[:2]
    warped = cv2.warpPerspective(img, warp, (width, height), flags=flags | cv2.WARP_INVERSE_MAP,
                                 borderMode=border, borderValue=0)
    return warped.reshape(img.shape)


def ecc_align(restored: np.ndarray, reference: np.ndarray) -> EccAlignment:
    """Steps 1-3 of the RealBlur protocol for HWC BGR float images in [0, 1] (see the module docstring)."""
    if restored.shape != reference.shape or restored.ndim != 3 or restored.shape[2] not in (1, 3):
        raise ValueError(f'Expected two HWC images of the same shape with 1 or 3 channels, '
                         f'got {restored.shape} and {reference.shape}')
    z, x = restored.astype(np.float32), reference.astype(np.float32)
    energy = float(np.sum(z * z))
    matched = z * np.float32(np.sum(x * z) / energy) if energy > 0 else z
    warp = np.eye(3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, ECC_EPS)
    try:
        _, warp = cv2.findTransformECC(_grey(x), _grey(matched), warp, cv2.MOTION_HOMOGRAPHY, criteria, None,
                                       ECC_GAUSS_FILTER_SIZE)
        converged = True
    except cv2.error as err:
        get_root_logger().warning(f'ECC alignment failed ({str(err).strip().splitlines()[-1]}); '
                                  'measuring without alignment')
        warp, converged = np.eye(3, dtype=np.float32), False
    mask = _warp(np.ones_like(matched), warp, cv2.INTER_NEAREST, cv2.BORDER_CONSTANT)
    aligned = _warp(matched, warp, cv2.INTER_CUBIC, cv2.BORDER_REFLECT) * mask
    return EccAlignment(aligned, x * mask, mask, warp, converged)


def masked_psnr(alignment: EccAlignment) -> float:
    """PSNR over the masked pixels (peak 1)."""
    error = np.sum((alignment.reference - alignment.aligned) ** 2, dtype=np.float64) / np.sum(alignment.mask)
    return float('inf') if error == 0 else float(10 * np.log10(1.0 / error))


def masked_ssim(alignment: EccAlignment) -> float:
    """Gaussian SSIM averaged over the masked pixels, per channel, then over channels."""
    _, ssim_map = structural_similarity(alignment.reference, alignment.aligned, channel_axis=2, gaussian_weights=True,
                                        sigma=SSIM_SIGMA, use_sample_covariance=False, data_range=1.0, full=True)
    inner = np.s_[SSIM_BORDER:-SSIM_BORDER, SSIM_BORDER:-SSIM_BORDER]
    mask = alignment.mask[inner]
    per_channel = np.sum(ssim_map[inner] * mask, axis=(0, 1)) / np.sum(mask, axis=(0, 1))
    return float(np.mean(per_channel))


_last_alignment: Dict[Tuple, EccAlignment] = {}


def _aligned_pair(img: np.ndarray, img2: np.ndarray, crop_border: int, input_order: str,
                  test_y_channel: bool) -> EccAlignment:
    """Align BasicSR's (restored, GT) [0, 255] images; the last result is reused (PSNR and SSIM share it)."""
    if test_y_channel:
        raise ValueError('The RealBlur protocol measures RGB images: set test_y_channel: false')
    if img.shape != img2.shape:
        raise ValueError(f'Image shapes differ: {img.shape} and {img2.shape}')
    if input_order not in ('HWC', 'CHW'):
        raise ValueError(f'Wrong input_order {input_order!r}: use "HWC" or "CHW"')
    key = (img.shape, img.dtype.str, img2.dtype.str, crop_border, input_order,
           hashlib.blake2b(np.ascontiguousarray(img).tobytes() + np.ascontiguousarray(img2).tobytes()).digest())
    if key not in _last_alignment:
        restored, reference = reorder_image(img, input_order), reorder_image(img2, input_order)
        if crop_border:
            restored = restored[crop_border:-crop_border, crop_border:-crop_border]
            reference = reference[crop_border:-crop_border, crop_border:-crop_border]
        alignment = ecc_align(restored.astype(np.float32) / 255., reference.astype(np.float32) / 255.)
        _last_alignment.clear()
        _last_alignment[key] = alignment
    return _last_alignment[key]


@METRIC_REGISTRY.register()
def calculate_psnr_ecc(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, input_order: str = 'HWC',
                       test_y_channel: bool = False, **kwargs) -> float:
    """RealBlur's ECC-aligned PSNR (dB) of restored ``img`` against GT ``img2``, both in [0, 255]."""
    return masked_psnr(_aligned_pair(img, img2, crop_border, input_order, test_y_channel))


@METRIC_REGISTRY.register()
def calculate_ssim_ecc(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, input_order: str = 'HWC',
                       test_y_channel: bool = False, **kwargs) -> float:
    """RealBlur's ECC-aligned SSIM of restored ``img`` against GT ``img2``, both in [0, 255]."""
    return masked_ssim(_aligned_pair(img, img2, crop_border, input_order, test_y_channel))
