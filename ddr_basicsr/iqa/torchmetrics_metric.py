"""DDR as a torchmetrics ``Metric`` (needs torchmetrics: ``pip install "ddr-basicsr[iqa]"``)."""
from typing import Any, Optional, Tuple, Union

import torch

try:
    from torchmetrics import Metric
    from torchmetrics.utilities.data import dim_zero_cat
except ImportError as error:
    raise ImportError(f'DDRQuality needs torchmetrics ({error}): pip install "ddr-basicsr[iqa]" '
                      '(or pip install torchmetrics)') from error

from ddr_basicsr.core.ddr import DDR, QualityImages
from ddr_basicsr.iqa.python_api import iqa_ddr


class DDRQuality(Metric):
    """Blind-IQA DDR (Eq. 7, higher = better) of the images of every ``update``, as ``ddr-score`` scores them.

    ``update(images)`` takes what ``DDR.quality`` takes: a (B, 3, H, W) RGB tensor in [0, 1], a list of (3, H, W)
    tensors of any sizes, image files, folders, PIL images or numpy arrays (colour channels in ``channel_order``).
    ``compute()`` gives the mean over all images of all processes (per-image scores are gathered with
    ``dist_reduce_fx='cat'``, in rank order), and with ``per_image=True`` the pair (mean, scores).

    Args:
        per_image: ``compute()`` returns (mean, Tensor[N] of per-image scores) instead of the mean.
        ddr: a DDR to use; None builds one from the options below, as ``ddr-score`` does
            (:func:`~ddr_basicsr.iqa.python_api.iqa_ddr`).
        batch_size: images per CLIP encoder call.
        channel_order: 'RGB', or 'BGR' for OpenCV's numpy arrays.
        degradations, prompts, model, pretrained, precision, adaptation, distance: ``ddr-score``'s options.
        kwargs: torchmetrics' own (``sync_on_compute``, ``process_group``, ...).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, per_image: bool = False, ddr: Optional[DDR] = None, batch_size: int = 32,
                 channel_order: str = 'RGB', degradations=None, prompts=None, model: str = 'ViT-B-32',
                 pretrained: Optional[str] = 'openai', precision: str = 'fp32', adaptation: bool = True,
                 distance: str = 'cosine', **kwargs: Any):
        super().__init__(**kwargs)
        self.per_image = per_image
        self.batch_size = batch_size
        self.channel_order = channel_order
        self.ddr = ddr if ddr is not None else iqa_ddr(degradations, prompts, model, pretrained, 'cpu', precision,
                                                       adaptation, distance)
        self.add_state('scores', default=[], dist_reduce_fx='cat')

    def update(self, images: QualityImages) -> None:
        """Score ``images`` and keep their scores."""
        self.scores.append(self.ddr.quality(images, self.batch_size, self.channel_order).to(self.device))

    def compute(self) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """The mean score, or (mean, per-image scores) with ``per_image=True``."""
        if isinstance(self.scores, list) and not self.scores:
            raise ValueError('DDRQuality.compute() before any update(images): no image has been scored')
        scores = dim_zero_cat(self.scores)
        mean = scores.mean()
        return (mean, scores) if self.per_image else mean
