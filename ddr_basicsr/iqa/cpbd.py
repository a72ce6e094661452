"""CPBD sharpness (Narvekar and Karam, TIP 2011; the paper's [44]) as the authors' reference code computes it.

We follow the reference MATLAB release (CPBDM v1.0) as ported to Python by python-cpbd (whose test data compares
the port with MATLAB on LIVE), step by step:

1. gray image: BT.601 luma of 8-bit RGB with PIL's ``L`` rounding (python-cpbd reads images with it), in double;
2. two edge maps, as the reference: Canny edges (scikit-image's ``canny`` with its defaults, σ = 1, as python-cpbd
   calls it) pick the edge blocks; MATLAB's ``edge(I, 'Sobel')`` as Octave computes it for vertical edges picks
   the pixels whose width is measured: the horizontal Sobel derivative with the kernel normalised to Σ|h| = 1,
   squared; values at or below 2·sqrt(mean(strength²)) dropped; thinning keeps pixels strictly above both
   horizontal or both vertical neighbours;
3. widths (Marziliano et al.): gradient angle atan2(g_y, g_x) from ``numpy.gradient`` (0 where g_x = 0),
   quantised to 45°; at edges with angle 0 or ±180 (away from the border) the width is 2 + the number of
   consecutive monotonic steps (rising for 0, falling for ±180) left of col-1 and right of col+1, at most 101 each;
4. 64×64 blocks (whole blocks only) with more than 0.2 % Canny edge pixels; just-noticeable width 5 px when the block's
   contrast int(max - min) ≤ 50, else 3 px; P_blur = 1 - exp(-(w / w_JNB)^3.6) per measured edge;
5. CPBD = share of measured edges with round(100·P_blur) ≤ 63.

``tests/data/cpbd_reference.json`` holds python-cpbd's values for 24 images (how they were made is noted there);
ours agree within 1e-12. One step of python-cpbd itself differs from the MATLAB release: its Canny is
scikit-image's (fixed thresholds 0.1 / 0.2 of the gradient), not MATLAB's ``edge(I, 'canny')`` (thresholds from
the gradient histogram, σ = √2); we follow python-cpbd, whose port was checked against MATLAB on LIVE.

Used by the descriptor report (:mod:`ddr_basicsr.iqa.descriptor`) and Table 2 (:mod:`ddr_basicsr.paper.table2`).
"""
import math

import cv2
import numpy as np
from skimage.feature import canny

BLOCK = 64
EDGE_SHARE = 0.002
BETA = 3.6
MAX_STEPS = 101
#: Largest rounded percentage of P_blur counted as sharp (the reference sums histogram bins 0..63).
SHARP_PERCENT = 63


def gray_levels(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of an (H, W, 3) RGB image in [0, 255] as PIL's ``convert('L')`` rounds it (python-cpbd reads
    images so), (19595 R + 38470 G + 7471 B + 2^15) >> 16, as float64."""
    levels = np.clip(np.rint(rgb), 0, 255).astype(np.int64)
    weighted = levels[..., 0] * 19595 + levels[..., 1] * 38470 + levels[..., 2] * 7471 + (1 << 15)
    return (weighted >> 16).astype(np.float64)


def sobel_edges(gray: np.ndarray) -> np.ndarray:
    """Thinned vertical edges of the reference's Sobel step (see the module docstring), boolean."""
    kernel = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 8.0
    strength = cv2.filter2D(gray, cv2.CV_64F, kernel, borderType=cv2.BORDER_REFLECT) ** 2
    strength[strength <= 2 * math.sqrt(strength.mean())] = 0
    padded = np.pad(strength, 1)
    centre = padded[1:-1, 1:-1]
    horizontal = (centre > padded[1:-1, :-2]) & (centre > padded[1:-1, 2:])
    vertical = (centre > padded[:-2, 1:-1]) & (centre > padded[2:, 1:-1])
    return horizontal | vertical


def _steps_run(moving: np.ndarray) -> np.ndarray:
    """Per position j, the number of consecutive True values of ``moving`` starting at j (capped at MAX_STEPS)."""
    run = np.zeros(moving.shape, dtype=np.int64)
    count = np.zeros(moving.shape[0], dtype=np.int64)
    for column in range(moving.shape[1] - 1, -1, -1):
        count = np.where(moving[:, column], count + 1, 0)
        run[:, column] = count
    return np.minimum(run, MAX_STEPS - 1)


def edge_widths(gray: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Marziliano widths at the edges with a horizontal gradient (0 elsewhere), as in the reference."""
    gradient_y, gradient_x = np.gradient(gray)
    angles = np.zeros_like(gray)
    nonzero = gradient_x != 0
    angles[nonzero] = np.degrees(np.arctan2(gradient_y[nonzero], gradient_x[nonzero]))
    angles[(gradient_x == 0) & (gradient_y == math.pi / 2)] = 90
    quantised = 45 * np.round(angles / 45)
    steps = np.diff(gray, axis=1)  # steps[:, k] = gray[:, k + 1] - gray[:, k]
    # rightward runs from column c: steps c -> c+1, c+1 -> c+2, ...; leftward runs from c: steps c -> c-1, ...
    rising_right, falling_right = _steps_run(steps > 0), _steps_run(steps < 0)
    falling_left = _steps_run((steps > 0)[:, ::-1])[:, ::-1]  # going left, values decrease: steps to the left rise
    rising_left = _steps_run((steps < 0)[:, ::-1])[:, ::-1]
    height, width = gray.shape
    widths = np.zeros_like(gray)
    if not angles.any():
        return widths
    rows, cols = np.nonzero(edges[1:-1, 1:-1])
    rows, cols = rows + 1, cols + 1
    for angle, left_runs, right_runs in ((0, falling_left, rising_right), (180, rising_left, falling_right)):
        selected = np.abs(quantised[rows, cols]) == angle
        r, c = rows[selected], cols[selected]
        # leftward walk from col-1: step k = (col-1) -> (col-2) is steps[:, col-2] read backwards
        left = np.where(c >= 2, left_runs[r, np.maximum(c - 2, 0)], 0) + 1
        right = np.where(c + 2 < width, right_runs[r, np.minimum(c + 1, width - 2)], 0) + 1
        widths[r, c] = left + right
    return widths


def cpbd(rgb: np.ndarray) -> float:
    """CPBD sharpness in [0, 1] of an (H, W, 3) RGB image in [0, 255]; higher is sharper (0 without edge blocks)."""
    gray = gray_levels(rgb)
    edges = canny(gray)
    widths = edge_widths(gray, sobel_edges(gray))
    sharp = total = 0
    for top in range(0, gray.shape[0] - BLOCK + 1, BLOCK):
        for left in range(0, gray.shape[1] - BLOCK + 1, BLOCK):
            window = (slice(top, top + BLOCK), slice(left, left + BLOCK))
            if np.count_nonzero(edges[window]) <= BLOCK * BLOCK * EDGE_SHARE:
                continue
            measured = widths[window][widths[window] != 0]
            width_jnb = 5.0 if int(gray[window].max() - gray[window].min()) <= 50 else 3.0
            probability = 1 - np.exp(-np.abs(measured / width_jnb) ** BETA)
            sharp += int(np.count_nonzero(np.rint(probability * 100) <= SHARP_PERCENT))
            total += measured.size
    return sharp / total if total else 0.0
