"""The guarantees below the models: atomic checkpoints, exact resume, preemption, distributed start, and the
option checks and loss-block helpers the models run. It knows BasicSR's utilities, not its seam (ddr_basicsr.host).
"""
import sys


def tell(message: str) -> None:
    """Print a note of the plugin on standard error (BasicSR's logger is not set up yet when most are made)."""
    print(f'[ddr-basicsr] {message}', file=sys.stderr, flush=True)
