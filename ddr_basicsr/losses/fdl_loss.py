"""Frequency distribution loss FDL (Ni et al., CVPR 2024), a competitor in DDR Tables 4-5 (lambda_f = 0.1).

Per VGG19 layer l (default relu1_2, relu2_2, relu3_4, relu4_4, relu5_4, as the official code):
F = FFT2 of the feature map over (H, W) (no shift, no normalisation), amplitude A = |F|,
phase P = angle(F). Each of A and P is compared with a sliced Wasserstein distance: ``num_proj``
fixed random kernels (C_l x p x p, unit L2 norm) are applied by a VALID convolution, each
projection's responses are sorted over positions and SWD = mean |sorted_out - sorted_gt|.
Layer score = SWD(A) + phase_weight * SWD(P); FDL = sum_l w_l * layer score, batch mean.
The minimum, 0, is reached for output == gt.

Unlike the official code the projections are drawn from a generator seeded by ``seed`` and
kept as buffers, so two runs with the same seed compute the same loss. Inputs must be at
least ``patch_size * 16`` px (80 px by default) so that relu5_4 still fits one kernel.
"""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from basicsr.utils.registry import LOSS_REGISTRY
from torch import Tensor

from ddr_basicsr.losses.vgg_features import VGGFeatureDistanceLoss

DEFAULT_FDL_LAYERS = {'relu1_2': 1.0, 'relu2_2': 1.0, 'relu3_4': 1.0, 'relu4_4': 1.0, 'relu5_4': 1.0}


def random_projections(num_proj: int, channels: int, patch_size: int, generator: torch.Generator) -> Tensor:
    """``num_proj`` Gaussian kernels of shape (channels, patch_size, patch_size), each of unit L2 norm."""
    kernels = torch.randn(num_proj, channels * patch_size * patch_size, generator=generator)
    kernels = kernels / kernels.norm(dim=1, keepdim=True)
    return kernels.view(num_proj, channels, patch_size, patch_size)


def sliced_wasserstein_per_image(map_x: Tensor, map_y: Tensor, projections: Tensor, stride: int) -> Tensor:
    """Mean over projections and positions of |sorted projected x - sorted projected y|; shape (B,)."""
    sorted_x = F.conv2d(map_x, projections, stride=stride).flatten(2).sort(dim=2).values
    sorted_y = F.conv2d(map_y, projections, stride=stride).flatten(2).sort(dim=2).values
    return (sorted_x - sorted_y).abs().mean(dim=(1, 2))


@LOSS_REGISTRY.register()
class FDLLoss(VGGFeatureDistanceLoss):
    """Frequency distribution loss on VGG19 features: loss_weight * sum_l w_l * mean_batch(FDL_l).

    Args:
        loss_weight: lambda_f (the DDR paper uses 0.1 for FDL; set it in the option file).
        layer_weights: VGG19 layer name -> weight (default: the official five layers, weight 1).
        patch_size, stride: size and stride of the projection kernels (official 5 and 1).
        num_proj: random projections per layer (official 256; lower it to save time and memory).
        phase_weight: weight of the phase term (official 1.0).
        seed: seed of the projection generator.
        pretrained / weights_path: trunk weights, see ``vgg_features.load_torchvision_state_dict``.
        reduction: ``mean`` / ``sum`` over the batch or ``none``; ``weight`` is one weight per image.
    """

    def __init__(self, loss_weight: float = 1.0, layer_weights: Optional[Dict[str, float]] = None,
                 patch_size: int = 5, stride: int = 1, num_proj: int = 256, phase_weight: float = 1.0,
                 seed: int = 0, pretrained: bool = True, weights_path: Optional[str] = None,
                 reduction: str = 'mean') -> None:
        super().__init__(loss_weight, layer_weights, DEFAULT_FDL_LAYERS, pretrained, weights_path,
                         min_feature_side=patch_size, reduction=reduction)
        if patch_size < 1 or stride < 1 or num_proj < 1:
            raise ValueError(f'FDLLoss needs patch_size, stride and num_proj >= 1, '
                             f'got {patch_size}, {stride} and {num_proj}.')
        self.stride = stride
        self.phase_weight = phase_weight
        self.seed = seed
        generator = torch.Generator().manual_seed(seed)
        for name in self.layer_weights:
            self.register_buffer(f'projections_{name}', random_projections(
                num_proj, self.vgg.out_channels(name), patch_size, generator))

    def layer_distance(self, name: str, feat_output: Tensor, feat_gt: Tensor) -> Tensor:
        projections = getattr(self, f'projections_{name}')
        spectrum_x = torch.fft.fftn(feat_output, dim=(-2, -1))
        spectrum_y = torch.fft.fftn(feat_gt, dim=(-2, -1))
        amplitude = sliced_wasserstein_per_image(spectrum_x.abs(), spectrum_y.abs(), projections, self.stride)
        phase = sliced_wasserstein_per_image(spectrum_x.angle(), spectrum_y.angle(), projections, self.stride)
        return amplitude + self.phase_weight * phase
