"""Deep Degradation Response (Wu, Ni et al., NeurIPS 2024), Sec. 3: torch and open_clip (OpenCV for the pixel-domain
JPEG degradation), no BasicSR."""
import math
import os
from collections import OrderedDict, defaultdict
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ddr_basicsr.core.clip_loading import load_clip
from ddr_basicsr.core.cuda_graphs import GraphedFunction
from ddr_basicsr.core.learned_prompts import LearnedPrompts, PromptFileError
from ddr_basicsr.core.pixel_degradations import DEFAULT_PIXEL_LEVELS, PIXEL_DEGRADATIONS
from ddr_basicsr.core.prompts import DegradationSpec, PromptsArgument, PromptSet

#: Smallest image side we score: below it a CLIP feature says little about the image.
MIN_IMAGE_SIDE = 16
#: Largest absolute pixel value accepted (images are in [0, 1]): far beyond it CLIP's features overflow to NaN.
MAX_INPUT_MAGNITUDE = 1e3
#: Added to std(T) in the adaptation of Eq. 4, as in the authors' code.
ADAPTATION_EPS = 1e-3
DISTANCES = ('cosine', 'l1', 'l2')
#: Image-encoder precisions: autocast dtype of each; 'auto' is bf16 on a GPU and fp32 elsewhere.
PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16, 'auto': None}
DOMAINS = ('feature', 'pixel')

ImageBatch = Union[torch.Tensor, Sequence[torch.Tensor]]
#: What ``quality`` takes besides an ImageBatch: image files, folders, PIL images, numpy arrays, one or a list.
QualityImages = Union[ImageBatch, str, os.PathLike, Sequence[object], object]


def square_patch_offsets(height: int, width: int) -> List[int]:
    """Offsets along the long side of the square patches averaged by the blind-IQA score.

    n = long // short + 1 patches of side ``short``, evenly spaced from 0 with stride
    (long - short) // (n - 1). A square image has a single patch (the reference scores two identical ones).
    """
    short, long = min(height, width), max(height, width)
    if short == long:
        return [0]
    count = long // short + 1
    stride = (long - short) // (count - 1)
    return [index * stride for index in range(count)]


def feature_distance(features: torch.Tensor, degraded: torch.Tensor, distance: str) -> torch.Tensor:
    """Distance between features (N, E) and degraded features (N, D, E), giving (N, D).

    cosine: 1 - cos (the paper's choice); l1: mean absolute difference; l2: mean squared difference.
    """
    if distance == 'cosine':
        return 1 - F.cosine_similarity(features.unsqueeze(1), degraded, dim=-1)
    difference = degraded - features.unsqueeze(1)
    if distance == 'l1':
        return difference.abs().mean(-1)
    return difference.pow(2).mean(-1)


def text_directions(text_features: torch.Tensor, adaptation: bool) -> torch.Tensor:
    """T_d = Φ_t(P_d^-) - Φ_t(P_d^+) (Eq. 3) from the text features of the D degraded prompts followed by the D
    clean ones, pre-normalised for Eq. 4 when ``adaptation`` is on: (D, E)."""
    count = text_features.shape[0] // 2
    directions = text_features[:count] - text_features[count:]
    if adaptation:
        mean = directions.mean(dim=-1, keepdim=True)
        std = directions.std(dim=-1, keepdim=True)
        directions = (directions - mean) / (std + ADAPTATION_EPS)
    return directions


def feature_responses(features: torch.Tensor, directions: torch.Tensor, adaptation: bool,
                      distance: str) -> torch.Tensor:
    """DDR_d (Eq. 1) of image features (N, E) with F_d = F + T̂_d (Eq. 5), T̂_d adapted to F (Eq. 4): (N, D)."""
    directions = directions.unsqueeze(0)
    if adaptation:
        std, mean = torch.std_mean(features, dim=-1, keepdim=True)
        directions = directions * std.unsqueeze(1) + mean.unsqueeze(1)
    return feature_distance(features, features.unsqueeze(1) + directions, distance)


class DDR(nn.Module):
    """DDR of images under text-driven (Eq. 3-5) or pixel-domain (Eq. 2) degradations.

    Args:
        model: open_clip model name (the paper: ViT-B-32).
        pretrained: open_clip tag ('openai'), a local weights file, or None for random weights.
        degradations: Table 7 names, names defined in ``prompts``, or (degraded, clean) pairs.
            None: the paper's restoration set {color, content, blur}, or the keys of ``prompts``.
            With ``domain='pixel'``: names among 'blur', 'noise', 'jpeg'.
        prompts: {name: (degraded, clean)} of words (Eq. 6 template) or full sentences; a YAML/JSON file of
            such a mapping; the path of a ``.pt`` prompt file written by ``ddr-tune-prompts`` (learned context
            vectors, :mod:`ddr_basicsr.core.learned_prompts`): then ``degradations`` are names among the file's
            (None: all of them) and the CLIP must be the one the prompts were tuned on; or a
            :class:`~ddr_basicsr.core.prompts.PromptSet` (all read by ``PromptSet.load``).
        adaptation: align the text direction's statistics to the image feature (Eq. 4). Off, only the cosine
            distance is allowed (Table 8's "w/o adaptation"): l1/l2 would measure |T_d|, the same for every image.
        distance: 'cosine' (paper), 'l1' or 'l2'.
        device: where CLIP runs; None picks CUDA when available.
        precision: 'fp32' (default), 'bf16' / 'fp16' autocast of the image encoder, or 'auto': bf16 on a
            GPU (tensor cores; within 1e-3 relative of fp32 on photos), fp32 on a CPU.
        domain: 'feature' (text-driven, the paper's method) or 'pixel' (handcrafted, Eq. 2).
        pixel_levels: ω_d per pixel degradation (blur sigma px, noise std, JPEG quality).
        seed: seed of the Gaussian noise of the pixel domain.
        cuda_graphs: on a GPU, replay the differentiable text-driven path (the training loss: fixed shapes,
            one backward per forward) as CUDA graphs; same numbers, a fraction of the launch cost.
    """

    def __init__(self, model: str = 'ViT-B-32', pretrained: Optional[str] = 'openai',
                 degradations: Optional[Sequence[DegradationSpec]] = None,
                 prompts: Optional[PromptsArgument] = None, adaptation: bool = True,
                 distance: str = 'cosine', device: Optional[Union[str, torch.device]] = None,
                 precision: str = 'fp32', domain: str = 'feature',
                 pixel_levels: Optional[Mapping[str, float]] = None, seed: int = 0, cuda_graphs: bool = True):
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"unknown distance '{distance}'; choose one of {', '.join(DISTANCES)}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}")
        if domain not in DOMAINS:
            raise ValueError(f"unknown domain '{domain}'; choose 'feature' (Eq. 3-5) or 'pixel' (Eq. 2)")
        if domain == 'feature' and not adaptation and distance != 'cosine':
            raise ValueError(f'adaptation off (--no-adaptation) with the {distance} distance scores every image the '
                             f'same: without Eq. 4 the degraded feature is F + T_d, so |F_d - F| = |T_d| whatever '
                             'the image (a constant score, a zero loss gradient). Use the cosine distance with '
                             'adaptation off (--distance cosine; Table 8\'s "w/o adaptation" row), or keep adaptation '
                             'on to compare distances')
        self.distance = distance
        self.precision = precision
        self.domain = domain
        self.adaptation = adaptation
        self.seed = seed
        self.cuda_graphs = cuda_graphs
        self._graphed_responses = GraphedFunction(self._patch_mean_responses)
        clip = load_clip(model, pretrained)
        self.clip_description = clip.description
        self.image_size = clip.image_size
        self.clip = clip.model.eval().requires_grad_(False)
        self.tokenizer = clip.tokenizer
        self.learned_prompts: Optional[LearnedPrompts] = None
        self.register_buffer('mean', torch.tensor(clip.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(clip.std).view(1, 3, 1, 1), persistent=False)
        if domain == 'feature':
            prompt_set = PromptSet({}) if prompts is None else PromptSet.load(prompts)
            self.learned_prompts = prompt_set.learned
            self.prompts = prompt_set.select(degradations)
            directions = (self._learned_text_directions() if self.learned_prompts else
                          self._text_directions(clip.tokenizer))
            self.register_buffer('text_directions', directions, persistent=False)
        else:
            self.pixel_levels = self._pixel_levels(degradations, pixel_levels)
        if device is None:
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        self._check_device(torch.device(device))
        self.to(device)

    @staticmethod
    def _pixel_levels(degradations, pixel_levels) -> 'OrderedDict[str, float]':
        names = list(degradations or pixel_levels or DEFAULT_PIXEL_LEVELS)
        unknown = [name for name in names if name not in PIXEL_DEGRADATIONS]
        if unknown:
            raise ValueError(f'unknown pixel-domain degradation(s) {unknown}; valid: {", ".join(PIXEL_DEGRADATIONS)}')
        levels = dict(DEFAULT_PIXEL_LEVELS, **(pixel_levels or {}))
        for name in names:
            if not math.isfinite(float(levels[name])):
                raise ValueError(f'pixel_levels[{name!r}] must be a finite number, got {levels[name]}')
        return OrderedDict((name, float(levels[name])) for name in names)

    @torch.no_grad()
    def _text_directions(self, tokenizer) -> torch.Tensor:
        """T_d = Φ_t(P_d^-) - Φ_t(P_d^+) (Eq. 3), pre-normalised for Eq. 4 when adaptation is on: (D, E)."""
        degraded, clean = zip(*self.prompts.values())
        tokens = tokenizer(list(degraded) + list(clean))
        return text_directions(self.clip.encode_text(tokens).float(), self.adaptation)

    @torch.no_grad()
    def _learned_text_directions(self) -> torch.Tensor:
        """Eq. 3 with the learned context vectors of ``learned_prompts``, rows of ``self.prompts``: (D, E)."""
        learner = self.learned_prompts.learner(self.clip, self.tokenizer, self.clip_description)
        directions = text_directions(learner.text_features(self.clip), self.adaptation)
        if not bool(torch.isfinite(directions).all()):
            raise PromptFileError(f'{self.learned_prompts.path}: the context vectors give text features that are not '
                                  'finite (vectors far too large?); tune the prompts again with ddr-tune-prompts')
        rows = [list(self.learned_prompts.prompts).index(name) for name in self.prompts]
        return directions[rows]

    @property
    def degradation_names(self) -> Tuple[str, ...]:
        return tuple(self.prompts if self.domain == 'feature' else self.pixel_levels)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def _apply(self, fn, recurse: bool = True) -> 'DDR':
        """Moving or casting the weights invalidates the CUDA graphs captured with the old ones."""
        self._graphed_responses.clear()
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True) -> 'DDR':
        """CLIP stays frozen in eval mode even when an enclosing module is put in train mode."""
        super().train(mode)
        self.clip.eval()
        return self

    @staticmethod
    def _check_device(device: torch.device) -> None:
        if device.type == 'meta':
            raise ValueError("DDR cannot run on the 'meta' device (it holds no values); use cpu or cuda")

    def _check_images(self, x: torch.Tensor) -> torch.Tensor:
        self._check_device(self.device)
        if not torch.is_tensor(x):
            raise TypeError(f'DDR expects a torch.Tensor of RGB images (B, 3, H, W) in [0, 1], got {type(x).__name__}')
        if x.dim() != 4:
            raise ValueError(f'DDR expects a 4-D tensor (B, 3, H, W), got shape {tuple(x.shape)}; '
                             'for a single image use x.unsqueeze(0)')
        if not x.is_floating_point():
            raise TypeError(f'DDR expects float images in [0, 1], got dtype {x.dtype}; convert with x.float() / 255')
        batch, channels, height, width = x.shape
        if batch == 0:
            raise ValueError('DDR got an empty batch (B = 0)')
        if channels == 1:
            x = x.expand(-1, 3, -1, -1)
        elif channels != 3:
            raise ValueError(f'DDR expects 3 RGB channels (1 grey channel is replicated), got {channels}; '
                             'drop an alpha channel with x[:, :3]')
        if min(height, width) < MIN_IMAGE_SIDE:
            raise ValueError(f'image of {height}x{width} px is too small to score; '
                             f'both sides must be at least {MIN_IMAGE_SIDE} px')
        low, high = torch.stack(torch.aminmax(x.detach())).tolist()  # NaN propagates; no image-sized temporary
        if not -MAX_INPUT_MAGNITUDE <= low <= high <= MAX_INPUT_MAGNITUDE:  # False for NaN too
            if not all(map(math.isfinite, (low, high))):
                raise ValueError('DDR input contains NaN or Inf values; check the images (or the network output)')
            raise ValueError(f'DDR input has values from {low:g} to {high:g}, beyond ±{MAX_INPUT_MAGNITUDE:g}; '
                             'DDR expects images in [0, 1] (divide 8-bit values by 255, clamp the network output)')
        return x.to(device=self.device, dtype=torch.float32)

    def _patches(self, x: torch.Tensor) -> Tuple[torch.Tensor, int]:
        """Square patches (B·n, 3, S, S) resized to the CLIP input size and normalised; n per image."""
        height, width = x.shape[-2:]
        side = min(height, width)
        offsets = square_patch_offsets(height, width)
        if len(offsets) == 1:
            patches = x[..., :side, :side]
        elif height > width:
            patches = torch.stack([x[:, :, top:top + side, :] for top in offsets], dim=1).flatten(0, 1)
        else:
            patches = torch.stack([x[:, :, :, left:left + side] for left in offsets], dim=1).flatten(0, 1)
        if side != self.image_size:
            patches = F.interpolate(patches, size=(self.image_size, self.image_size), mode='bicubic',
                                    align_corners=False, antialias=False)
        return (patches - self.mean) / self.std, len(offsets)

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Image features F = Φ_v(i) (projected, not normalised) of preprocessed pixels, in float32."""
        dtype = PRECISIONS['bf16' if self.precision == 'auto' and pixels.is_cuda else self.precision]
        if dtype is None:  # the pixels take the weights' dtype (float16 after .half())
            pixels = pixels.to(next(self.clip.parameters()).dtype)
        with torch.autocast(device_type=pixels.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return self.clip.encode_image(pixels).float()

    def patch_features(self, x: torch.Tensor) -> Tuple[torch.Tensor, int]:
        """Image features (B·n, E) of the n square patches of each image (image-major), and n."""
        return self._patch_features(self._check_images(x))

    def _patch_features(self, x: torch.Tensor) -> Tuple[torch.Tensor, int]:
        patches, count = self._patches(x)
        return self.encode_images(patches), count

    def _pixel_responses(self, x: torch.Tensor) -> Tuple[torch.Tensor, int]:
        """DDR_d with F_d = Φ_v(D(i, ω_d)) (Eq. 2): (B·n, D) responses of the n patches of each image, and n."""
        generator = torch.Generator(device=x.device).manual_seed(self.seed)
        views = [x] + [PIXEL_DEGRADATIONS[name](x, level, generator) for name, level in self.pixel_levels.items()]
        patches, count = self._patches(torch.cat(views))
        features = self.encode_images(patches).view(len(views), x.shape[0] * count, -1)
        return feature_distance(features[0], features[1:].transpose(0, 1), self.distance), count

    def _patch_mean_responses(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) responses of checked images, averaged over each image's square patches."""
        if self.domain == 'feature':
            features, count = self._patch_features(x)
            responses = feature_responses(features, self.text_directions, self.adaptation, self.distance)
        else:
            responses, count = self._pixel_responses(x)
        return responses.view(x.shape[0], count, -1).mean(dim=1)

    def _replays_graph(self, x: torch.Tensor) -> bool:
        return (self.cuda_graphs and x.is_cuda and self.domain == 'feature' and x.requires_grad
                and torch.is_grad_enabled())

    def response_matrix(self, x: torch.Tensor) -> torch.Tensor:
        """DDR of each image and degradation, (B, D), averaged over square patches for non-square images."""
        x = self._check_images(x)
        if self._replays_graph(x):
            return self._graphed_responses(x, (tuple(x.shape), self.precision, self.distance, self.adaptation))
        return self._patch_mean_responses(x)

    def responses(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """{degradation: DDR_d of each image, Tensor[B]} (Eq. 1); differentiable."""
        matrix = self.response_matrix(x)
        return OrderedDict((name, matrix[:, index]) for index, name in enumerate(self.degradation_names))

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """DDR averaged over the degradation set (Eq. 7), Tensor[B]; differentiable.

        Square images are scored whole. A non-square image, which a ViT cannot take whole, is scored
        as the mean over the evenly spaced square patches of ``square_patch_offsets`` (as ``quality``).
        """
        return self.response_matrix(x).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(x)

    @torch.no_grad()
    def quality_responses(self, images: QualityImages, batch_size: int = 32,
                          channel_order: str = 'RGB') -> Dict[str, torch.Tensor]:
        """Blind-IQA DDR_d of each image with the reference's patch averaging, without autograd.

        ``images``: a (B, 3, H, W) tensor or a list of (3, H, W) / (1, 3, H, W) tensors of any sizes;
        images of equal size are encoded together, ``batch_size`` images per encoder call. Also image files,
        folders, PIL images and numpy arrays (colour channels in ``channel_order``: 'RGB', or 'BGR' for
        OpenCV's), one or a list, read as ``ddr-score`` reads them
        (:func:`ddr_basicsr.utils.image_io.image_tensors`).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f'batch_size must be a positive integer (images per encoder call), got {batch_size!r}')
        if not torch.is_tensor(images):
            from ddr_basicsr.utils.image_io import image_tensors
            images = image_tensors(images, channel_order)
        items = list(images.unbind(0)) if torch.is_tensor(images) and images.dim() == 4 else list(images)
        if not items:
            raise ValueError('quality got no images')
        groups = defaultdict(list)
        for index, image in enumerate(items):
            if torch.is_tensor(image) and image.dim() == 4 and image.shape[0] == 1:
                image = image[0]
            if not torch.is_tensor(image) or image.dim() != 3:
                raise ValueError(f'image {index}: expected a (3, H, W) tensor, got '
                                 f'{tuple(image.shape) if torch.is_tensor(image) else type(image).__name__}')
            groups[tuple(image.shape)].append((index, image))
        matrix = torch.empty(len(items), len(self.degradation_names), device=self.device)
        for members in groups.values():
            for start in range(0, len(members), batch_size):
                chunk = members[start:start + batch_size]
                indices = torch.tensor([index for index, _ in chunk], device=self.device)
                matrix[indices] = self.response_matrix(torch.stack([image for _, image in chunk]))
        return OrderedDict((name, matrix[:, index]) for index, name in enumerate(self.degradation_names))

    @torch.no_grad()
    def quality(self, images: QualityImages, batch_size: int = 32, channel_order: str = 'RGB') -> torch.Tensor:
        """Blind-IQA score (Sec. 4.2): mean over the degradation set of ``quality_responses`` (same inputs),
        Tensor[B]."""
        return torch.stack(list(self.quality_responses(images, batch_size, channel_order).values()),
                           dim=1).mean(dim=1)

    def extra_repr(self) -> str:
        learned = f', learned_prompts={self.learned_prompts.path!r}' if self.learned_prompts else ''
        return (f'clip={self.clip_description!r}, degradations={self.degradation_names}{learned}, '
                f'domain={self.domain}, '
                f'adaptation={self.adaptation}, distance={self.distance}, precision={self.precision}, '
                f'cuda_graphs={self.cuda_graphs}')
