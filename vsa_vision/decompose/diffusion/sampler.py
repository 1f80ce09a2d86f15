"""The coupled diffusion decomposer: K reverse diffusions, one per factor, each guided by the
reconstruction energy through ``s``, composed from the parts of this package.

One iteration is one guided step of all K factors (the same unit as a resonator sweep): for each
factor k in turn, ``u_k = s * prod_{j != k} x_j`` (:class:`~vsa_vision.vsa.LeaveOneOut`, newest
estimates first with sequential coupling), the guidance ``g_k`` of the energy, the posterior weights
of the factor's codebook prior with ``g_k`` in the logits (or DPS), one DDIM step of the state, and
the new estimate ``x_k = w_k X_k`` (or its sign, ``estimate="sign"``). After a pass of ``steps``
levels the estimates are re-noised to the restart level and the pass runs again, within the budget
(:func:`plan_levels`).

Precision: float16 and bfloat16 problems are solved in float32 (``compute_dtype``; the exponents
of the schedule's ``1 / sigma^2`` and the posterior's floors do not fit in float16), the answer
returned in their dtype. Batch invariance: on a real-valued target the matrix products (guidance,
estimates, the latent space's projections) are summed in float64 and rounded to the working dtype
(:func:`~vsa_vision.vsa.rowwise_matmul`), so a row's state does not depend on the batch except
with a probability of about 2**-29 a product entry; on an integer-valued target (bipolar, flipped
or not) they run in the working dtype, whose last bits can depend on the batch size (the answers
are the same alone and batched on every such problem measured).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from ...vsa import Codebooks, LeaveOneOut, is_exact_integer, rowwise_matmul, sign
from ..base import Capabilities, IterativeDecomposer, State, Step
from ..noise import ProblemNoise
from .config import DiffusionConfig
from .defaults import ADAPTIVE_OPTIONS, anchors_in_force, auto_settings
from .denoisers import SPACES, CodebookSpace, posterior_weights
from .energies import ENERGIES, normalize_guidance
from .schedules import SCHEDULES, Schedule, make_schedule

__all__ = ["ddim_step", "Plan", "plan_levels", "DiffusionState", "DiffusionDecomposer"]


def ddim_step(x: Tensor, x0: Tensor, alpha: float, sigma: float, alpha_next: float, sigma_next: float,
              eta: float = 0.0, noise: Tensor | None = None) -> Tensor:
    """One DDIM step from level ``(alpha, sigma)`` to ``(alpha_next, sigma_next)`` given the denoised
    estimate ``x0``. ``eta = 0``: deterministic; ``eta = 1``: the DDPM ancestral step (posterior
    q(x_next | x, x0)); ``noise`` is the standard normal draw (same shape as ``x``) when ``eta > 0``."""
    eps = (x - alpha * x0) / sigma
    c = 0.0
    if eta > 0:
        ratio = (alpha * sigma_next) / (alpha_next * sigma)
        c = eta * sigma_next * math.sqrt(max(0.0, 1.0 - ratio**2))
    out = alpha_next * x0 + math.sqrt(max(0.0, sigma_next**2 - c**2)) * eps
    if c > 0:
        out = out + c * noise
    return out


@dataclass(frozen=True)
class Plan:
    """The level of every iteration of the budget: current (alpha, sigma), next (alpha, sigma), and
    whether the state is re-noised (a restart) before the step."""

    alpha: list[float]
    sigma: list[float]
    alpha_next: list[float]
    sigma_next: list[float]
    renoise: list[bool]
    passes: int


def plan_levels(schedule: Schedule, iterations: int, restart: float, restarts: int | None) -> Plan:
    """Lay ``iterations`` steps over passes of ``schedule``: the last step of a pass goes on to the
    clean end (alpha = 1, sigma = 0); a new pass starts at the fraction ``restart`` of the schedule
    (1 = its noisiest level) after re-noising; after ``restarts`` restarts (None: no limit) the
    budget left repeats the cleanest level (pure cleanup steps)."""
    al, sg = schedule.alpha.tolist() + [1.0], schedule.sigma.tolist() + [0.0]
    T = len(schedule)
    start = min(T - 1, int(round((1.0 - restart) * T)))  # restart level index
    A, S, An, Sn, R = [], [], [], [], []
    i, passes, renoise = 0, 1, False
    for it in range(iterations):
        A.append(al[i]), S.append(sg[i]), An.append(al[i + 1]), Sn.append(sg[i + 1]), R.append(renoise)
        renoise = False
        i += 1
        if i == T and it + 1 < iterations:  # a pass ended with budget left
            if restarts is not None and passes > restarts:
                i = T - 1
            else:
                i, passes, renoise = start, passes + 1, True
    return Plan(A, S, An, Sn, R, passes)


@dataclass
class DiffusionState(State):
    """Per row: ``h`` ``[A, sum n_k]`` the states of all factors in the sampler's space (concatenated
    in factor order), ``w`` the posterior weights, ``x`` ``[A, K * D]`` the estimates ``w_k X_k``."""

    h: Tensor
    w: Tensor
    x: Tensor


@dataclass
class _Context:
    """What one call shares across rows and iterations."""

    plan: Plan
    noise: ProblemNoise
    settings: dict[str, Any]
    space: CodebookSpace
    energy: Any
    eta: float
    #: ``s`` is integer-valued: products in the working dtype (else summed in float64)
    integer: bool = True
    #: the energy's ``guidance`` takes ``exact=`` (the built-in ones do)
    energy_exact: bool = False


class DiffusionDecomposer(IterativeDecomposer):
    """Coupled diffusion decomposer: ``get_decomposer("diffusion", space="latent", energy="gaussian")``,
    or ``DiffusionDecomposer(DiffusionConfig(...))``. The options are those of
    :class:`~vsa_vision.decompose.diffusion.DiffusionConfig`, readable as attributes (``d.space``).
    The adaptive ones left unset are chosen per call: :meth:`settings` shows them for given codebooks.

    State (for callbacks): :class:`DiffusionState`."""

    name = "diffusion"
    capabilities = Capabilities(stochastic=True, chains=True, adaptive=True)
    config_class = DiffusionConfig
    compute_dtype = torch.float32

    def __init__(self, config: DiffusionConfig | None = None, /, **options: Any) -> None:
        if config is not None and not isinstance(config, DiffusionConfig):
            raise TypeError(f"config: expected a DiffusionConfig, got {type(config).__name__}")
        cfg = DiffusionConfig(**options) if config is None else replace(config, **options)
        super().__init__(cfg.iterations, cfg.seed, cfg.keep_best, cfg.stop_similarity, cfg.sign_invariant,
                         cfg.record_trajectory)
        self._set_chains(cfg.chains)
        self.config = cfg

    def __getattr__(self, name: str) -> Any:
        cfg = self.__dict__.get("config")
        if cfg is not None and name in DiffusionConfig.option_names():
            return getattr(cfg, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def options(self) -> dict[str, Any]:
        return self.config.as_dict()

    # -- settings, schedule and plan -----------------------------------------------------------

    def settings(self, codebooks: Codebooks | None = None) -> dict[str, Any]:
        """The adaptive options (:data:`ADAPTIVE_OPTIONS`) this decomposer uses on ``codebooks``:
        the ones given explicitly, the others from :func:`auto_settings` for that problem shape
        (without codebooks: the lightest anchor's)."""
        given = {k: getattr(self.config, k) for k in ADAPTIVE_OPTIONS if getattr(self.config, k) is not None}
        if len(given) == len(ADAPTIVE_OPTIONS):
            return given
        if codebooks is None:
            light = min(anchors_in_force(), key=lambda a: a.load)
            auto = {k: light.get(k) for k in ADAPTIVE_OPTIONS}
        else:
            auto = auto_settings(codebooks.sizes, codebooks.dim)
        out = {**auto, **given}
        if out["lambda_max"] < out["lambda_min"]:  # one end given, the other adapted past it
            if "lambda_max" in given:
                out["lambda_min"] = out["lambda_max"]
            else:
                out["lambda_max"] = out["lambda_min"]
        return out

    def noise_schedule(self, codebooks: Codebooks | None = None, settings: dict[str, Any] | None = None) -> Schedule:
        """The per-pass schedule: the ``steps`` levels at which the denoiser is evaluated, noisiest
        first; the last step of a pass goes on to the clean end (alpha = 1, sigma = 0)."""
        cfg = self.settings(codebooks) if settings is None else settings
        fn = self.config.schedule
        fn = SCHEDULES[fn] if isinstance(fn, str) else fn
        # the schedule gets the options it takes (log-SNR: its range, adapted, and its spacing)
        offered = {"lambda_min": cfg["lambda_min"], "lambda_max": cfg["lambda_max"], "spacing": self.config.spacing}
        params = inspect.signature(fn).parameters
        return make_schedule(fn, cfg["steps"], **{k: v for k, v in offered.items() if k in params})

    def plan(self, codebooks: Codebooks | None = None, settings: dict[str, Any] | None = None) -> Plan:
        """The level of each of the ``iterations`` guided steps, restarts included."""
        cfg = self.settings(codebooks) if settings is None else settings
        return plan_levels(self.noise_schedule(codebooks, cfg), self.iterations, cfg["restart"], self.config.restarts)

    # -- the sampler ---------------------------------------------------------------------------

    def _setup(self, s: Tensor, cb: Codebooks) -> _Context:
        c = self.config
        settings = self.settings(cb)
        space = SPACES[c.space](cb) if isinstance(c.space, str) else c.space(cb)
        energy = c.energy
        if isinstance(energy, str):
            energy = ENERGIES[energy](gamma=c.gamma) if energy == "gaussian" else ENERGIES[energy]()
        eta = 1.0 if c.step == "ddpm" else settings["eta"]
        integer = is_exact_integer(s, cb.dim)
        if hasattr(space, "exact"):
            space.exact = integer
        takes_exact = "exact" in inspect.signature(energy.guidance).parameters
        return _Context(self.plan(cb, settings), self._noise(s), settings, space, energy, eta, integer, takes_exact)

    def _init(self, s, cb, ctx: _Context, rows) -> DiffusionState:
        hs = [ctx.plan.sigma[0] * ctx.space.draw(ctx.noise, rows, -1, k, 0, n) for k, n in enumerate(cb.sizes)]
        zeros = [torch.zeros(s.shape[0], n, dtype=s.dtype, device=s.device) for n in cb.sizes]
        x = torch.zeros(s.shape[0], cb.num_factors * cb.dim, dtype=s.dtype, device=s.device)
        return DiffusionState(torch.cat(hs, 1), torch.cat(zeros, 1), x)

    def _guidance(self, ctx: _Context, u: Tensor, x: Tensor, others_sq: Tensor | None, X: Tensor) -> Tensor:
        if ctx.energy_exact:
            g = ctx.energy.guidance(u, x, others_sq, X, exact=ctx.integer)
        else:
            g = ctx.energy.guidance(u, x, others_sq, X)
        null = u.norm(dim=-1, keepdim=True) / X.shape[1] if self.config.normalize == "null" else None
        return ctx.settings["guidance_scale"] * normalize_guidance(g, self.config.normalize, null, self.config.clip)

    def _step(self, state: DiffusionState, s, cb, ctx: _Context, it, rows) -> Step:
        c, plan, space = self.config, ctx.plan, ctx.space
        a, sg, an, sn = plan.alpha[it], plan.sigma[it], plan.alpha_next[it], plan.sigma_next[it]
        sizes = cb.sizes
        hs = list(state.h.split(sizes, 1))
        if plan.renoise[it]:
            ws = state.w.split(sizes, 1)
            hs = [a * space.mean(k, ws[k]) + sg * space.draw(ctx.noise, rows, it, k, 1, n)
                  for k, n in enumerate(sizes)]
        xs = list(state.x.split(cb.dim, 1))  # the estimates w_k X_k of the last step (kept, not recomputed)
        unbind = LeaveOneOut(xs, start=s)
        squares = LeaveOneOut([x * x for x in xs]) if ctx.energy.needs_squares else None
        sequential = c.coupling == "sequential"
        new_h, new_w, new_x = [], [], []
        for k, X in enumerate(cb.tensors):
            o2 = None if squares is None else squares.others(k)
            if squares is not None and o2 is None:
                o2 = torch.ones_like(s)
            g = self._guidance(ctx, unbind.others(k), xs[k], o2, X)
            h = hs[k]
            if c.guidance == "dps":  # x_t <- x_t - zeta grad E (Jacobian of the denoiser dropped), projected
                h = h + g
                w = posterior_weights(h, a, sg, c.prior, threshold=ctx.settings["threshold"],
                                      activation=ctx.settings["activation"])
            else:
                w = posterior_weights(h, a, sg, c.prior, extra_logits=g, threshold=ctx.settings["threshold"],
                                      activation=ctx.settings["activation"])
            noise = space.draw(ctx.noise, rows, it, k, 0, X.shape[0]) if ctx.eta > 0 else None
            new_h.append(ddim_step(h, space.mean(k, w), a, sg, an, sn, ctx.eta, noise))
            new_w.append(w)
            xk = rowwise_matmul(w, X, ctx.integer)
            new_x.append(sign(xk) if ctx.settings["estimate"] == "sign" else xk)
            unbind.advance(new_x[k] if sequential else xs[k])
            if squares is not None:
                squares.advance(new_x[k] * new_x[k] if sequential else xs[k] * xs[k])
        idx = torch.stack([(w.abs() if self.sign_invariant else w).argmax(-1) for w in new_w], -1)
        return Step(DiffusionState(torch.cat(new_h, 1), torch.cat(new_w, 1), torch.cat(new_x, 1)), idx)

