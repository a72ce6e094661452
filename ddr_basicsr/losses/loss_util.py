"""BasicSR's loss contract, shared by the plugin's six losses.

Every loss takes ``forward(pred, target=None, weight=None, **kwargs)`` and ``reduction`` in ``none`` / ``mean`` /
``sum`` with BasicSR's meaning: ``none`` keeps one value per image (shape (N,)), ``mean`` and ``sum`` reduce
over the batch, and with a ``weight`` ``mean`` divides by the total weight, as BasicSR's ``weight_reduce_loss``.

``weight`` is BasicSR's element-wise weight, shape (N, 1 or C, H, W), where a loss compares pixels
(``PSNRLoss``). The others compare whole images or deep features (DDR, LPIPS) or feature *distributions*
(contextual loss, PDL, FDL), where a pixel has no term of its own: they take one weight per image, shape (N,)
or (N, 1, 1, 1), and reject an element-wise weight with a ``ValueError`` that says so.
"""
from typing import Optional

import torch
from torch import Tensor

REDUCTIONS = ('none', 'mean', 'sum')


def check_reduction(reduction: str, loss_name: str) -> str:
    """``reduction`` itself when it is one of ``none``, ``mean``, ``sum``; a ValueError naming the choices otherwise."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{loss_name}: unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}")
    return reduction


def check_image_batch(tensor: Tensor, role: str, loss_name: str, channels: Optional[int] = 3,
                      finite: bool = True) -> None:
    """Raise TypeError/ValueError unless ``tensor`` is an (N, C, H, W) batch (C = ``channels``), finite if asked."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f'{loss_name}: {role} must be a torch.Tensor, got {type(tensor).__name__}.')
    if tensor.dim() != 4 or (channels is not None and tensor.shape[1] != channels):
        layout = f'(N, {channels}, H, W)' if channels is not None else '(N, C, H, W)'
        raise ValueError(f'{loss_name}: {role} must be an image batch {layout}, got shape {tuple(tensor.shape)}.')
    if finite and not torch.isfinite(tensor).all():
        raise ValueError(f'{loss_name}: {role} contains NaN or Inf values.')


def check_image_pair(pred: Tensor, target: Optional[Tensor], loss_name: str, min_size: int = 1,
                     channels: Optional[int] = 3, finite: bool = True) -> None:
    """Raise TypeError/ValueError unless ``pred`` and ``target`` are same-shape image batches (finite if asked;
    the check waits for the GPU, so a pixel loss on the training path skips it)."""
    if target is None:
        raise ValueError(f'{loss_name} compares the output with a target: call it as loss(pred, target).')
    check_image_batch(pred, 'output', loss_name, channels, finite)
    check_image_batch(target, 'target', loss_name, channels, finite)
    if pred.shape != target.shape:
        raise ValueError(f'{loss_name}: output {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape; '
                         f'crop or resize them to the same size.')
    if min(pred.shape[-2:]) < min_size:
        raise ValueError(f'{loss_name}: inputs of {pred.shape[-2]}x{pred.shape[-1]} px are too small; use crops of '
                         f'at least {min_size}x{min_size} px' + (' or shallower layers.' if min_size > 1 else '.'))


def per_image_weight(weight: Optional[Tensor], batch: int, loss_name: str, why: str) -> Optional[Tensor]:
    """(N,) weights from one weight per image (shape (N,), (N, 1) or (N, 1, 1, 1)); None stays None.

    ``why`` completes "<loss> cannot take an element-wise weight: it ..." in the error for any other shape.
    """
    if weight is None:
        return None
    if not isinstance(weight, Tensor):
        raise TypeError(f'{loss_name}: weight must be a torch.Tensor, got {type(weight).__name__}.')
    if weight.numel() != batch or (weight.dim() > 0 and weight.shape[0] != batch):
        raise ValueError(f'{loss_name} cannot take an element-wise weight (got shape {tuple(weight.shape)}): it {why}. '
                         f'Pass one weight per image, shape ({batch},) or ({batch}, 1, 1, 1), or weight=None.')
    return weight.reshape(batch)


def elementwise_weight(weight: Optional[Tensor], pred: Tensor, loss_name: str) -> Optional[Tensor]:
    """Check BasicSR's element-wise weight: shape (N, 1 or C, H, W) of ``pred`` (H and W may also be 1)."""
    if weight is None:
        return None
    if not isinstance(weight, Tensor):
        raise TypeError(f'{loss_name}: weight must be a torch.Tensor, got {type(weight).__name__}.')
    n, c, h, w = pred.shape
    if (weight.dim() != 4 or weight.shape[0] != n or weight.shape[1] not in (1, c) or weight.shape[2] not in (1, h)
            or weight.shape[3] not in (1, w)):
        raise ValueError(f'{loss_name}: weight must be element-wise, shape ({n}, 1, {h}, {w}) or ({n}, {c}, {h}, {w}) '
                         f'as in BasicSR\'s L1Loss; got {tuple(weight.shape)}.')
    return weight


def reduce_per_image(values: Tensor, weight: Optional[Tensor], reduction: str) -> Tensor:
    """Reduce (N,) per-image values as BasicSR does: weighted, then kept, summed, or divided by the total weight."""
    if weight is not None:
        values = values * weight
    if reduction == 'none':
        return values
    if reduction == 'sum':
        return values.sum()
    return values.mean() if weight is None else values.sum() / weight.sum()
