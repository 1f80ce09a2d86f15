"""Learning-rate schedules that end on time: a one-cycle schedule over whichever comes first, the
steps of ``max_epochs`` or the trainer's ``max_time``.

A plain one-cycle schedule is laid over ``max_epochs``; when ``max_time`` stops a run first (a slower
machine than the config was sized on), training ends with the learning rate still high and the model
half annealed. :class:`TimedOneCycle` advances by the larger of the two fractions, steps done of all
steps and time spent of ``max_time`` (less a margin for the last validation and the checkpoint), so the
run anneals fully either way. On a machine fast enough to finish ``max_epochs`` in time, the step
fraction always leads and the schedule is the step-based one-cycle (the same learning rates on every
run, reproducible); only where time binds does it depend on the clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

__all__ = ["one_cycle_factor", "TimedOneCycle"]


def one_cycle_factor(progress: float, pct_start: float = 0.15, div_factor: float = 25.0,
                     final_div_factor: float = 1e4) -> float:
    """The one-cycle learning rate at ``progress`` in [0, 1], as a fraction of the peak (the shape of PyTorch's
    ``OneCycleLR`` with cosine annealing): from ``1 / div_factor`` up to 1 over ``pct_start``, then down
    to ``1 / (div_factor * final_div_factor)``."""
    p = min(max(progress, 0.0), 1.0)
    start, end = 1.0 / div_factor, 1.0 / (div_factor * final_div_factor)

    def cos(a: float, b: float, t: float) -> float:
        return b + (a - b) / 2.0 * (1.0 + math.cos(math.pi * t))

    if p < pct_start:
        return cos(start, 1.0, p / pct_start)
    return cos(1.0, end, (p - pct_start) / (1.0 - pct_start))


class TimedOneCycle(torch.optim.lr_scheduler.LambdaLR):
    """One cycle over ``total_steps`` steps or ``seconds`` of training (``remaining`` gives the seconds
    left, e.g. Lightning's ``Timer.time_remaining``), whichever ends first; the optimiser's learning
    rate is the peak. ``margin`` (a fraction of ``seconds``) is kept free at the end."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, seconds: float | None = None,
                 clock: Callable[[], float] = time.monotonic, margin: float = 0.05, pct_start: float = 0.15) -> None:
        self.total_steps = max(1, int(total_steps))
        self.seconds = None if seconds is None else max(1e-9, float(seconds) * (1.0 - margin))
        self.clock, self.start = clock, None
        self.pct_start = pct_start
        super().__init__(optimizer, self._factor)

    def progress(self, step: int) -> float:
        """The fraction of the cycle done at ``step``: steps, or time where time runs out first."""
        frac = step / self.total_steps
        if self.seconds is not None:
            now = self.clock()
            if self.start is None:
                self.start = now
            frac = max(frac, (now - self.start) / self.seconds)
        return min(frac, 1.0)

    def _factor(self, step: int) -> float:
        return one_cycle_factor(self.progress(step), self.pct_start)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.pop("clock", None)
        return state
