"""ICNet of IC9600 (Feng et al., TPAMI 2023), the image-complexity model the paper's Table 2 cites [25].

Two ResNet-18 trunks: a detail branch on the 512×512 image (stem + stages 1-2) and a context branch on the image
resized to 256×256 (stem + stages 1-4); a spatial-layout attention module (SLAM: one weight per channel from its
resized spatial map through 1024/256/64 -> 512 -> 1 with a sigmoid) after each stage; both branches upsampled to
64×64, projected to 256 channels and concatenated; the score head (conv-BN-ReLU, SLAM, global average pooling,
MLP 512 -> 512 -> 1, sigmoid) gives the complexity in [0, 1]. Parameter names follow the authors' checkpoint
(``ck.pth``), so it loads strictly. Input: the image resized to 512×512 (bilinear) and ImageNet-normalised, as in
the authors' inference script.

The weights come from the authors' Google Drive (linked from the IC9600 README); they cannot be downloaded here
automatically. :func:`load_icnet` takes a local file, or the file at :func:`default_icnet_path`.
"""
import os
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from ddr_basicsr.losses.vgg_features import IMAGENET_MEAN, IMAGENET_STD

ICNET_INPUT = 512
ICNET_CONTEXT_INPUT = 256
ICNET_FILE = 'ic9600_icnet_ck.pth'
ICNET_SOURCE = 'https://github.com/tinglyfeng/IC9600 (README: "Generating Image Complexity Scores", ck.pth)'


class ICNetWeightsError(FileNotFoundError):
    """The ICNet checkpoint is not where we looked; the message says where to put it."""


def default_icnet_path() -> Path:
    """Where the IC9600 checkpoint is looked for without ``--icnet-weights``: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / 'checkpoints' / ICNET_FILE


class SpatialLayoutAttention(nn.Module):
    """SLAM: scales each channel by a weight computed from its spatial map resized to ``side``×``side``."""

    def __init__(self, side: int):
        super().__init__()
        self.side = side
        self.linear = nn.Sequential(nn.Linear(side * side, 512), nn.ReLU(), nn.Linear(512, 1), nn.Sigmoid())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        maps = features
        if features.shape[-1] != self.side:
            maps = F.interpolate(features, size=(self.side, self.side), mode='bilinear', align_corners=True)
        weights = self.linear(maps.flatten(2))
        return features * weights.unsqueeze(-1)


class ConvBnRelu(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class UpConvBnRelu(ConvBnRelu):
    """Bilinear resize to ``side``×``side``, then a 1×1 conv-BN-ReLU."""

    def __init__(self, side: int, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=1, padding=0)
        self.side = side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, size=(self.side, self.side), mode='bilinear', align_corners=True))


class MapHead(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.to_map = nn.Sequential(nn.Conv2d(channels, 1, kernel_size=1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_map(x)


class ICNet(nn.Module):
    """IC9600's ICNet; ``forward`` returns (complexity score in [0, 1] per image, complexity map).

    ``input_size`` / ``context_size``: the sides of the detail and context inputs (the authors' ``size1`` and
    ``size2``: 512 and 256 for their checkpoint); the branches meet at ``input_size // 8``.
    """

    def __init__(self, input_size: int = ICNET_INPUT, context_size: int = ICNET_CONTEXT_INPUT):
        super().__init__()
        self.input_size, self.context_size = input_size, context_size
        detail, context = list(resnet18().children()), list(resnet18().children())
        self.b1_1, self.b1_1_slam = nn.Sequential(*detail[:5]), SpatialLayoutAttention(32)
        self.b1_2, self.b1_2_slam = detail[5], SpatialLayoutAttention(32)
        self.b2_1, self.b2_1_slam = nn.Sequential(*context[:5]), SpatialLayoutAttention(32)
        self.b2_2, self.b2_2_slam = context[5], SpatialLayoutAttention(32)
        self.b2_3, self.b2_3_slam = context[6], SpatialLayoutAttention(16)
        self.b2_4, self.b2_4_slam = context[7], SpatialLayoutAttention(8)
        self.up1 = UpConvBnRelu(input_size // 8, 128, 256)
        self.up2 = UpConvBnRelu(input_size // 8, 512, 256)
        self.to_map_f, self.to_map_f_slam, self.to_map = ConvBnRelu(512, 512), SpatialLayoutAttention(32), MapHead(512)
        self.to_score_f, self.to_score_f_slam = ConvBnRelu(512, 512), SpatialLayoutAttention(32)
        self.head = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 1), nn.Sigmoid())
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The concatenated detail and context features, (B, 512, input_size / 8, input_size / 8)."""
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f'ICNet takes {self.input_size}x{self.input_size} inputs, got {tuple(x.shape[-2:])}; '
                             'use ddr_basicsr.paper.icnet.complexity')
        small = F.interpolate(x, size=(self.context_size, self.context_size), mode='bilinear', align_corners=True)
        detail = self.b1_2_slam(self.b1_2(self.b1_1_slam(self.b1_1(x))))
        context = self.b2_2_slam(self.b2_2(self.b2_1_slam(self.b2_1(small))))
        context = self.b2_4_slam(self.b2_4(self.b2_3_slam(self.b2_3(context))))
        return torch.cat((self.up1(detail), self.up2(context)), dim=1)

    def score_head(self, features: torch.Tensor) -> torch.Tensor:
        """Complexity score in [0, 1] per image from :meth:`features`."""
        pooled = self.avgpool(self.to_score_f_slam(self.to_score_f(features))).flatten(1)
        return self.head(pooled).flatten()

    def forward(self, x: torch.Tensor):
        joined = self.features(x)
        return self.score_head(joined), self.to_map(self.to_map_f_slam(self.to_map_f(joined)))


def load_icnet(weights_path: Optional[str] = None, device: Optional[str] = None) -> ICNet:
    """ICNet with the authors' weights from ``weights_path`` or :func:`default_icnet_path`, in eval mode, on
    ``device`` (default: CUDA when available).

    Raises :class:`ICNetWeightsError` naming the file to download and where to put it.
    """
    path = Path(os.path.expanduser(weights_path)) if weights_path else default_icnet_path()
    if not path.is_file():
        raise ICNetWeightsError(
            f'IC9600 ICNet weights not found at {path}. Download ck.pth from {ICNET_SOURCE} and put it at '
            f'{default_icnet_path()} (or pass --icnet-weights /path/to/ck.pth).')
    state_dict = torch.load(path, map_location='cpu', weights_only=True)
    model = ICNet()
    model.load_state_dict({key[len('module.'):] if key.startswith('module.') else key: value
                           for key, value in state_dict.items()})
    return model.eval().requires_grad_(False).to(device or ('cuda' if torch.cuda.is_available() else 'cpu'))


@torch.no_grad()
def complexity(model: ICNet, image: torch.Tensor) -> float:
    """Complexity in [0, 1] of a (3, H, W) RGB image in [0, 1]: resized to the model's input (512×512; bilinear,
    antialiased like torchvision's Resize on a PIL image) and ImageNet-normalised, as the authors' inference script
    does; the map head is not computed."""
    device = next(model.parameters()).device
    size = (model.input_size, model.input_size)
    x = F.interpolate(image[None].float().to(device), size=size, mode='bilinear', align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return float(model.score_head(model.features((x - mean) / std))[0])
