"""Noise schedules: plain tensors of levels ``x_t = alpha_t x_0 + sigma_t eps``, noisiest first.

A schedule is any function ``f(steps, **options) -> Schedule``; :data:`SCHEDULES` names the
built-in ones for option strings (``schedule="log_snr"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ...checks import check_int

__all__ = ["Schedule", "vp_linear_schedule", "log_snr_schedule", "ve_schedule", "SCHEDULES", "make_schedule"]


@dataclass(frozen=True)
class Schedule:
    """Noise levels ``x_t = alpha_t x_0 + sigma_t eps`` from the noisiest (index 0) to the cleanest."""

    alpha: Tensor
    sigma: Tensor

    def __len__(self) -> int:
        return self.alpha.shape[0]

    @property
    def log_snr(self) -> Tensor:
        return 2 * (self.alpha.log() - self.sigma.log())


def vp_linear_schedule(steps: int, beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3) -> Schedule:
    """Variance-preserving schedule with linear beta(t) from ``beta_min`` to ``beta_max`` (DDPM / VP-SDE),
    at ``steps`` times evenly spaced from t = 1 down to ``t_min``."""
    check_int("steps", steps, 1)
    t = torch.linspace(1.0, t_min, steps, dtype=torch.float64)
    log_alpha = -0.25 * t**2 * (beta_max - beta_min) - 0.5 * t * beta_min
    alpha = log_alpha.exp()
    return Schedule(alpha, (1 - alpha**2).sqrt())


def log_snr_schedule(steps: int, lambda_min: float = -2.0, lambda_max: float = 6.0, spacing: str = "linear",
                     power: float = 2.0) -> Schedule:
    """Variance-preserving schedule evenly spaced in log-SNR ``lambda = log(alpha^2 / sigma^2)``
    from ``lambda_min`` to ``lambda_max`` (``spacing="linear"``), or warped towards the clean end
    (``"power"``: ``u ** (1 / power)``) or the noisy end (``"inverse_power"``: ``u ** power``)."""
    check_int("steps", steps, 1)
    if lambda_max < lambda_min:
        raise ValueError(f"lambda_max: expected >= lambda_min ({lambda_min}), got {lambda_max}")
    u = torch.linspace(0.0, 1.0, steps, dtype=torch.float64) if steps > 1 else torch.ones(1, dtype=torch.float64)
    if spacing == "power":
        u = u ** (1 / power)
    elif spacing == "inverse_power":
        u = u**power
    elif spacing != "linear":
        raise ValueError(f"spacing: expected 'linear', 'power' or 'inverse_power', got {spacing!r}")
    lam = lambda_min + (lambda_max - lambda_min) * u
    return Schedule(torch.sigmoid(lam).sqrt(), torch.sigmoid(-lam).sqrt())


def ve_schedule(steps: int, sigma_max: float = 10.0, sigma_min: float = 0.05) -> Schedule:
    """Variance-exploding schedule: ``alpha = 1`` and geometric ``sigma`` from ``sigma_max`` to ``sigma_min``."""
    check_int("steps", steps, 1)
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"sigma_min, sigma_max: expected 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    if steps == 1:
        sig = torch.tensor([sigma_min], dtype=torch.float64)
    else:
        sig = torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), steps, dtype=torch.float64))
    return Schedule(torch.ones_like(sig), sig)


#: the schedules an option string can name; a schedule given as a function is used as it is
SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "log_snr": log_snr_schedule,
    "vp_linear": vp_linear_schedule,
    "ve": ve_schedule,
}


def make_schedule(kind: str | Callable[..., Schedule], steps: int, **kw: Any) -> Schedule:
    """The schedule ``kind`` (a name of :data:`SCHEDULES` or a function) at ``steps`` levels."""
    if callable(kind):
        return kind(steps, **kw)
    if kind not in SCHEDULES:
        raise ValueError(f"schedule: expected 'log_snr', 'vp_linear' or 've', got {kind!r}")
    return SCHEDULES[kind](steps, **kw)
