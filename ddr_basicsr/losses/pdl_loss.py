"""Projected distribution loss PDL (Delbracio, Talebi, Milanfar, ICCP 2021), a competitor in DDR Tables 4-5.

PDL aggregates 1-D Wasserstein distances between CNN activations of output and target. For
each layer l and channel c the activations u = phi_{l,c}(output), v = phi_{l,c}(gt) are two
equal-size empirical distributions over the H_l x W_l positions, whose W1 distance is
mean_k |sort(u)_k - sort(v)_k|. Ours:

    PDL = sum_l w_l * mean_c W1(phi_{l,c}(output), phi_{l,c}(gt)),   averaged over the batch.

Our choices (neither the PDL paper's layer set nor the DDR authors' is published): the
canonical channel axes as projections, the mean over channels (so deep 512-channel layers do
not dominate), and by default VGG19 relu1_2, relu2_2, relu3_4, relu4_4, relu5_4 with weight 1
each, the layers FDL uses, so the two distribution losses see the same features.
The minimum, 0, is reached for output == gt (and any spatial permutation of it).
"""
from typing import Dict, Optional

from basicsr.utils.registry import LOSS_REGISTRY
from torch import Tensor

from ddr_basicsr.losses.vgg_features import VGGFeatureDistanceLoss

DEFAULT_PDL_LAYERS = {'relu1_2': 1.0, 'relu2_2': 1.0, 'relu3_4': 1.0, 'relu4_4': 1.0, 'relu5_4': 1.0}


def channel_wasserstein_per_image(feat_x: Tensor, feat_y: Tensor) -> Tensor:
    """Mean over channels of the 1-D W1 distance between (B, C, H, W) maps' spatial marginals; shape (B,)."""
    sorted_x = feat_x.flatten(2).sort(dim=2).values
    sorted_y = feat_y.flatten(2).sort(dim=2).values
    return (sorted_x - sorted_y).abs().mean(dim=(1, 2))


@LOSS_REGISTRY.register()
class PDLLoss(VGGFeatureDistanceLoss):
    """Projected distribution loss on VGG19 features: loss_weight * sum_l w_l * mean_batch(PDL_l).

    Args:
        loss_weight: lambda_f (1.0 in the DDR paper).
        layer_weights: VGG19 layer name -> weight (default: FDL's five layers, weight 1 each).
        pretrained / weights_path: trunk weights, see ``vgg_features.load_torchvision_state_dict``.
        reduction: ``mean`` / ``sum`` over the batch or ``none``; ``weight`` is one weight per image.
    """

    def __init__(self, loss_weight: float = 1.0, layer_weights: Optional[Dict[str, float]] = None,
                 pretrained: bool = True, weights_path: Optional[str] = None, reduction: str = 'mean') -> None:
        super().__init__(loss_weight, layer_weights, DEFAULT_PDL_LAYERS, pretrained, weights_path, reduction=reduction)

    def layer_distance(self, name: str, feat_output: Tensor, feat_gt: Tensor) -> Tensor:
        return channel_wasserstein_per_image(feat_output, feat_gt)
