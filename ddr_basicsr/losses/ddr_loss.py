"""DDRLoss: the DDR term of the restoration objective (Eq. 8) for BasicSR's loss registry."""
from typing import Optional, Sequence

import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from ddr_basicsr.core.ddr import DDR
from ddr_basicsr.core.prompts import RESTORATION_DEGRADATIONS, PromptsArgument
from ddr_basicsr.losses.loss_util import check_reduction, per_image_weight, reduce_per_image


@LOSS_REGISTRY.register()
class DDRLoss(nn.Module):
    """loss_weight × (−DDR) of the network output (Eq. 8: L_rec − λ_d·DDR; λ_d = ``loss_weight``).

    DDR here is the mean of DDR_d over the degradation set D (Eq. 7), as in the authors' code, where Eq. 8
    writes the sum over D: the two differ by the factor |D| (3 for the default D = {color, content, blur}),
    so this loss with ``loss_weight`` λ equals the paper's sum with λ / |D|: the mean only rescales λ_d.
    The option files pair the paper's λ_d = 2.0 with the mean, which is what the authors' module returns.

    No reference is needed: ``forward(pred, target=None, weight=None)`` ignores ``target`` so the loss fits
    slots that pass (output, gt). DDR scores whole images, so ``weight`` is one weight per image, (N,) or
    (N, 1, 1, 1); ``reduction`` ``none`` gives one value per image. The frozen CLIP lives in this module, never
    in the restoration network, its optimizer or its checkpoints. On a GPU the CLIP forward and backward
    replay as CUDA graphs (``cuda_graphs``, see ``DDR``): compute the loss once per backward, as a training
    step does.
    ``precision: auto`` (default) runs CLIP in bf16 autocast on a GPU, as the authors' code runs it in
    fp16, and in fp32 on a CPU; 'fp32' forces float32 everywhere.
    ``prompts``: {name: [degraded, clean]}, or the path of a prompt file of ``ddr-tune-prompts`` (``prompts:
    tuned.pt``; then ``degradations`` must be among the file's, and the CLIP the one it was tuned with).
    """

    requires_reference = False

    def __init__(self, loss_weight: float = 1.0, degradations: Optional[Sequence] = RESTORATION_DEGRADATIONS,
                 prompts: Optional[PromptsArgument] = None, model: str = 'ViT-B-32',
                 pretrained: Optional[str] = 'openai', adaptation: bool = True, distance: str = 'cosine',
                 precision: str = 'auto', reduction: str = 'mean', cuda_graphs: bool = True):
        super().__init__()
        self.reduction = check_reduction(reduction, 'DDRLoss')
        self.loss_weight = float(loss_weight)
        self.ddr = DDR(model=model, pretrained=pretrained, degradations=degradations, prompts=prompts,
                       adaptation=adaptation, distance=distance, device='cpu', precision=precision,
                       cuda_graphs=cuda_graphs)

    def forward(self, pred: torch.Tensor, target: Optional[torch.Tensor] = None,
                weight: Optional[torch.Tensor] = None, **kwargs) -> torch.Tensor:
        per_image = -self.ddr.score(pred)
        weight = per_image_weight(weight, per_image.shape[0], 'DDRLoss',
                                  'scores each image as a whole from its CLIP feature (Eq. 1)')
        return self.loss_weight * reduce_per_image(per_image, weight, self.reduction)
