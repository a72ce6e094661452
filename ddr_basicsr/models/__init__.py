"""ddr-basicsr models: the modules imported here register into BasicSR's registries (once, on import)."""
from ddr_basicsr.models import extra_loss_model  # noqa: F401 (registers the DDR<family> models)
from ddr_basicsr.models.lr_scheduler import CosineAnnealingRestartCyclicLR, TrueCosineAnnealingLR
from ddr_basicsr.models.restoration_model import RestorationModel

__all__ = ['CosineAnnealingRestartCyclicLR', 'TrueCosineAnnealingLR', 'RestorationModel']
