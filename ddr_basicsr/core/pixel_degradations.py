"""Handcrafted pixel-domain degradations D(i, ω_d) for the pixel-domain DDR of Eq. 2 (Fig. 3a)."""
import math
from typing import Callable, Dict, Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F

#: Default ω_d of each pixel-domain degradation (our choice; the paper tunes ω_d per dataset, Fig. 2).
DEFAULT_PIXEL_LEVELS = {'blur': 2.0, 'noise': 0.1, 'jpeg': 30.0}


def gaussian_blur(images: torch.Tensor, sigma: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Separable Gaussian blur of standard deviation ``sigma`` px, kernel 2·ceil(3σ)+1, reflect padding."""
    if sigma <= 0:
        raise ValueError(f'blur level (Gaussian sigma) must be > 0, got {sigma}')
    radius = max(1, math.ceil(3 * sigma))
    coords = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode='reflect')
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    return F.conv2d(F.conv2d(padded, horizontal, groups=channels), vertical, groups=channels)


def gaussian_noise(images: torch.Tensor, sigma: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Additive white Gaussian noise of standard deviation ``sigma`` (image range [0, 1]); drawn from
    ``generator`` (on its device), or from torch's global generator on the images' device when None."""
    if sigma <= 0:
        raise ValueError(f'noise level (standard deviation) must be > 0, got {sigma}')
    device = images.device if generator is None else generator.device
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype, device=device)
    return images + sigma * noise.to(images.device)


def jpeg_compression(images: torch.Tensor, quality: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """JPEG round trip at ``quality`` (1-100) with OpenCV; not differentiable (the result is detached)."""
    if not 1 <= quality <= 100:
        raise ValueError(f'jpeg level (quality) must be in [1, 100], got {quality}')
    batch = (images.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    decoded = []
    for rgb in batch:
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        ok, buffer = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise RuntimeError('OpenCV failed to JPEG-encode an image')
        decoded.append(cv2.imdecode(buffer, cv2.IMREAD_COLOR)[..., ::-1].copy())
    out = torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2)
    return out.to(device=images.device, dtype=images.dtype) / 255.0


PIXEL_DEGRADATIONS: Dict[str, Callable[..., torch.Tensor]] = {
    'blur': gaussian_blur,
    'noise': gaussian_noise,
    'jpeg': jpeg_compression,
}
