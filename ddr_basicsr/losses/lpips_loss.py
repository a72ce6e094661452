"""LPIPS loss (Zhang et al., CVPR 2018) on the ``lpips`` package, a competitor in DDR Tables 4-5.

d(x, y) = sum_l mean_{h,w} || w_l * (unit-normalised phi_l(x) - unit-normalised phi_l(y)) ||^2
on torchvision VGG16 (default: the lpips README advises it for optimisation) or AlexNet
(``net: alex``, the best forward metric). The calibrated linear layers ``w_l`` ship inside the
``lpips`` wheel and are always loaded (no download). The trunk is resolved by
``vgg_features.load_torchvision_state_dict`` like the other feature losses: torchvision's
ImageNet weights (``pretrained``), a local file (``weights_path``: a torchvision vgg16 / alexnet
state dict), or random (``pretrained: false``). Inputs are [0, 1] images; the minimum, 0, is
reached for output == gt.
"""
import warnings
from typing import Optional

import lpips
import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import Tensor, nn

from ddr_basicsr.losses.loss_util import check_image_pair, check_reduction, per_image_weight, reduce_per_image
from ddr_basicsr.losses.vgg_features import AlwaysEvalMixin, load_torchvision_state_dict

LPIPS_TRUNKS = {'vgg': 'vgg16', 'alex': 'alexnet'}
LPIPS_MIN_INPUT_SIZE = {'vgg': 16, 'alex': 31}  # one position left at the deepest layer


def load_lpips_trunk(trunk: nn.Module, state_dict: dict) -> None:
    """Copy ``features.<i>.*`` of a torchvision state dict into lpips' ``slice<k>.<i>.*`` trunk."""
    slice_of_index = {index: slice_name for slice_name, block in trunk.named_children() for index in block._modules}
    mapped = {}
    for key, value in state_dict.items():
        prefix, _, rest = key.partition('.')
        index = rest.split('.', 1)[0]
        if prefix == 'features' and index in slice_of_index:
            mapped[f'{slice_of_index[index]}.{rest}'] = value
    missing = sorted(set(trunk.state_dict()) - set(mapped))
    if missing:
        raise ValueError(f'LPIPS trunk weights do not match the torchvision layout: no entry for {missing[0]} '
                         f'(and {len(missing) - 1} more).')
    trunk.load_state_dict(mapped)


@LOSS_REGISTRY.register()
class LPIPSLoss(AlwaysEvalMixin, nn.Module):
    """loss_weight * mean_batch LPIPS(output, gt) for [0, 1] RGB images.

    Args:
        loss_weight: lambda_f (1.0 in the DDR paper).
        net: ``vgg`` (torchvision VGG16 trunk, default for training) or ``alex``.
        pretrained / weights_path: trunk weights, see ``vgg_features.load_torchvision_state_dict``.
        reduction: ``mean`` / ``sum`` over the batch or ``none`` (one value per image); ``weight`` in
            ``forward`` is one weight per image (see ``loss_util``).
    """

    def __init__(self, loss_weight: float = 1.0, net: str = 'vgg', pretrained: bool = True,
                 weights_path: Optional[str] = None, reduction: str = 'mean') -> None:
        super().__init__()
        self.reduction = check_reduction(reduction, 'LPIPSLoss')
        if net not in LPIPS_TRUNKS:
            raise ValueError(f'LPIPSLoss net must be one of {sorted(LPIPS_TRUNKS)}, got {net!r}.')
        state_dict = load_torchvision_state_dict(LPIPS_TRUNKS[net], pretrained, weights_path)
        with warnings.catch_warnings():  # lpips builds its random trunk with torchvision's deprecated kwarg
            warnings.simplefilter('ignore', UserWarning)
            self.lpips = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
        if state_dict is not None:
            load_lpips_trunk(self.lpips.net, state_dict)
        self.lpips.requires_grad_(False)
        self.loss_weight = loss_weight
        self.net = net
        self.min_input_size = LPIPS_MIN_INPUT_SIZE[net]
        self.eval()

    def forward(self, pred: Tensor, target: Optional[Tensor] = None, weight: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        check_image_pair(pred, target, 'LPIPSLoss', self.min_input_size)
        weight = per_image_weight(weight, pred.shape[0], 'LPIPSLoss',
                                  'averages distances of deep features whose positions are not pixels')
        with torch.autocast(device_type=pred.device.type, enabled=False):
            per_image = self.lpips(pred.float(), target.float(), normalize=True).flatten()
        return self.loss_weight * reduce_per_image(per_image, weight, self.reduction)
