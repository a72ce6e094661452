"""Restormer (Zamir et al., "Restormer: Efficient Transformer for High-Resolution Image Restoration", CVPR 2022).

Re-implemented from the paper and the official configurations; parameter names and shapes
equal the official ones, so the released ``{'params': state_dict}`` files (motion_deblurring.pth,
real_denoising.pth, ...) load with ``strict=True``.
"""
from typing import Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from ddr_basicsr.archs.layers import ChannelLayerNorm

RESTORMER_NORM_EPS = 1e-5
LAYER_NORM_TYPES = ('WithBias', 'BiasFree')


class RestormerLayerNorm(nn.Module):
    """Per-pixel channel layer norm; the ``body`` child keeps the official ``normX.body.*`` names."""

    def __init__(self, dim: int, layer_norm_type: str) -> None:
        super().__init__()
        if layer_norm_type not in LAYER_NORM_TYPES:
            raise ValueError(f'LayerNorm_type must be one of {LAYER_NORM_TYPES}, got {layer_norm_type!r}')
        self.body = ChannelLayerNorm(dim, eps=RESTORMER_NORM_EPS, bias=layer_norm_type == 'WithBias')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class MDTA(nn.Module):
    """Multi-Dconv head transposed attention (paper Eq. 2): channel-to-channel attention per head.

    q, k, v come from a 1x1 then a 3x3 depthwise conv; q and k are L2-normalised over pixels and
    ``softmax(q k^T * temperature)`` (a (C/heads)^2 map) re-weights v's channels.
    """

    def __init__(self, dim: int, num_heads: int, bias: bool) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'MDTA needs dim divisible by num_heads, got dim={dim}, num_heads={num_heads}')
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(3 * dim, 3 * dim, 3, padding=1, groups=3 * dim, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        heads_shape = (batch, self.num_heads, channels // self.num_heads, height * width)
        query, key, value = (t.reshape(heads_shape) for t in self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1))
        query = F.normalize(query, dim=-1)
        key = F.normalize(key, dim=-1)
        attention = (query @ key.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        return self.project_out((attention @ value).reshape(batch, channels, height, width))


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network (paper Eq. 3): ``project_out(GELU(x1) * x2)`` where
    x1, x2 are the halves of a 1x1 + 3x3 depthwise expansion to ``2 * int(dim * factor)`` channels."""

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, 2 * hidden, 1, bias=bias)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, content = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * content)


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + MDTA(norm1(x))`` then ``+ GDFN(norm2(.))``."""

    def __init__(self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool, layer_norm_type: str) -> None:
        super().__init__()
        self.norm1 = RestormerLayerNorm(dim, layer_norm_type)
        self.attn = MDTA(dim, num_heads, bias)
        self.norm2 = RestormerLayerNorm(dim, layer_norm_type)
        self.ffn = GDFN(dim, ffn_expansion_factor, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    """3x3 conv embedding (key ``patch_embed.proj``), without bias whatever Restormer's ``bias``:
    the official model never passes its ``bias`` flag here, so its checkpoints have no ``patch_embed.proj.bias``."""

    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """3x3 conv to C/2 then PixelUnshuffle(2): C -> 2C at half resolution (key ``body.0``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """3x3 conv to 2C then PixelShuffle(2): C -> C/2 at double resolution (key ``body.0``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, 2 * channels, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@ARCH_REGISTRY.register()
class Restormer(nn.Module):
    """Four-level transformer U-Net with concatenating skips, a refinement stage and a global residual.

    Level widths are dim * (1, 2, 4, 8); the first decoder level and the refinement stage run at
    2 * dim on [upsampled, encoder-1] features. With ``dual_pixel_task`` a 1x1 ``skip_conv`` of the
    embedded input replaces the image residual. ``bias`` adds biases to the convolutions of the transformer
    blocks, ``reduce_chan_level2/3``, ``skip_conv`` and ``output``, as officially (not to ``patch_embed`` or the
    down/up-samplers). H and W must be multiples of
    :attr:`size_multiple` (8); callers reflect-pad bottom/right and crop, as the official test code does.
    """

    size_multiple = 8  # three 2x down-samplings, no internal padding

    def __init__(self, inp_channels: int = 3, out_channels: int = 3, dim: int = 48,
                 num_blocks: Sequence[int] = (4, 6, 6, 8), num_refinement_blocks: int = 4,
                 heads: Sequence[int] = (1, 2, 4, 8), ffn_expansion_factor: float = 2.66, bias: bool = False,
                 LayerNorm_type: str = 'WithBias', dual_pixel_task: bool = False) -> None:
        super().__init__()
        if len(num_blocks) != 4 or len(heads) != 4:
            raise ValueError(f'Restormer has four levels: num_blocks and heads need 4 entries, got '
                             f'num_blocks={list(num_blocks)}, heads={list(heads)}')
        if not dual_pixel_task and inp_channels != out_channels:
            raise ValueError(f'the global residual needs inp_channels == out_channels (got {inp_channels} and '
                             f'{out_channels}); set dual_pixel_task=True for the dual-pixel variant')
        self.inp_channels = inp_channels
        self.dual_pixel_task = dual_pixel_task

        def stage(channels: int, count: int, num_heads: int) -> nn.Sequential:
            return nn.Sequential(*(TransformerBlock(channels, num_heads, ffn_expansion_factor, bias, LayerNorm_type)
                                   for _ in range(count)))

        dim2, dim4, dim8 = 2 * dim, 4 * dim, 8 * dim
        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.encoder_level1 = stage(dim, num_blocks[0], heads[0])
        self.down1_2 = Downsample(dim)
        self.encoder_level2 = stage(dim2, num_blocks[1], heads[1])
        self.down2_3 = Downsample(dim2)
        self.encoder_level3 = stage(dim4, num_blocks[2], heads[2])
        self.down3_4 = Downsample(dim4)
        self.latent = stage(dim8, num_blocks[3], heads[3])
        self.up4_3 = Upsample(dim8)
        self.reduce_chan_level3 = nn.Conv2d(dim8, dim4, 1, bias=bias)
        self.decoder_level3 = stage(dim4, num_blocks[2], heads[2])
        self.up3_2 = Upsample(dim4)
        self.reduce_chan_level2 = nn.Conv2d(dim4, dim2, 1, bias=bias)
        self.decoder_level2 = stage(dim2, num_blocks[1], heads[1])
        self.up2_1 = Upsample(dim2)
        self.decoder_level1 = stage(dim2, num_blocks[0], heads[0])
        self.refinement = stage(dim2, num_refinement_blocks, heads[0])
        if dual_pixel_task:
            self.skip_conv = nn.Conv2d(dim, dim2, 1, bias=bias)
        self.output = nn.Conv2d(dim2, out_channels, 3, padding=1, bias=bias)

    def forward(self, inp_img: torch.Tensor) -> torch.Tensor:
        if inp_img.dim() != 4 or inp_img.shape[1] != self.inp_channels:
            raise ValueError(f'Restormer expects a (B, {self.inp_channels}, H, W) tensor, '
                             f'got shape {tuple(inp_img.shape)}')
        height, width = inp_img.shape[-2:]
        if height % self.size_multiple or width % self.size_multiple:
            raise ValueError(f'Restormer needs H and W to be multiples of {self.size_multiple}, got {height}x{width}; '
                             f'reflect-pad the bottom/right to the next multiple of {self.size_multiple} '
                             f'(F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")) and crop the output back.')
        embedded = self.patch_embed(inp_img)
        enc1 = self.encoder_level1(embedded)
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        x = self.latent(self.down3_4(enc3))
        x = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(x), enc3], dim=1)))
        x = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(x), enc2], dim=1)))
        x = self.refinement(self.decoder_level1(torch.cat([self.up2_1(x), enc1], dim=1)))
        if self.dual_pixel_task:
            return self.output(x + self.skip_conv(embedded))
        return self.output(x) + inp_img
