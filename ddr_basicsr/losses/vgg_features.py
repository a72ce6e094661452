"""Frozen torchvision trunks shared by the feature-domain losses (DDR paper, Tables 4-5, Eq. 9).

One place resolves trunk weights for LPIPSLoss, ContextualLoss, PDLLoss and FDLLoss:

* ``pretrained=True`` (default): torchvision's ImageNet weights, fetched the normal way into
  ``torch.hub.get_dir()/checkpoints`` (a file already there is used without network access);
* ``weights_path``: a local torchvision state-dict file (e.g. ``vgg19-dcbb9e9d.pth``);
* ``pretrained=False``: random initialisation (tests, benchmarks).

Also here: :class:`VGG19Features`, the VGG19 activations used by CTX/PDL/FDL (ImageNet
normalisation of [0, 1] input inside), and :class:`VGGFeatureDistanceLoss`, their common skeleton.
"""
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torchvision.models import AlexNet_Weights, VGG16_Weights, VGG19_Weights

from ddr_basicsr.losses.loss_util import check_image_pair, check_reduction, per_image_weight, reduce_per_image

TORCHVISION_WEIGHTS = {
    'vgg19': VGG19_Weights.IMAGENET1K_V1,
    'vgg16': VGG16_Weights.IMAGENET1K_V1,
    'alexnet': AlexNet_Weights.IMAGENET1K_V1,
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG19_CONVS_PER_BLOCK = (2, 2, 4, 4, 4)


class AlwaysEvalMixin:
    """``train()`` keeps the module in eval mode: frozen trunks never switch on train behaviour."""

    def train(self, mode: bool = True):
        return super().train(False)


def expected_cache_file(arch: str) -> Path:
    """Where ``torch.hub`` keeps torchvision's ``arch`` weights (``$TORCH_HOME/hub/checkpoints``)."""
    url = TORCHVISION_WEIGHTS[arch].url
    return Path(torch.hub.get_dir()) / 'checkpoints' / url.rsplit('/', 1)[-1]


def load_torchvision_state_dict(arch: str, pretrained: bool = True,
                                weights_path: Optional[str] = None) -> Optional[Dict[str, Tensor]]:
    """Resolve the ImageNet state dict of torchvision's ``arch``; ``None`` means random init.

    Raises FileNotFoundError when ``weights_path`` does not exist, or when the weights are
    neither in the torch hub cache nor downloadable (the message names the file and the fixes).
    """
    if arch not in TORCHVISION_WEIGHTS:
        raise ValueError(f'Unknown trunk {arch!r}; choose one of {sorted(TORCHVISION_WEIGHTS)}.')
    if weights_path is not None:
        if not pretrained:
            raise ValueError('Options conflict: pretrained is false (random init) but weights_path is set; '
                             'drop one of them.')
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f'weights_path {str(path)!r} does not exist; it must be a torchvision '
                                    f'{arch} state dict such as {expected_cache_file(arch).name}.')
        return torch.load(path, map_location='cpu', weights_only=True)
    if not pretrained:
        return None
    url = TORCHVISION_WEIGHTS[arch].url
    try:
        return torch.hub.load_state_dict_from_url(url, map_location='cpu', progress=True, check_hash=True)
    except OSError as err:  # URLError, HTTPError, timeouts: offline machines land here
        cache_file = expected_cache_file(arch)
        raise FileNotFoundError(
            f'Could not download the {arch} ImageNet weights ({err}). Place {url} at {cache_file} '
            f'(or set TORCH_HOME), or set the loss option weights_path to a local copy of '
            f'{cache_file.name}; pretrained: false gives random weights (tests only).') from err


def vgg19_layer_names() -> Tuple[str, ...]:
    """Names of ``torchvision.models.vgg19().features`` by index: conv1_1, relu1_1, ..., pool5."""
    names = []
    for block, convs in enumerate(VGG19_CONVS_PER_BLOCK, start=1):
        for conv in range(1, convs + 1):
            names += [f'conv{block}_{conv}', f'relu{block}_{conv}']
        names.append(f'pool{block}')
    return tuple(names)


VGG19_LAYER_NAMES = vgg19_layer_names()


def build_vgg19_layers(depth: int) -> nn.Sequential:
    """The first ``depth`` modules of torchvision's VGG19 ``features`` (same indices, non-inplace ReLU)."""
    layers, in_channels = [], 3
    for name in VGG19_LAYER_NAMES[:depth]:
        if name.startswith('conv'):
            out_channels = min(64 * 2 ** (int(name[4]) - 1), 512)
            layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
            in_channels = out_channels
        elif name.startswith('relu'):
            layers.append(nn.ReLU(inplace=False))
        else:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def init_like_torchvision(layers: nn.Sequential) -> None:
    """Random init as ``torchvision.models.vgg19(weights=None)`` does for its convolutions."""
    for module in layers:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
            nn.init.zeros_(module.bias)


class VGG19Features(AlwaysEvalMixin, nn.Module):
    """Frozen VGG19 activations at named layers (``conv3_2``, ``relu5_4``, ...) of [0, 1] RGB input.

    Args:
        layers: names from :data:`VGG19_LAYER_NAMES`; the trunk is cut after the deepest one.
        pretrained: torchvision ImageNet weights (True) or random init (False).
        weights_path: local torchvision VGG19 state dict used instead of the download.
        normalize_input: apply ImageNet mean/std inside (input expected in [0, 1]).
    """

    def __init__(self, layers: Sequence[str], pretrained: bool = True, weights_path: Optional[str] = None,
                 normalize_input: bool = True) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG19_LAYER_NAMES]
        if not layers or unknown:
            raise ValueError(f'VGG19 layers must be a non-empty subset of {list(VGG19_LAYER_NAMES)}; '
                             f'got unknown {unknown or "(empty)"}.')
        self.layer_names = tuple(dict.fromkeys(layers))
        self.index_to_name = {VGG19_LAYER_NAMES.index(name): name for name in self.layer_names}
        self.features = build_vgg19_layers(max(self.index_to_name) + 1)
        state_dict = load_torchvision_state_dict('vgg19', pretrained, weights_path)
        if state_dict is None:
            init_like_torchvision(self.features)
        else:
            self._load_features(state_dict, weights_path)
        self.normalize_input = normalize_input
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def _load_features(self, state_dict: Dict[str, Tensor], source: Optional[str]) -> None:
        """Copy ``features.<i>.*`` entries of a torchvision VGG19 state dict into the cut trunk."""
        wanted = self.features.state_dict().keys()
        picked = {key[len('features.'):]: value for key, value in state_dict.items()
                  if key.startswith('features.') and key[len('features.'):] in wanted}
        missing = sorted(set(wanted) - set(picked))
        if missing:
            raise ValueError(f'{source or "downloaded file"} is not a torchvision VGG19 state dict: '
                             f'missing features.{missing[0]} (and {len(missing) - 1} more).')
        self.features.load_state_dict(picked)

    def min_input_size(self, feature_side: int = 1) -> int:
        """Smallest input side giving at least ``feature_side`` positions at the deepest layer."""
        deepest = max(self.index_to_name)
        pools = sum(name.startswith('pool') for name in VGG19_LAYER_NAMES[:deepest])
        return feature_side * 2 ** pools

    def out_channels(self, name: str) -> int:
        """Number of channels of the activation ``name``."""
        convs = [m for m in self.features[:VGG19_LAYER_NAMES.index(name) + 1] if isinstance(m, nn.Conv2d)]
        return convs[-1].out_channels

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        if self.normalize_input:
            x = (x - self.mean) / self.std
        outputs = {}
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self.index_to_name:
                outputs[self.index_to_name[index]] = x
        return outputs


class VGGFeatureDistanceLoss(AlwaysEvalMixin, nn.Module):
    """loss_weight × Σ_l w_l × ``layer_distance`` between VGG19 features (Eq. 9's L_f), reduced over the batch.

    Subclasses implement ``layer_distance(name, feat_output, feat_gt)`` returning one value per image.
    The trunk runs in float32 with autocast off. These losses compare feature distributions, so ``weight``
    is one weight per image (see ``loss_util``); ``reduction`` is ``mean``, ``sum`` or ``none``.
    """

    def __init__(self, loss_weight: float, layer_weights: Optional[Dict[str, float]],
                 default_layers: Dict[str, float], pretrained: bool, weights_path: Optional[str],
                 min_feature_side: int = 1, reduction: str = 'mean') -> None:
        super().__init__()
        self.reduction = check_reduction(reduction, type(self).__name__)
        self.loss_weight = loss_weight
        self.layer_weights = dict(layer_weights or default_layers)
        self.vgg = VGG19Features(list(self.layer_weights), pretrained=pretrained, weights_path=weights_path)
        self.min_input_size = self.vgg.min_input_size(feature_side=min_feature_side)

    def layer_distance(self, name: str, feat_output: Tensor, feat_gt: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, pred: Tensor, target: Optional[Tensor] = None, weight: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        loss_name = type(self).__name__
        check_image_pair(pred, target, loss_name, self.min_input_size)
        weight = per_image_weight(weight, pred.shape[0], loss_name,
                                  'compares distributions of deep features, where no term belongs to one pixel')
        with torch.autocast(device_type=pred.device.type, enabled=False):
            feats_out, feats_gt = self.vgg(pred.float()), self.vgg(target.float())
            per_image = sum(weight_l * self.layer_distance(name, feats_out[name], feats_gt[name])
                            for name, weight_l in self.layer_weights.items())
        return self.loss_weight * reduce_per_image(per_image, weight, self.reduction)
