"""The loss blocks of a ``train`` section (``*_opt``): which are enabled, which BasicSR's models read, and the
losses the pre-flight built ahead for the model (:func:`ddr_basicsr.host.preflight.resolve_weights`)."""
import json
from typing import Any, Dict, List, Mapping, Optional, Tuple

LOSS_BLOCK_SUFFIX = '_opt'

# Loss blocks read by basicsr 1.4.2's own models (for a basicsr model, the first class of its MRO found here decides).
STOCK_MODEL_LOSS_KEYS = {
    'SRModel': ('pixel_opt', 'perceptual_opt'),
    'SRGANModel': ('pixel_opt', 'ldl_opt', 'perceptual_opt', 'gan_opt'),
    'HiFaceGANModel': ('pixel_opt', 'perceptual_opt', 'feature_matching_opt', 'gan_opt'),
    'VideoRecurrentGANModel': ('pixel_opt', 'perceptual_opt', 'gan_opt'),
    'StyleGAN2Model': ('gan_opt', ),
}

#: Loss modules built by the pre-flight, by :func:`loss_block_key`, until the model takes them.
PREBUILT_LOSSES: Dict[str, Any] = {}


def loss_block_keys(train_opt: Mapping) -> List[str]:
    """Keys of the enabled loss blocks (``*_opt`` with a non-empty value) of a ``train`` section, in file order."""
    return [key for key, value in train_opt.items() if key.endswith(LOSS_BLOCK_SUFFIX) and value]


def loss_keys_read_by(model_cls: type) -> Optional[Tuple[str, ...]]:
    """Loss blocks that BasicSR's model behind ``model_cls`` reads (the first basicsr class of its MRO in
    ``STOCK_MODEL_LOSS_KEYS``); None for models neither from basicsr nor from this plugin (they may read more)."""
    if not model_cls.__module__.startswith(('basicsr.', 'ddr_basicsr.')):
        return None
    for cls in model_cls.__mro__:
        if cls.__module__.startswith('basicsr.') and cls.__name__ in STOCK_MODEL_LOSS_KEYS:
            return STOCK_MODEL_LOSS_KEYS[cls.__name__]
    return None


def loss_block_key(block: Mapping) -> str:
    """A key that is equal for equal loss blocks (nested options included)."""
    return json.dumps(block, sort_keys=True, default=repr)


def take_prebuilt_loss(block: Mapping) -> Optional[Any]:
    """The loss the pre-flight built for ``block`` (once; None when there is none)."""
    return PREBUILT_LOSSES.pop(loss_block_key(block), None)
