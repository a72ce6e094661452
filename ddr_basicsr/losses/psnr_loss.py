"""PSNRLoss of NAFNet: the negative per-image PSNR (peak 1) averaged over the batch."""
import math

from ddr_basicsr import compat  # noqa: F401  (before basicsr)
import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

_Y_WEIGHTS = (65.481, 128.553, 24.966)


def rgb_to_y(images: torch.Tensor) -> torch.Tensor:
    """Luma Y = (65.481 R + 128.553 G + 24.966 B + 16) / 255 of RGB images in [0, 1], (B, 1, H, W)."""
    weights = images.new_tensor(_Y_WEIGHTS).view(1, 3, 1, 1)
    return ((images * weights).sum(dim=1, keepdim=True) + 16.0) / 255.0


@LOSS_REGISTRY.register()
class PSNRLoss(nn.Module):
    """loss_weight · 10/ln(10) · mean_n ln(MSE_n + 1e-8); ``toY`` compares luma only."""

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean', toY: bool = False):
        super().__init__()
        if reduction != 'mean':
            raise ValueError(f"PSNRLoss supports only reduction='mean', got '{reduction}'")
        self.loss_weight = float(loss_weight)
        self.scale = 10 / math.log(10)
        self.toY = toY

    def forward(self, pred: torch.Tensor, target: torch.Tensor, **kwargs) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f'PSNRLoss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape')
        if pred.dim() != 4:
            raise ValueError(f'PSNRLoss expects (B, C, H, W) tensors, got shape {tuple(pred.shape)}')
        if self.toY:
            if pred.shape[1] != 3:
                raise ValueError(f'PSNRLoss(toY=True) needs 3-channel RGB input, got {pred.shape[1]} channels')
            pred, target = rgb_to_y(pred), rgb_to_y(target)
        mse = (pred - target).pow(2).mean(dim=(1, 2, 3))
        return self.loss_weight * self.scale * torch.log(mse + 1e-8).mean()
