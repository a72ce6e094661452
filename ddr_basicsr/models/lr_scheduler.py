"""Learning-rate schedules of the official NAFNet and Restormer configs, missing from basicsr 1.4.2.

Both are closed-form in ``last_epoch`` (BasicSR steps them once per iteration from iteration 2 on),
so they stay correct after BasicSR's linear warm-up has overwritten the group learning rates and
after resuming from a saved state.
"""
import math
from itertools import accumulate
from typing import List, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


def _cosine(base: float, eta_min: float, progress: float) -> float:
    """Half-cosine from ``base`` (progress 0) down to ``eta_min`` (progress 1)."""
    return eta_min + 0.5 * (base - eta_min) * (1.0 + math.cos(math.pi * progress))


class TrueCosineAnnealingLR(LRScheduler):
    """Plain cosine annealing without restarts (NAFNet's ``TrueCosineAnnealingLR``).

    lr(t) = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2, with t = ``last_epoch``.
    Past ``T_max`` the rate stays at ``eta_min``.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        if int(T_max) <= 0:
            raise ValueError(f'TrueCosineAnnealingLR: T_max must be a positive number of iterations, got {T_max!r}')
        self.T_max = int(T_max)
        self.eta_min = float(eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        progress = min(self.last_epoch, self.T_max) / self.T_max
        return [_cosine(base, self.eta_min, progress) for base in self.base_lrs]


class CosineAnnealingRestartCyclicLR(LRScheduler):
    """Cosine cycles with a per-cycle floor (Restormer's ``CosineAnnealingRestartCyclicLR``).

    Cycle i covers iterations (C_{i-1}, C_i] with C_i = periods[0] + ... + periods[i] and C_{-1} = 0; there
    lr(t) = eta_mins[i] + restart_weights[i] * (base_lr - eta_mins[i]) * (1 + cos(pi * (t - C_{i-1}) / periods[i])) / 2.
    With Restormer's ``periods [92000, 208000], eta_mins [3e-4, 1e-6]`` and base 3e-4 this is a constant
    3e-4 for 92k iterations, then a cosine down to 1e-6. Past the last cycle the rate stays at its end value.
    """

    def __init__(self, optimizer: Optimizer, periods: Sequence[int], restart_weights: Sequence[float] = (1, ),
                 eta_mins: Sequence[float] = (0, ), last_epoch: int = -1) -> None:
        if not (len(periods) == len(restart_weights) == len(eta_mins)) or not periods:
            raise ValueError('CosineAnnealingRestartCyclicLR: periods, restart_weights and eta_mins need the same '
                             f'non-zero length, got {len(periods)}, {len(restart_weights)} and {len(eta_mins)}')
        if any(int(p) <= 0 for p in periods):
            raise ValueError(f'CosineAnnealingRestartCyclicLR: periods must be positive, got {list(periods)}')
        self.periods = [int(p) for p in periods]
        self.restart_weights = [float(w) for w in restart_weights]
        self.eta_mins = [float(m) for m in eta_mins]
        self.cumulative_periods = list(accumulate(self.periods))
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        t = min(self.last_epoch, self.cumulative_periods[-1])
        cycle = next(i for i, end in enumerate(self.cumulative_periods) if t <= end)
        start = self.cumulative_periods[cycle - 1] if cycle > 0 else 0
        progress = (t - start) / self.periods[cycle]
        eta_min, weight = self.eta_mins[cycle], self.restart_weights[cycle]
        return [eta_min + weight * (_cosine(base, eta_min, progress) - eta_min) for base in self.base_lrs]


SCHEDULERS = {cls.__name__: cls for cls in (TrueCosineAnnealingLR, CosineAnnealingRestartCyclicLR)}
