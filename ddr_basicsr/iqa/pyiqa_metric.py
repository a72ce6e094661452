"""DDR as a pyiqa metric: ``import ddr_basicsr.iqa.pyiqa_metric`` registers it, then ``pyiqa.create_metric('ddr')``.

Importing this module adds the network ``DDR`` to pyiqa's ``ARCH_REGISTRY`` and the metric ``ddr`` to its
``DEFAULT_CONFIGS`` (no-reference, higher = better), pyiqa's own registration points; no pyiqa function is
replaced. The options of ``create_metric('ddr', ...)`` are those of ``ddr-score`` (:class:`DDRArch`); the score of
a (B, 3, H, W) batch in [0, 1] is the blind-IQA DDR of Eq. 7, differentiable for ``as_loss=True``.
"""
import difflib
from typing import Any, Optional

import torch
from torch import nn

try:
    from pyiqa.default_model_configs import DEFAULT_CONFIGS
    from pyiqa.utils.registry import ARCH_REGISTRY
except ImportError as error:
    raise ImportError(f'the pyiqa metric ddr needs pyiqa ({error}): pip install "ddr-basicsr[iqa]" (pyiqa\'s '
                      'licence is non-commercial)') from error

from ddr_basicsr.iqa.python_api import iqa_ddr

#: The pyiqa metric name and the name of its network in pyiqa's ARCH_REGISTRY.
METRIC_NAME = 'ddr'
ARCH_NAME = 'DDR'
#: ``create_metric('ddr', ...)`` options (``ddr-score``'s model options).
OPTIONS = ('degradations', 'prompts', 'model', 'pretrained', 'precision', 'adaptation', 'distance', 'cuda_graphs')


class DDRArch(nn.Module):
    """pyiqa network of the metric ``ddr``: DDR built from ``ddr-score``'s options
    (:func:`~ddr_basicsr.iqa.python_api.iqa_ddr`).

    pyiqa builds it on the CPU and moves it to the metric's device. ``cuda_graphs`` as in ``DDR``: with
    ``as_loss=True`` on a GPU, call backward once per forward, or pass ``cuda_graphs=False``.
    """

    def __init__(self, degradations=None, prompts=None, model: str = 'ViT-B-32', pretrained: Optional[str] = 'openai',
                 precision: str = 'fp32', adaptation: bool = True, distance: str = 'cosine', cuda_graphs: bool = True,
                 **unknown: Any):
        super().__init__()
        if unknown:
            problems = []
            for name in unknown:
                close = difflib.get_close_matches(name, OPTIONS, n=1)
                problems.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ''))
            raise TypeError(f"Unknown option(s) {', '.join(problems)} for metric '{METRIC_NAME}'. "
                            f"Options: {', '.join(OPTIONS)}.")
        self.ddr = iqa_ddr(degradations, prompts, model, pretrained, 'cpu', precision, adaptation, distance)
        self.ddr.cuda_graphs = cuda_graphs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Blind-IQA DDR (Eq. 7) of each image of a (B, 3, H, W) batch in [0, 1]: Tensor[B]."""
        return self.ddr.score(x)


def register() -> None:
    """Add ``DDR`` to pyiqa's ARCH_REGISTRY and ``ddr`` to its DEFAULT_CONFIGS (once; an unrelated ``ddr`` stays)."""
    if ARCH_NAME not in ARCH_REGISTRY:
        ARCH_REGISTRY.register(DDRArch, name=ARCH_NAME)
    DEFAULT_CONFIGS.setdefault(METRIC_NAME, {
        'metric_opts': {'type': ARCH_NAME},
        'metric_mode': 'NR',
        'lower_better': False,
        'score_range': '~0, ~1',
    })


register()
