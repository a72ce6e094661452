"""BasicSR's own restoration models with extra loss blocks: ``model_type: DDR<BasicSR model>``.

For each BasicSR model family that trains a restoration network with a pixel loss there is a subclass named
``DDR`` + its name (:data:`FAMILIES`): it trains exactly as BasicSR's model (its blocks, discriminator,
Real-ESRGAN's on-the-fly degradations and USM-sharpened targets, SwinIR's padding, the video models' frames) and
adds every ``train.<name>_opt`` block that BasicSR's model does not read (``ddr_opt``, ``lpips_opt``, ...) to the
generator objective (Eq. 8 for DDR), logged as ``l_<name>`` beside BasicSR's terms (``l_g_pix``, ``l_g_percep``,
``l_g_gan``, ``l_d_real``, ``l_d_fake``). The plugin's training guarantees come with
:class:`~ddr_basicsr.models.training_guarantees.TrainingGuaranteesMixin`.

The extra terms ride on BasicSR's pixel criterion, which every one of these models calls once per generator step
as ``cri_pix(output, gt)``: :class:`PixelWithExtraTerms` returns the pixel loss plus the extra terms. DDR (no
reference) sees the generator output only, never the ground truth or its USM-sharpened copy; video outputs
``(b, t, c, h, w)`` are scored frame by frame. A non-finite pixel or extra term stops training before the update.
"""
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional

import torch
from basicsr.utils.registry import MODEL_REGISTRY
from torch import Tensor, nn

from ddr_basicsr.models.optimizers import OptimizerChoicesMixin
from ddr_basicsr.models.restoration_model import NonFiniteLossError, build_loss_block, loss_terms
from ddr_basicsr.models.training_guarantees import TrainingGuaranteesMixin
from ddr_basicsr.training.loss_blocks import loss_block_keys, loss_keys_read_by
from ddr_basicsr.training.real_esrgan_cpu import on_device

#: BasicSR models that get a ``DDR`` variant. Not HiFaceGANModel / StyleGAN2Model: they generate faces from
#: latents or parsing maps rather than restore a degraded image, which is what DDR's training objective is for.
FAMILIES = ('SRGANModel', 'ESRGANModel', 'RealESRNetModel', 'RealESRGANModel', 'SwinIRModel', 'EDVRModel',
            'VideoRecurrentModel', 'VideoGANModel', 'VideoRecurrentGANModel')


def _frames(images: Optional[Tensor]) -> Optional[Tensor]:
    """Video batches ``(b, t, c, h, w)`` as ``(b * t, c, h, w)`` frames; images unchanged."""
    return images.flatten(0, 1) if images is not None and images.dim() == 5 else images


class PixelWithExtraTerms(nn.Module):
    """BasicSR's pixel criterion plus the extra loss blocks; keeps the last extra terms for the log."""

    def __init__(self, pixel: nn.Module, extras: Dict[str, nn.Module]) -> None:
        super().__init__()
        self.pixel = pixel
        self.extras = nn.ModuleDict(extras)
        self.last_terms: 'OrderedDict[str, Tensor]' = OrderedDict()

    def forward(self, output: Tensor, gt: Optional[Tensor], *args: Any, **kwargs: Any) -> Tensor:
        pixel = self.pixel(output, gt, *args, **kwargs)
        self.last_terms = loss_terms(self.extras, _frames(output), _frames(gt))
        values = OrderedDict([('pixel_opt', pixel), *self.last_terms.items()])
        bad = [name for name, value in values.items() if not bool(value.detach().isfinite().all())]
        if bad:
            raise NonFiniteLossError(f"the loss term {', '.join(bad)} is not finite; training stopped before the "
                                     'update (the newest checkpoint stays the last good one). Lower the learning '
                                     'rate or the loss weight')
        return pixel + sum(self.last_terms.values())

    def take_terms(self) -> 'OrderedDict[str, Tensor]':
        """The extra terms of the last call (empty when the generator was not stepped since)."""
        terms, self.last_terms = self.last_terms, OrderedDict()
        return terms


def extra_loss_keys(model_cls: type, train_opt: Mapping) -> List[str]:
    """The loss blocks of ``train_opt`` that BasicSR's model behind ``model_cls`` does not read."""
    read = loss_keys_read_by(model_cls) or ()
    return [key for key in loss_block_keys(train_opt) if key not in read]


def _model_device(opt: Mapping) -> torch.device:
    return torch.device('cuda' if opt.get('num_gpu', 0) != 0 else 'cpu')


class ExtraLossBlocksMixin:
    """Adds the extra loss blocks of ``train`` to a BasicSR model's generator objective (module docstring), and
    runs Real-ESRGAN's data pipeline on a CPU model (:func:`ddr_basicsr.training.real_esrgan_cpu.on_device`)."""

    def __init__(self, opt: dict) -> None:
        with on_device(type(self), _model_device(opt)):
            super().__init__(opt)

    def feed_data(self, data: dict) -> None:
        with on_device(type(self), self.device):
            super().feed_data(data)

    def init_training_settings(self) -> None:
        super().init_training_settings()
        train_opt = self.opt['train']
        extras = OrderedDict((key[:-len('_opt')], build_loss_block(key, train_opt[key]).to(self.device))
                             for key in extra_loss_keys(type(self), train_opt))
        if not extras:
            return
        if getattr(self, 'cri_pix', None) is None:
            raise ValueError(f"{type(self).__name__} adds {', '.join(f'train.{k}_opt' for k in extras)} to the "
                             "generator objective through BasicSR's pixel loss: add pixel_opt (e.g. "
                             '{type: L1Loss, loss_weight: 1.0})')
        self.cri_pix = PixelWithExtraTerms(self.cri_pix, extras)

    def optimize_parameters(self, current_iter: int) -> None:
        super().optimize_parameters(current_iter)
        if not isinstance(getattr(self, 'cri_pix', None), PixelWithExtraTerms):
            return
        terms = self.cri_pix.take_terms()
        if terms:
            reduced = self.reduce_loss_dict(terms)
            pixel_key = 'l_g_pix' if 'l_g_pix' in self.log_dict else 'l_pix'
            self.log_dict[pixel_key] -= sum(reduced.values())
            self.log_dict.update(reduced)


def _plugin_variant(base_name: str) -> type:
    base = MODEL_REGISTRY.get(base_name if base_name in MODEL_REGISTRY else f'{base_name}_basicsr')
    doc = (f"BasicSR's {base_name} with the plugin's extra loss blocks (``ddr_opt``, ...), optimizer and schedule "
           'choices, and training guarantees.')
    return type(f'DDR{base_name}', (ExtraLossBlocksMixin, OptimizerChoicesMixin, TrainingGuaranteesMixin, base),
                {'__module__': __name__, '__doc__': doc})


for _base_name in FAMILIES:
    _variant = _plugin_variant(_base_name)
    MODEL_REGISTRY.register(_variant)
    globals()[_variant.__name__] = _variant
