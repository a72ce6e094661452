"""Parameter-light layers shared by the NAFNet and Restormer re-implementations.

Not auto-imported as an arch module (no ``_arch`` suffix); it registers nothing.
"""
from typing import Optional, Tuple

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


FAST_TLC_STRIDES = (5, 4, 3, 2, 1)  # candidate subsampling strides of TLC's fast implementation, largest first


def fast_tlc_stride(size: int, max_stride: int) -> int:
    """Subsampling stride of the fast TLC pool along a side of ``size``: the largest of 5, 4, 3, 2, 1 that
    divides ``size``, capped at ``max_stride`` (the cap need not divide ``size``)."""
    return min(max_stride, next(stride for stride in FAST_TLC_STRIDES if size % stride == 0))


def subsampled_box_mean(x: torch.Tensor, kernel_size: Tuple[int, int], max_stride: Tuple[int, int]) -> torch.Tensor:
    """The local means of TLC's fast implementation (``fast_imp=True``), smaller than ``x``; the caller pads them.

    Keep every r1-th row and r2-th column (``fast_tlc_stride``); on that grid average windows of
    k1 = min(rows - 1, kernel_h // r1) by k2 = min(columns - 1, kernel_w // r2) at valid positions, leaving
    out the windows of the first subsampled row and column (the official cumulative sum has no zero border);
    repeat each mean r1 x r2 times. An approximation of :func:`box_mean_valid` with kernel ``kernel_size``.
    """
    height, width = x.shape[-2:]
    stride_h, stride_w = fast_tlc_stride(height, max_stride[0]), fast_tlc_stride(width, max_stride[1])
    grid = x[..., ::stride_h, ::stride_w]
    window_h = min(grid.shape[-2] - 1, kernel_size[0] // stride_h)
    window_w = min(grid.shape[-1] - 1, kernel_size[1] // stride_w)
    if window_h < 1 or window_w < 1:
        raise ValueError(f'NAFNetLocal(fast_imp=True) cannot pool a {height}x{width} feature map with window '
                         f'{kernel_size} and stride ({stride_h}, {stride_w}): the subsampled window is empty. '
                         f'Use fast_imp=False (exact TLC) or a larger input.')
    means = box_mean_valid(grid, window_h, window_w)[..., 1:, 1:]
    return means.repeat_interleave(stride_h, dim=-2).repeat_interleave(stride_w, dim=-1)


class LocalAvgPool2d(nn.Module):
    """TLC's local replacement for a global average pool (Chu et al., NAFNet's ``local_arch``).

    ``kernel_size`` is fixed at construction. When it covers the whole map the output is the
    global mean (B, C, 1, 1), identical to ``AdaptiveAvgPool2d(1)``. Otherwise each pixel gets the
    mean of a ``min(H, kh) x min(W, kw)`` window: the valid box means are replicate-padded back to
    H x W (floor of the missing rows/columns on top/left, ceil on bottom/right).
    With ``fast_max_stride`` (the official ``fast_imp``) the local means come from
    :func:`subsampled_box_mean` instead and are padded back the same way.
    The behaviour does not depend on train/eval mode. No parameters, no buffers.
    """

    def __init__(self, kernel_size: Tuple[int, int], fast_max_stride: Optional[Tuple[int, int]] = None) -> None:
        super().__init__()
        kernel_h, kernel_w = (int(k) for k in kernel_size)
        if kernel_h < 1 or kernel_w < 1:
            raise ValueError(f'LocalAvgPool2d kernel_size must be positive, got {kernel_size}')
        self.kernel_size = (kernel_h, kernel_w)
        if fast_max_stride is not None and min(fast_max_stride) < 1:
            raise ValueError(f'LocalAvgPool2d fast_max_stride must be positive, got {fast_max_stride}')
        self.fast_max_stride = None if fast_max_stride is None else tuple(int(r) for r in fast_max_stride)

    def extra_repr(self) -> str:
        return f'kernel_size={self.kernel_size}, fast_max_stride={self.fast_max_stride}'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        kernel_h, kernel_w = self.kernel_size
        if kernel_h >= height and kernel_w >= width:
            return F.adaptive_avg_pool2d(x, 1)
        if self.fast_max_stride is None:
            local_mean = box_mean_valid(x, min(kernel_h, height), min(kernel_w, width))
        else:
            local_mean = subsampled_box_mean(x, self.kernel_size, self.fast_max_stride)
        pad_h, pad_w = height - local_mean.shape[-2], width - local_mean.shape[-1]
        return F.pad(local_mean, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode='replicate')
