"""DDR as a no-reference BasicSR validation metric (blind-IQA score, Sec. 3.3 / Eq. 7; higher is better).

Option file::

    val:
      metrics:
        ddr:
          type: calculate_ddr
          better: higher                 # BasicSR's default; DDR grows with quality
          degradations: [color, noise, blur, exposure]   # default: the paper's BIQA set
          # model: ViT-B-32, pretrained: openai, prompts: {name: [degraded, clean]}, device: cuda, precision: fp32
          # adaptation: false                            # Eq. 4 off (Table 8's ablation; cosine distance only)
          # prompts: tuned.pt                            # a prompt file of ddr-tune-prompts

``calculate_ddr`` follows ``calculate_psnr``'s convention: ``img`` is what ``tensor2img`` gives
(uint8, BGR, HWC, [0, 255]); ``img2`` (the ground truth) is ignored. ``calculate_ddr_pt`` takes
RGB tensors (N, 3, H, W) in [0, 1] like ``calculate_psnr_pt`` and returns one score per image.
The DDR model (CLIP) is built once per process and per set of options (:func:`get_ddr`).
"""

from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from basicsr.metrics.metric_util import reorder_image
from basicsr.utils.registry import METRIC_REGISTRY

from ddr_basicsr.core.ddr import DDR
from ddr_basicsr.core.prompts import BIQA_DEGRADATIONS, PromptsArgument

_DDR_MODELS: Dict[Tuple, DDR] = {}


def _freeze(value):
    if isinstance(value, Mapping):
        return tuple(sorted((str(key), _freeze(item)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(item) for item in value)
    return value


def get_ddr(model: str = 'ViT-B-32', pretrained: Optional[str] = 'openai',
            degradations: Optional[Union[str, Sequence]] = BIQA_DEGRADATIONS,
            prompts: Optional[PromptsArgument] = None, device: Optional[str] = None,
            precision: str = 'fp32', adaptation: bool = True, distance: str = 'cosine') -> DDR:
    """The DDR model for these options, built on first use and then reused (one CLIP per process)."""
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    key = _freeze((model, pretrained, degradations, prompts, str(torch.device(device)), precision, adaptation,
                   distance))
    if key not in _DDR_MODELS:
        _DDR_MODELS[key] = DDR(model=model, pretrained=pretrained, degradations=degradations, prompts=prompts,
                               device=device, precision=precision, adaptation=adaptation, distance=distance)
    return _DDR_MODELS[key]


def _ddr_options(kwargs: Mapping) -> dict:
    names = ('model', 'pretrained', 'degradations', 'prompts', 'device', 'precision', 'adaptation', 'distance')
    return {name: kwargs[name] for name in names if name in kwargs}


def resolve_weights(**kwargs) -> None:
    """Load the CLIP weights a ``calculate_ddr`` block needs (called before a run writes anything)."""
    get_ddr(**_ddr_options(kwargs))


@METRIC_REGISTRY.register()
def calculate_ddr(img: np.ndarray, img2: Optional[np.ndarray] = None, input_order: str = 'HWC',
                  **kwargs) -> float:
    """Blind-IQA DDR of one image (higher = better quality).

    Args:
        img: image in [0, 255] (uint8 or float), BGR channel order as written by ``tensor2img``;
            (H, W, 3), (3, H, W) with ``input_order='CHW'``, or grey (H, W) / (H, W, 1).
        img2: ignored (DDR needs no reference); accepted so paired validation sets work.
        input_order: 'HWC' or 'CHW'.
        kwargs: DDR options from the metric's option block (model, pretrained, degradations, prompts,
            device, precision, adaptation, distance); BasicSR's own keys such as ``better`` are ignored.
    """
    if input_order not in ('HWC', 'CHW'):
        raise ValueError(f"Wrong input_order {input_order}. Supported input_orders are 'HWC' and 'CHW'")
    if not isinstance(img, np.ndarray):
        raise TypeError(f'calculate_ddr expects a numpy image in [0, 255] (from tensor2img), got '
                        f'{type(img).__name__}; use calculate_ddr_pt for tensors in [0, 1]')
    image = reorder_image(img, input_order=input_order)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] != 3:
        raise ValueError(f'calculate_ddr expects 1 or 3 channels, got image of shape {img.shape}')
    rgb = np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1), dtype=np.float32) / 255.0
    ddr = get_ddr(**_ddr_options(kwargs))
    return float(ddr.quality(torch.from_numpy(rgb)[None])[0])


@METRIC_REGISTRY.register()
def calculate_ddr_pt(img: torch.Tensor, img2: Optional[torch.Tensor] = None, **kwargs) -> torch.Tensor:
    """Blind-IQA DDR of RGB images (N, 3, H, W) in [0, 1]; returns a float tensor (N,). ``img2`` is ignored."""
    ddr = get_ddr(**_ddr_options(kwargs))
    return ddr.quality(img.float()).to(img.device)


calculate_ddr.resolve_weights = resolve_weights
calculate_ddr_pt.resolve_weights = resolve_weights
