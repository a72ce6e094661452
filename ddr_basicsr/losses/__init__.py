"""ddr-basicsr losses: every `*_loss.py` here registers into BasicSR's registry on import."""
from ddr_basicsr import compat  # noqa: F401  (must precede any basicsr import)
from ddr_basicsr.registration import import_modules_with_suffix

registered_modules = import_modules_with_suffix(__name__, __file__, 'loss')
