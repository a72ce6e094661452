"""Parameter-light layers shared by the NAFNet and Restormer re-implementations.

Not auto-imported as an arch module (no ``_arch`` suffix); it registers nothing.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channel axis of a (B, C, H, W) map, computed independently per pixel.

    ``y = (x - mean_c) / sqrt(var_c + eps) * weight + bias`` with the biased variance.
    With ``bias=False`` this is Restormer's "BiasFree" variant: no bias and the numerator
    is *not* mean-centred (``x / sqrt(var_c + eps) * weight``), though ``var_c`` is centred.
    """

    def __init__(self, channels: int, eps: float, bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=1, keepdim=True, unbiased=False)
        numerator = x if self.bias is None else x - mean
        y = numerator * torch.rsqrt(var + self.eps) * self.weight.view(1, -1, 1, 1)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y


def simple_gate(x: torch.Tensor) -> torch.Tensor:
    """NAFNet's SimpleGate: split channels into two halves and multiply them (C -> C/2)."""
    first, second = x.chunk(2, dim=1)
    return first * second


def box_mean_valid(x: torch.Tensor, kernel_h: int, kernel_w: int) -> torch.Tensor:
    """Mean over every ``kernel_h x kernel_w`` window at valid positions, stride 1.

    Equal to ``F.avg_pool2d(x, (kernel_h, kernel_w), stride=1)`` but O(H*W) via an integral
    image (2-D cumulative sum), as in NAFNet's TLC, so 384x384 windows on 720p maps stay cheap.
    The sum runs in at least float32 on the per-map-centred input to limit rounding error.
    """
    compute_dtype = torch.promote_types(x.dtype, torch.float32)
    values = x.to(compute_dtype)
    centre = values.mean(dim=(-2, -1), keepdim=True)
    integral = F.pad((values - centre).cumsum(-2).cumsum(-1), (1, 0, 1, 0))
    window_sum = (integral[..., kernel_h:, kernel_w:] - integral[..., :-kernel_h, kernel_w:]
                  - integral[..., kernel_h:, :-kernel_w] + integral[..., :-kernel_h, :-kernel_w])
    return (window_sum / (kernel_h * kernel_w) + centre).to(x.dtype)


class LocalAvgPool2d(nn.Module):
    """TLC's local replacement for a global average pool (Chu et al., NAFNet's ``local_arch``).

    ``kernel_size`` is fixed at construction. When it covers the whole map the output is the
    global mean (B, C, 1, 1), identical to ``AdaptiveAvgPool2d(1)``. Otherwise each pixel gets the
    mean of a ``min(H, kh) x min(W, kw)`` window: the valid box means are replicate-padded back to
    H x W (floor of the missing rows/columns on top/left, ceil on bottom/right).
    The behaviour does not depend on train/eval mode. No parameters, no buffers.
    """

    def __init__(self, kernel_size: Tuple[int, int]) -> None:
        super().__init__()
        kernel_h, kernel_w = (int(k) for k in kernel_size)
        if kernel_h < 1 or kernel_w < 1:
            raise ValueError(f'LocalAvgPool2d kernel_size must be positive, got {kernel_size}')
        self.kernel_size = (kernel_h, kernel_w)

    def extra_repr(self) -> str:
        return f'kernel_size={self.kernel_size}'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        kernel_h, kernel_w = self.kernel_size
        if kernel_h >= height and kernel_w >= width:
            return F.adaptive_avg_pool2d(x, 1)
        kernel_h, kernel_w = min(kernel_h, height), min(kernel_w, width)
        local_mean = box_mean_valid(x, kernel_h, kernel_w)
        pad_h, pad_w = kernel_h - 1, kernel_w - 1
        return F.pad(local_mean, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode='replicate')
