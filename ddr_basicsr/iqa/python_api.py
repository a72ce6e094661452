"""Blind-IQA DDR from Python as ``ddr-score`` computes it: :func:`iqa_ddr` builds DDR from ``ddr-score``'s options;
:func:`image_files` and :func:`image_tensors` (:mod:`ddr_basicsr.utils.image_files`, :mod:`ddr_basicsr.utils.image_io`)
read images given as files, folders, PIL images or numpy arrays with ``ddr-score``'s decoder and size limits. Used by
the pyiqa metric and the torchmetrics metric."""
from typing import Optional, Sequence, Union

from ddr_basicsr.core.ddr import DDR
from ddr_basicsr.core.prompts import PromptsArgument
from ddr_basicsr.utils.image_files import image_files
from ddr_basicsr.utils.image_io import image_tensors

__all__ = ['image_files', 'image_tensors', 'iqa_ddr']


def iqa_ddr(degradations: Optional[Union[str, Sequence]] = None,
            prompts: Optional[PromptsArgument] = None,
            model: str = 'ViT-B-32', pretrained: Optional[str] = 'openai', device: Optional[str] = None,
            precision: str = 'fp32', adaptation: bool = True, distance: str = 'cosine') -> DDR:
    """DDR as ``ddr-score`` builds it from the same options (default degradations: the paper's blind-IQA set).

    ``prompts``: {name: (degraded, clean)}, a file as ``ddr-score --prompts`` takes it (YAML/JSON, or the
    ``.pt`` prompt file of ``ddr-tune-prompts``), or a :class:`~ddr_basicsr.core.prompts.PromptSet`.
    """
    from ddr_basicsr.iqa.scoring import build_ddr

    return build_ddr(model, pretrained, degradations, prompts, device, precision, adaptation=adaptation,
                     distance=distance)
