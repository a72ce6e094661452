"""Contextual loss CTX (Mechrez, Talmi, Zelnik-Manor, ECCV 2018), a competitor in DDR Tables 4-5.

The formula is the authors' (their TensorFlow CX code, the CTX the DDR paper compares against).
For a batch of output features X = {x_i} and target features Y = {y_j} at one VGG19 layer:
  1. centre both by the per-channel mean of Y over the whole batch and all positions, L2-normalise
     each vector, and take d_ij = (1 - cos(x_i, y_j)) / 2, in [0, 1];
  2. relative distance d~_ij = d_ij / (min_k d_ik + eps), eps = 1e-5;
  3. CX_ij = exp((b - d~_ij) / h) / sum_k exp((b - d~_ik) / h), b = 1, bandwidth h = 0.5;
  4. CX(X, Y) = mean_j max_i CX_ij and L_CX = -log CX(X, Y) per image, then the batch mean.
Step 3 is a log-softmax and step 4 a log-sum-exp, so no exp over/underflows and no eps is
needed inside the log. The loss is >= 0; it is 0 for output == gt when feature vectors at
distinct positions differ (repeated identical vectors, e.g. flat regions, share their match).
Because of step 1 an image's value depends on the targets of the other images in its batch.

What differs from the authors' published code:
  * trunk weights: torchvision's ImageNet VGG19 on [0, 1] input normalised by ImageNet mean/std;
    theirs is MatConvNet's imagenet-vgg-verydeep-19 on [0, 255] input minus the mean pixel
    (123.68, 116.779, 103.939). Their ``conv3_2`` / ``conv4_2`` are post-ReLU, our ``relu3_2`` / ``relu4_2``;
  * pooling: torchvision's VGG19 max-pools; the authors' VGG19 average-pools (2x2, stride 2);
  * numerics: unit vectors come from ``F.normalize`` (norm floored at 1e-12; theirs divides by the
    raw norm) and d_ij is clamped at 0 against rounding below it;
  * options they had and we drop: ``crop_quarters`` (off in their configuration), L2/L1 distances.
The memory bound is theirs too: when a feature map has more than ``max_positions`` positions, the
same random subset of positions is taken from output and target, for the whole batch, before
step 1 (65 x 65 = 4225 as their ``max_sampling_1d_size``); the affinity matrix has N x N entries
per image and layer (N = positions), which would not fit otherwise.
"""
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from basicsr.utils.registry import LOSS_REGISTRY
from torch import Tensor

from ddr_basicsr.losses.vgg_features import VGGFeatureDistanceLoss

DEFAULT_CTX_LAYERS = {'relu3_2': 1.0, 'relu4_2': 1.0}


def sample_positions(feat_x: Tensor, feat_y: Tensor, max_positions: int) -> Tuple[Tensor, Tensor]:
    """Flatten (B, C, H, W) maps to (B, C, N) with N <= ``max_positions`` (same random positions in both)."""
    feat_x, feat_y = feat_x.flatten(2), feat_y.flatten(2)
    num_positions = feat_x.shape[-1]
    if num_positions <= max_positions:
        return feat_x, feat_y
    keep = torch.randperm(num_positions, device=feat_x.device)[:max_positions]
    return feat_x[..., keep], feat_y[..., keep]


def contextual_loss_per_image(feat_x: Tensor, feat_y: Tensor, band_width: float = 0.5,
                              eps: float = 1e-5) -> Tensor:
    """-log CX(X, Y) of each image for (B, C, N) output features ``feat_x`` and target features ``feat_y``.

    Steps 1-4 of the module docstring; shape (B,). The centre is the target's mean over the batch.
    """
    centre = feat_y.mean(dim=(0, 2), keepdim=True)
    x = F.normalize(feat_x - centre, dim=1)
    y = F.normalize(feat_y - centre, dim=1)
    distance = ((1.0 - torch.bmm(x.transpose(1, 2), y)) / 2).clamp_min(0.0)  # (B, N_x, N_y)
    relative = distance / (distance.min(dim=2, keepdim=True).values + eps)
    log_cx = F.log_softmax((1.0 - relative) / band_width, dim=2)
    best_match = log_cx.max(dim=1).values  # log max_i CX_ij, (B, N_y)
    return math.log(best_match.shape[1]) - torch.logsumexp(best_match, dim=1)


@LOSS_REGISTRY.register()
class ContextualLoss(VGGFeatureDistanceLoss):
    """Contextual loss on VGG19 features: loss_weight * sum_l w_l * mean_batch(-log CX_l).

    Args:
        loss_weight: lambda_f (1.0 in the DDR paper).
        layer_weights: VGG19 layer name -> weight (default relu3_2 and relu4_2, the official layers).
        band_width: h in step 3 (0.5, the authors' ``nn_stretch_sigma``).
        max_positions: cap on positions per feature map; larger maps are randomly subsampled.
        pretrained / weights_path: trunk weights, see ``vgg_features.load_torchvision_state_dict``.
        reduction: ``mean`` / ``sum`` over the batch or ``none``; ``weight`` is one weight per image.
    """

    def __init__(self, loss_weight: float = 1.0, layer_weights: Optional[Dict[str, float]] = None,
                 band_width: float = 0.5, max_positions: int = 4225, pretrained: bool = True,
                 weights_path: Optional[str] = None, reduction: str = 'mean') -> None:
        super().__init__(loss_weight, layer_weights, DEFAULT_CTX_LAYERS, pretrained, weights_path, reduction=reduction)
        if band_width <= 0 or max_positions < 1:
            raise ValueError(f'ContextualLoss needs band_width > 0 and max_positions >= 1, '
                             f'got {band_width} and {max_positions}.')
        self.band_width = band_width
        self.max_positions = max_positions

    def layer_distance(self, name: str, feat_output: Tensor, feat_gt: Tensor) -> Tensor:
        feat_x, feat_y = sample_positions(feat_output, feat_gt, self.max_positions)
        return contextual_loss_per_image(feat_x, feat_y, self.band_width)
