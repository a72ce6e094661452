"""NAFNet (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022) and its TLC variant.

Re-implemented from the paper and the official configurations; parameter
names and shapes equal the official ones, so the released ``{'params': state_dict}`` files
(NAFNet-GoPro/REDS/SIDD-width32/64.pth) load with ``strict=True`` into either class.
"""
from typing import Iterator, Sequence, Tuple

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from ddr_basicsr.archs.layers import FAST_TLC_STRIDES, ChannelLayerNorm, LocalAvgPool2d, simple_gate

NAFNET_NORM_EPS = 1e-6


class NAFBlock(nn.Module):
    """Nonlinear-activation-free block: two gated residual branches scaled by ``beta``/``gamma``.

    Branch 1: norm1 -> conv1 (1x1, c->2c) -> conv2 (3x3 depthwise) -> SimpleGate
    -> simplified channel attention (``x * conv(global_mean(x))``, no sigmoid) -> conv3 (1x1).
    Branch 2: norm2 -> conv4 (1x1, c->2c) -> SimpleGate -> conv5 (1x1).
    ``beta`` and ``gamma`` start at zero, so a fresh block is the identity.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        expanded = 2 * channels
        self.conv1 = nn.Conv2d(channels, expanded, 1)
        self.conv2 = nn.Conv2d(expanded, expanded, 3, padding=1, groups=expanded)
        self.conv3 = nn.Conv2d(channels, channels, 1)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels, 1))
        self.conv4 = nn.Conv2d(channels, expanded, 1)
        self.conv5 = nn.Conv2d(channels, channels, 1)
        self.norm1 = ChannelLayerNorm(channels, eps=NAFNET_NORM_EPS)
        self.norm2 = ChannelLayerNorm(channels, eps=NAFNET_NORM_EPS)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = simple_gate(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + self.beta * x
        z = self.conv5(simple_gate(self.conv4(self.norm2(y))))
        return y + self.gamma * z


def _blocks(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*(NAFBlock(channels) for _ in range(count)))


@ARCH_REGISTRY.register()
class NAFNet(nn.Module):
    """U-shaped NAFNet: intro conv, encoder levels with stride-2 downs, middle blocks,
    PixelShuffle ups with *additive* skips, ending conv and a global residual.

    Any H x W is accepted: the input is zero-padded at the bottom/right to a multiple of
    ``2 ** len(enc_blk_nums)`` and the output cropped back. Input and output are RGB in [0, 1]
    (the output is not clamped).
    """

    size_multiple = 1  # required H/W multiple for callers; padding is internal

    def __init__(self, img_channel: int = 3, width: int = 16, middle_blk_num: int = 1,
                 enc_blk_nums: Sequence[int] = (), dec_blk_nums: Sequence[int] = ()) -> None:
        super().__init__()
        if len(enc_blk_nums) != len(dec_blk_nums):
            raise ValueError(f'NAFNet needs as many decoder as encoder levels, got enc_blk_nums={list(enc_blk_nums)} '
                             f'and dec_blk_nums={list(dec_blk_nums)}')
        self.img_channel = img_channel
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        encoders, downs, decoders, ups = [], [], [], []
        channels = width
        for count in enc_blk_nums:
            encoders.append(_blocks(channels, count))
            downs.append(nn.Conv2d(channels, 2 * channels, 2, stride=2))
            channels *= 2
        middle_blks = _blocks(channels, middle_blk_num)
        for count in dec_blk_nums:
            ups.append(nn.Sequential(nn.Conv2d(channels, 2 * channels, 1, bias=False), nn.PixelShuffle(2)))
            channels //= 2
            decoders.append(_blocks(channels, count))
        # assignment order fixes the state_dict order: the official one is
        # intro, ending, encoders, decoders, middle_blks, ups, downs
        self.encoders = nn.ModuleList(encoders)
        self.decoders = nn.ModuleList(decoders)
        self.middle_blks = middle_blks
        self.ups = nn.ModuleList(ups)
        self.downs = nn.ModuleList(downs)
        self.padder_size = 2 ** len(enc_blk_nums)

    def blocks_by_level(self) -> Iterator[Tuple[int, NAFBlock]]:
        """Yield ``(level, block)`` for every NAFBlock; level k works at 1/2**k of the padded input."""
        depth = len(self.encoders)
        for level, stage in enumerate(self.encoders):
            yield from ((level, block) for block in stage)
        yield from ((depth, block) for block in self.middle_blks)
        for index, stage in enumerate(self.decoders):
            yield from ((depth - 1 - index, block) for block in stage)

    def padded_size(self, height: int, width: int) -> Tuple[int, int]:
        """Size after the internal zero padding to a multiple of ``padder_size``."""
        step = self.padder_size
        return -(-height // step) * step, -(-width // step) * step

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        if inp.dim() != 4 or inp.shape[1] != self.img_channel:
            raise ValueError(f'{type(self).__name__} expects a (B, {self.img_channel}, H, W) tensor, '
                             f'got shape {tuple(inp.shape)}')
        height, width = inp.shape[-2:]
        padded_h, padded_w = self.padded_size(height, width)
        inp = F.pad(inp, (0, padded_w - width, 0, padded_h - height))
        x = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = decoder(up(x) + skip)
        x = self.ending(x) + inp
        return x[..., :height, :width]


@ARCH_REGISTRY.register()
class NAFNetLocal(NAFNet):
    """NAFNet with Test-time Local Converter (TLC) statistics, as used for the GoPro/REDS models.

    Every block's global average pool (``sca.0``) becomes a :class:`LocalAvgPool2d` whose window
    is fixed here from ``train_size``: 1.5x the feature size that a ``train_size`` input has at
    that block's level (384/192/96/48/24 for 256 crops and four levels). Inputs up to
    1.5 * train size (after padding) therefore give exactly NAFNet's output; larger inputs use
    local means. The pooling is the same in train and eval mode (as in the official code); with
    training crops <= 1.5 * train_size it is global. State dicts are identical to NAFNet's.
    ``fast_imp=True`` is the official faster approximation of the local means: each pool subsamples its map
    by a stride capped at max(1, 5 * feature size at ``train_size`` // train size), that is 5 / 2 / 1 / 1 / 1
    from the top level down for 256 crops (see ``subsampled_box_mean``).
    """

    def __init__(self, *args, train_size: Sequence[int] = (1, 3, 256, 256), fast_imp: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if len(train_size) < 2 or min(train_size[-2:]) < 1:
            raise ValueError(f'train_size must end with positive (H, W), e.g. (1, 3, 256, 256); got {train_size}')
        self.train_size = tuple(int(s) for s in train_size)
        train_h, train_w = self.train_size[-2:]
        base_h, base_w = int(1.5 * train_h), int(1.5 * train_w)
        padded_h, padded_w = self.padded_size(train_h, train_w)
        self.fast_imp = bool(fast_imp)
        for level, block in self.blocks_by_level():
            feature_h, feature_w = padded_h >> level, padded_w >> level
            max_stride = (max(1, FAST_TLC_STRIDES[0] * feature_h // train_h),
                          max(1, FAST_TLC_STRIDES[0] * feature_w // train_w))
            block.sca[0] = LocalAvgPool2d((feature_h * base_h // train_h, feature_w * base_w // train_w),
                                          fast_max_stride=max_stride if fast_imp else None)
