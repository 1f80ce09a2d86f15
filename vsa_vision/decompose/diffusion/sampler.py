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
returned in their dtype. Every product runs in the working dtype. Batch invariance: on an
integer-valued target (bipolar, flipped or not) every sum is exact, so a row's state is the same
alone and in any batch; on a real-valued target (an encoder's output) the last bits of a product
depend on the batch's shape (one row takes a matrix-vector kernel, a batch a blocked one), and the
answers alone and in a batch were the same on all 512 shipped-model images measured
(``docs/BENCHMARKS.md``, decoding latency). Summing in float64 instead, as this module once did,
cost more than the rest of an iteration at batch 1.

Cost: an iteration is about 17 kernels a factor (the noise of a block of iterations is drawn in
one gather, the DDIM update and the readout run once for all factors); the configurations most
calls run go through :func:`~.fused.fused_iteration`, the same kernels without the Python of the
general step between them, and with ``compile=True`` through ``torch.compile`` (:mod:`.fused`);
``patience`` stops a problem whose best answer has settled
(:class:`~vsa_vision.decompose.base.IterativeDecomposer`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from ...vsa import Codebooks, LeaveOneOut, eps_for, sign, wide_dtype
from ..base import Capabilities, IterativeDecomposer, State, Step, StepInfo
from ..merge import Merger, auto_cap, merge_groups
from ..noise import ProblemNoise
from .config import DiffusionConfig
from .defaults import ADAPTIVE_OPTIONS, anchors_in_force, auto_chains, auto_settings
from .denoisers import SPACES, CodebookSpace, posterior_weights, weights_of_logits
from .energies import make_energy, normalize_guidance
from .fused import (
    FusedSpec,
    compiled_iteration,
    covers,
    fused_iteration,
    level_table,
    padded_positions,
    readout,
    run_compiled,
)
from .schedules import SCHEDULES, Schedule, make_schedule

__all__ = ["ddim_step", "Plan", "plan_levels", "DiffusionState", "DiffusionDecomposer"]


def ddim_step(x: Tensor, x0: Tensor, alpha: float, sigma: float, alpha_next: float, sigma_next: float,
              eta: float = 0.0, noise: Tensor | None = None) -> Tensor:
    """One DDIM step from level ``(alpha, sigma)`` to ``(alpha_next, sigma_next)`` given the denoised
    estimate ``x0``. ``eta = 0``: deterministic; ``eta = 1``: the DDPM ancestral step (posterior
    q(x_next | x, x0)); ``noise`` is the standard normal draw (same shape as ``x``) when ``eta > 0``."""
    eps = (x - alpha * x0) / sigma
    root, c = _ddim_scales(alpha, sigma, alpha_next, sigma_next, eta)
    out = alpha_next * x0 + root * eps
    if c > 0:
        out = out + c * noise
    return out


def _ddim_scales(alpha: float, sigma: float, alpha_next: float, sigma_next: float, eta: float) -> tuple[float, float]:
    """The DDIM step's scale of the predicted noise and of the fresh noise: ``x_next = alpha_next x0
    + root * eps + c * noise``."""
    c = 0.0
    if eta > 0:
        ratio = (alpha * sigma_next) / (alpha_next * sigma)
        c = eta * sigma_next * math.sqrt(max(0.0, 1.0 - ratio**2))
    return math.sqrt(max(0.0, sigma_next**2 - c**2)), c


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
    in factor order), ``w`` the posterior weights, ``x`` ``[A, K * D]`` the estimates ``w_k X_k``;
    ``noise`` ``[A, T, 2, sum n_k]`` the noise of the iterations ``noise_from .. noise_from + T - 1``
    (the step's draw, then the restart's), drawn a block at a time."""

    h: Tensor
    w: Tensor
    x: Tensor
    noise: Tensor | None = None
    noise_from: int = -1


@dataclass(frozen=True)
class _Level:
    """The scalars of one iteration: the logit scale ``alpha / sigma^2``, the restart's level, and
    the DDIM update ``h' = mean_w * x0 + keep_h * h + noise_w * noise`` (:func:`ddim_step`
    expanded)."""

    alpha: float
    sigma: float
    logit: float
    renoise: bool
    mean_w: float
    keep_h: float
    noise_w: float


def _levels(plan: Plan, eta: float) -> list[_Level]:
    out = []
    for a, sg, an, sn, r in zip(plan.alpha, plan.sigma, plan.alpha_next, plan.sigma_next, plan.renoise):
        root, c = _ddim_scales(a, sg, an, sn, eta)
        out.append(_Level(a, sg, a / sg**2, r, an - root * a / sg, root / sg, c))
    return out


@dataclass
class _Context:
    """What one call shares across rows and iterations."""

    plan: Plan
    noise: ProblemNoise
    settings: dict[str, Any]
    space: CodebookSpace
    energy: Any
    eta: float
    levels: list[_Level] = field(default_factory=list)
    #: iterations of noise drawn at once (a block is ``rows x block x 2 x sum n_k`` numbers)
    block: int = 1
    #: the sparsity threshold as a 0-dim tensor of the problem's dtype and device
    threshold: Tensor | None = None
    #: the fused iteration's constants (None: the general step runs), its compiled form, the levels
    #: as a tensor for it, where the readout puts each weight
    spec: FusedSpec | None = None
    compiled: Any = None
    table: Tensor | None = None
    positions: Tensor | None = None
    stacked: Tensor | None = None
    #: the driver's scorer, whose similarity the compiled iteration computes in its graph
    scorer: Any = None


#: the most noise numbers one block holds (about 1 MB in float32)
_BLOCK_NUMBERS = 1 << 18
#: the most iterations one block covers
_BLOCK_ITERATIONS = 32


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
    #: run the configurations :func:`~.fused.covers` allows through :func:`~.fused.fused_iteration`
    #: (the same kernels as the general step, without the Python between them); False: the general step
    fuse = True

    def __init__(self, config: DiffusionConfig | None = None, /, **options: Any) -> None:
        if config is not None and not isinstance(config, DiffusionConfig):
            raise TypeError(f"config: expected a DiffusionConfig, got {type(config).__name__}")
        cfg = DiffusionConfig(**options) if config is None else replace(config, **options)
        super().__init__(cfg.iterations, cfg.seed, cfg.keep_best, cfg.stop_similarity, cfg.sign_invariant,
                         cfg.record_trajectory, cfg.patience, cfg.patience_margin, cfg.patience_long,
                         cfg.give_up)
        if cfg.chains is not None:
            self._set_chains(cfg.chains)
        else:
            self.chains = None  # chosen per call from the problem shape: chains_for(codebooks)
        self.config = cfg
        self._plans: dict[tuple, tuple[Plan, list[_Level], dict]] = {}
        self._merger: Merger | None = None

    def __getattr__(self, name: str) -> Any:
        cfg = self.__dict__.get("config")
        if cfg is not None and name in DiffusionConfig.option_names():
            return getattr(cfg, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def options(self) -> dict[str, Any]:
        return self.config.as_dict()

    def chains_for(self, codebooks: Codebooks) -> int:
        """``chains`` as given, else chosen from the problem shape (:func:`~.defaults.auto_chains`, on the
        joined factors' sizes)."""
        if self.config.chains is not None:
            return self.config.chains
        return auto_chains(self.searched_sizes(codebooks.sizes), codebooks.dim)

    # -- joined factors ------------------------------------------------------------------------

    def groups(self, sizes: Sequence[int]) -> tuple[tuple[int, ...], ...]:
        """The factors searched as one (:mod:`~vsa_vision.decompose.merge`): ``merge="auto"`` joins the
        smallest while the joined codebook holds at most ``isqrt(prod n_k)`` rows, an int is that cap,
        None joins none."""
        m = self.config.merge
        if m is None:
            return tuple((k,) for k in range(len(sizes)))
        return merge_groups(sizes, auto_cap(sizes) if m == "auto" else m)

    def searched_sizes(self, sizes: Sequence[int]) -> tuple[int, ...]:
        """The codebook sizes the iterations run on: the joined groups'."""
        return tuple(math.prod(sizes[k] for k in g) for g in self.groups(sizes))

    def _search(self, s: Tensor, cb: Codebooks, callback: Any, accept: Tensor | None = None
                ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        groups = self.groups(cb.sizes)
        if all(len(g) == 1 for g in groups):
            return super()._search(s, cb, callback, accept)
        if self._merger is None or self._merger.groups != groups:
            self._merger = Merger(groups)
        m = self._merger
        if callback is not None:  # the answers in the given factors; the state stays the joined search's
            user = callback

            def callback(info: StepInfo) -> None:
                user(replace(info, indices=m.split(info.indices, cb.sizes),
                             best_indices=m.split(info.best_indices, cb.sizes)))
        idx, iters, converged, traj = super()._search(s, m.codebooks(cb), callback, accept)
        return m.split(idx, cb.sizes), iters, converged, None if traj is None else m.split(traj, cb.sizes)

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
            auto = auto_settings(self.searched_sizes(codebooks.sizes), codebooks.dim)
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
        energy = make_energy(c.energy, c.gamma)
        eta = 1.0 if c.step == "ddpm" else settings["eta"]
        plan, levels, tables = self._planned(cb, settings, eta)
        per_iteration = s.shape[0] * 2 * sum(cb.sizes)
        block = max(1, min(_BLOCK_ITERATIONS, _BLOCK_NUMBERS // per_iteration))
        threshold = torch.tensor(settings["threshold"], dtype=s.dtype, device=s.device)
        noise = self._noise(s, self.chains_for(cb))
        ctx = _Context(plan, noise, settings, space, energy, eta, levels, block, threshold)
        if self.fuse and covers(c, energy) is None:
            coef = settings["guidance_scale"] * (energy.lam / cb.dim) * cb.dim  # as _logits multiplies
            ctx.spec = FusedSpec(tuple(cb.sizes), cb.dim, c.coupling == "sequential", settings["estimate"] == "sign",
                                 settings["activation"], float(settings["threshold"]), coef, eps_for(s.dtype),
                                 c.space == "latent", self.sign_invariant)
            ctx.positions = padded_positions(tuple(cb.sizes), s.device)
            if c.compile:
                norm = math.sqrt(cb.dim) if cb.bipolar else None
                ctx.compiled = compiled_iteration(ctx.spec, norm, eps_for(wide_dtype(s.dtype)), s.dtype, s.device)
                key = (s.dtype, str(s.device))
                if key not in tables:
                    tables[key] = level_table(levels, s.dtype, s.device)
                ctx.table = tables[key]
                ctx.stacked = torch.cat(list(cb.tensors), 0)
        return ctx

    def _scorer(self, ctx: _Context, score) -> None:
        ctx.scorer = score

    def _planned(self, cb: Codebooks, settings: dict[str, Any], eta: float) -> tuple[Plan, list[_Level], dict]:
        """The plan and the levels of every iteration for these settings, computed once per decomposer
        (a budget of 1000 iterations took 5 ms of Python a call to lay out, more than a decode of one
        image by the compiled iteration), and the levels' tensors by dtype and device."""
        key = (tuple(sorted(settings.items())), eta)
        if key not in self._plans:
            if len(self._plans) >= 32:
                self._plans.clear()
            plan = self.plan(cb, settings)
            self._plans[key] = (plan, _levels(plan, eta), {})
        return self._plans[key]

    def _init(self, s, cb, ctx: _Context, rows) -> DiffusionState:
        hs = [ctx.plan.sigma[0] * ctx.space.draw(ctx.noise, rows, -1, k, 0, n) for k, n in enumerate(cb.sizes)]
        zeros = torch.zeros(s.shape[0], sum(cb.sizes), dtype=s.dtype, device=s.device)
        x = torch.zeros(s.shape[0], cb.num_factors * cb.dim, dtype=s.dtype, device=s.device)
        return DiffusionState(torch.cat(hs, 1), zeros, x)

    def _noise_block(self, ctx: _Context, rows: Tensor, it: int) -> tuple[Tensor, int]:
        """The noise of iterations ``it .. it + block - 1`` for ``rows``: ``[A, T, 2, sum n_k]``."""
        its = range(it, min(it + ctx.block, self.iterations))
        draws = [ctx.space.draw_block(ctx.noise, rows, its, stream) for stream in (0, 1)]
        return torch.stack(draws, 2), it

    def _guidance(self, ctx: _Context, u: Tensor, x: Tensor, others_sq: Tensor | None, X: Tensor) -> Tensor:
        g, factor = _guidance_parts(ctx.energy, u, x, others_sq, X)
        c, scale = self.config, ctx.settings["guidance_scale"]
        if c.normalize == "null":  # g / (|u| / D): the spread of g when the estimates are unrelated to s
            g = g * (scale * factor * X.shape[1] / u.norm(dim=-1, keepdim=True).clamp_min(eps_for(u.dtype)))
            return g if c.clip is None else g.clamp(-scale * c.clip, scale * c.clip)
        return scale * normalize_guidance(g * factor, c.normalize, None, c.clip)

    def _logits(self, ctx: _Context, prior: Tensor, u: Tensor, x: Tensor, others_sq: Tensor | None,
                X: Tensor) -> Tensor:
        """The posterior logits ``prior`` plus the guidance; normalised by the null spread and unclipped,
        folded into one kernel: ``prior + scale * factor * D * (u X^T) / |u|``."""
        c = self.config
        if c.normalize != "null" or c.clip is not None:
            return prior + self._guidance(ctx, u, x, others_sq, X)
        g, factor = _guidance_parts(ctx.energy, u, x, others_sq, X)
        spread = torch.linalg.vector_norm(u, dim=-1, keepdim=True).clamp_min(eps_for(u.dtype))
        return torch.addcdiv(prior, g, spread, value=ctx.settings["guidance_scale"] * factor * X.shape[1])

    def _step(self, state: DiffusionState, s, cb, ctx: _Context, it, rows) -> Step:
        c, space, lv = self.config, ctx.space, ctx.levels[it]
        sizes = cb.sizes
        noise, start = state.noise, state.noise_from
        if noise is None or not start <= it < start + noise.shape[1]:
            noise, start = self._noise_block(ctx, rows, it)
        draws = noise[:, it - start]                      # [A, 2, sum n]: the step's, the restart's
        if ctx.spec is not None:
            gram = getattr(space, "gram_all", None)
            if ctx.compiled is not None and ctx.scorer is not None:
                sc = ctx.scorer
                out = run_compiled(ctx.spec, ctx.compiled, s, state.h, state.w, state.x, draws, ctx.table[it],
                                   ctx.stacked, gram, ctx.threshold, ctx.positions, sc.unit, sc.table, sc.factors)
                if out is not None:
                    h_next, w_all, x_all, idx, sim = out
                    return Step(DiffusionState(h_next, w_all, x_all, noise, start), idx, similarity=sim)
                ctx.compiled = None
            h_next, w_all, x_all, idx = fused_iteration(ctx.spec, s, state.h, state.w, state.x, draws, lv,
                                                        cb.tensors, gram, ctx.threshold, ctx.positions)
            return Step(DiffusionState(h_next, w_all, x_all, noise, start), idx)
        h_all = state.h
        if lv.renoise:
            h_all = torch.add(draws[:, 1] * lv.sigma, space.mean_all(state.w), alpha=lv.alpha)
        xs = list(state.x.split(cb.dim, 1))  # the estimates w_k X_k of the last step (kept, not recomputed)
        unbind = LeaveOneOut(xs, start=s)
        squares = LeaveOneOut([x * x for x in xs]) if ctx.energy.needs_squares else None
        sequential = c.coupling == "sequential"
        threshold, activation = ctx.settings["threshold"], ctx.settings["activation"]
        dps = c.guidance == "dps"
        offset = lv.alpha**2 / (2 * lv.sigma**2)  # the positive prior's, for atoms of unit norm
        prior_logits = None if dps else (h_all * lv.logit).split(sizes, 1)  # alpha h / sigma^2
        hs = h_all.split(sizes, 1)
        new_h, new_w, new_x = [], [], []
        for k, X in enumerate(cb.tensors):
            o2 = None if squares is None else squares.others(k)
            if squares is not None and o2 is None:
                o2 = torch.ones_like(s)
            u = unbind.others(k)
            if dps:  # x_t <- x_t - zeta grad E (Jacobian of the denoiser dropped), projected
                h = hs[k] + self._guidance(ctx, u, xs[k], o2, X)
                w = posterior_weights(h, lv.alpha, lv.sigma, c.prior, threshold=threshold, activation=activation)
                new_h.append(h)
            else:
                logits = self._logits(ctx, prior_logits[k], u, xs[k], o2, X)
                w = weights_of_logits(logits, c.prior, offset, threshold, activation, ctx.threshold)
            new_w.append(w)
            xk = w @ X
            new_x.append(sign(xk) if ctx.settings["estimate"] == "sign" else xk)
            unbind.advance(new_x[k] if sequential else xs[k])
            if squares is not None:
                squares.advance(new_x[k] * new_x[k] if sequential else xs[k] * xs[k])
        w_all = torch.cat(new_w, 1)
        h_used = torch.cat(new_h, 1) if dps else h_all
        # one DDIM step of every factor at once: mean_w * x0 + keep_h * h (+ noise_w * noise)
        h_next = torch.add(h_used * lv.keep_h, space.mean_all(w_all), alpha=lv.mean_w)
        if lv.noise_w > 0:
            h_next = torch.add(h_next, draws[:, 0], alpha=lv.noise_w)
        idx = readout(w_all, sizes, self.sign_invariant)
        return Step(DiffusionState(h_next, w_all, torch.cat(new_x, 1), noise, start), idx)


def _guidance_parts(energy: Any, u: Tensor, x: Tensor, others_sq: Tensor | None, X: Tensor) -> tuple[Tensor, float]:
    """``(product, factor)`` of an energy's guidance (``energy.guidance`` itself, factor 1, for an
    energy that does not split it)."""
    parts = getattr(energy, "guidance_parts", None)
    return parts(u, x, others_sq, X) if parts is not None else (energy.guidance(u, x, others_sq, X), 1.0)

