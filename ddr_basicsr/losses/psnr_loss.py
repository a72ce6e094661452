"""PSNRLoss of NAFNet: the negative per-image PSNR (peak 1) averaged over the batch."""
import math
from typing import Optional

import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from ddr_basicsr.losses.loss_util import check_image_pair, check_reduction, elementwise_weight, reduce_per_image

_Y_WEIGHTS = (65.481, 128.553, 24.966)


def rgb_to_y(images: torch.Tensor) -> torch.Tensor:
    """Luma Y = (65.481 R + 128.553 G + 24.966 B + 16) / 255 of RGB images in [0, 1], (B, 1, H, W)."""
    weights = images.new_tensor(_Y_WEIGHTS).view(1, 3, 1, 1)
    return ((images * weights).sum(dim=1, keepdim=True) + 16.0) / 255.0


@LOSS_REGISTRY.register()
class PSNRLoss(nn.Module):
    """loss_weight · 10/ln(10) · mean_n ln(MSE_n + 1e-8); ``toY`` compares luma only.

    ``weight`` is BasicSR's element-wise weight, (N, 1 or C, H, W): MSE_n becomes the weighted mean of the
    squared error over image n, and the images are combined with their mean weight (BasicSR's ``mean`` divides
    by the total weight). ``reduction``: ``mean`` (NAFNet's), ``sum`` or ``none`` (one value per image).
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean', toY: bool = False):
        super().__init__()
        self.reduction = check_reduction(reduction, 'PSNRLoss')
        self.loss_weight = float(loss_weight)
        self.scale = 10 / math.log(10)
        self.toY = toY

    def forward(self, pred: torch.Tensor, target: Optional[torch.Tensor] = None,
                weight: Optional[torch.Tensor] = None, **kwargs) -> torch.Tensor:
        check_image_pair(pred, target, 'PSNRLoss', channels=None, finite=False)
        weight = elementwise_weight(weight, pred, 'PSNRLoss')
        if self.toY:
            if pred.shape[1] != 3:
                raise ValueError(f'PSNRLoss(toY=True) needs 3-channel RGB input, got {pred.shape[1]} channels')
            pred, target = rgb_to_y(pred), rgb_to_y(target)
            weight = None if weight is None else weight.mean(dim=1, keepdim=True)
        squared_error = (pred - target).pow(2)
        if weight is None:
            mse, image_weight = squared_error.mean(dim=(1, 2, 3)), None
        else:
            weight = weight.expand_as(squared_error)
            mse = (squared_error * weight).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3)).clamp_min(1e-12)
            image_weight = weight.mean(dim=(1, 2, 3))
        per_image = self.scale * torch.log(mse + 1e-8)
        return self.loss_weight * reduce_per_image(per_image, image_weight, self.reduction)
