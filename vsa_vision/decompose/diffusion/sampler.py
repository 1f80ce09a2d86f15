"""Coupled inference in diffusion models: K diffusion processes, one per factor, coupled by a
reconstruction energy (Yeung, Zakeri, Zou & Imani).

Built from small parts, each usable and testable alone, in the manner of k-diffusion's samplers:

- **schedules** (:func:`vp_linear_schedule`, :func:`log_snr_schedule`, :func:`ve_schedule`): plain
  tensors of noise levels ``(alpha_t, sigma_t)`` from the noisiest to the cleanest;
- **analytic denoisers** of a codebook prior (:func:`posterior_weights`, :func:`denoise_latent`,
  :func:`denoise_codebook`): the prior of a factor is uniform over its codewords (``"positive"``) or
  over ``+-`` its codewords (``"symmetric"``: bipolar binding cannot tell ``(a, b)`` from ``(-a, -b)``).
  The noised prior is a Gaussian mixture, so the posterior mean (Tweedie) is exact::

      logits_i = alpha_t <c_i, x_t> / sigma_t^2  (- alpha_t^2 |c_i|^2 / (2 sigma_t^2))
      positive:  w = softmax(logits)             x0_hat = sum_i w_i c_i
      symmetric: w = sinh(logits) / sum cosh     x0_hat = sum_i w_i c_i

  **latent space**: ``x_t`` in R^D with atoms at the unit-norm codewords ``c_i / sqrt(D)``;
  **codebook space**: ``a_t`` in R^n with atoms at the one-hot vectors. In latent space only the
  projections ``h = X x_t / sqrt(D)`` enter the posterior, so the sampler tracks ``h`` (n numbers)
  instead of ``x_t`` (D numbers) and draws the projected noise exactly, with covariance
  ``G = X X^T / D``: the two spaces then cost the same per step, and differ by that covariance;
- **energies** (:func:`similarity_energy`, :func:`gaussian_energy`) coupling the factors through
  ``s`` with closed-form gradients: ``E_S = -lam <s, prod_k x_k> / D``,
  ``E_G = |s - prod_k x_k|^2 / (2 gamma^2 D)``;
- **guidance** of factor k by ``g_k = X_k (-grad_{x_k} E)`` (for ``E_S`` this is the resonator's
  unbinding similarity ``X_k u_k / D``), normalised (``"zscore"`` over the codebook, ``"rms"``,
  ``"null"``: by its standard deviation when the other estimates are unrelated to ``s``, or
  ``"none"``), optionally clipped, scaled by ``guidance_scale`` and applied either inside the
  posterior logits (``guidance="logits"``) or as a DPS-style shift of the state (``"dps"``);
- **step rules**: DDIM with ``eta`` in [0, 1] (``eta = 0`` deterministic, ``eta = 1`` is the DDPM
  ancestral step; ``step="ddpm"`` sets it);
- **coupling**: ``"sequential"`` (each factor uses the newest estimates of the others within a step)
  or ``"parallel"``;
- **restarts**: after a pass of ``steps`` reverse steps, the estimates are re-noised to the level of
  a fraction ``restart`` of the schedule (1 = the noisiest level) and the reverse pass runs again;
  ``restarts=None`` fits as many passes as the iteration budget allows, and the budget is never
  exceeded. One iteration = one guided step of all K factors, the same unit as a resonator sweep.

**Sparse posterior.** ``threshold > 0`` zeroes the weight of every atom whose logit is below it in
magnitude (the stochastic resonator's activation threshold, moved into the posterior), except
where no atom of a factor reaches it.

**Adaptive defaults.** The options that set the temperature, sparsity and pace of the search
(``guidance_scale``, ``steps``, ``lambda_min``, ``lambda_max``, ``eta``, ``restart``, ``threshold``)
default to ``None``: each call then chooses them from the problem's *load* (:func:`problem_load`,
``ln(prod_k n_k) - 2 ln D``: the search space against the squared dimension, since a resonator's
capacity grows about as ``D^2``) and its number of factors, interpolating in the load between the
anchor settings tuned for the nearest number of factors (:func:`auto_settings`; the anchors live in
``vsa_vision/defaults/diffusion.json`` and come from
``vsa-vision tune diffusion --portfolio light|small|low|mid|high``). An option given explicitly always wins.

Across iterations the driver keeps the best answer by similarity of its bound codewords to ``s``
and stops a problem once it reaches ``stop_similarity``, so noisy targets return the best-so-far
answer when the budget ends.

**Chains.** ``chains`` (default 2) independent chains solve each problem at once, as one batch,
with their own noise; a problem stops when any chain explains ``s`` and returns the best chain's
answer. Measured: the chains of one problem fail almost independently (K = 3, D = 1000, n = 80, 100
iterations: 91% for one chain, 99% for the better of two, 100% for three): a second chain buys what
doubling one chain's budget buys (98.8% with one chain and 200 iterations), within the same number
of iterations. An iteration of two chains costs less than one of the classic resonator (issue 4
allows 1.2x); ``chains=1`` is the single-chain sampler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..vsa import Codebooks
from .base import Capabilities, IterativeDecomposer, _check_choice, _check_float, _check_int
from .resonator import symmetric_softmax

__all__ = [
    "problem_load", "auto_settings", "ADAPTIVE_OPTIONS",
    "Schedule", "vp_linear_schedule", "log_snr_schedule", "ve_schedule", "posterior_weights",
    "denoise_latent", "denoise_codebook", "similarity_energy", "gaussian_energy", "normalize_guidance",
    "ddim_step", "DiffusionDecomposer",
]


# ----------------------------------------------------------------------------------------------
# schedules
# ----------------------------------------------------------------------------------------------


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
    _check_int("steps", steps, 1)
    t = torch.linspace(1.0, t_min, steps, dtype=torch.float64)
    log_alpha = -0.25 * t**2 * (beta_max - beta_min) - 0.5 * t * beta_min
    alpha = log_alpha.exp()
    return Schedule(alpha, (1 - alpha**2).sqrt())


def log_snr_schedule(steps: int, lambda_min: float = -2.0, lambda_max: float = 6.0, spacing: str = "linear",
                     power: float = 2.0) -> Schedule:
    """Variance-preserving schedule evenly spaced in log-SNR ``lambda = log(alpha^2 / sigma^2)``
    from ``lambda_min`` to ``lambda_max`` (``spacing="linear"``), or warped towards the clean end
    (``"power"``: ``u ** (1 / power)``) or the noisy end (``"inverse_power"``: ``u ** power``)."""
    _check_int("steps", steps, 1)
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
    _check_int("steps", steps, 1)
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"sigma_min, sigma_max: expected 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    if steps == 1:
        sig = torch.tensor([sigma_min], dtype=torch.float64)
    else:
        sig = torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), steps, dtype=torch.float64))
    return Schedule(torch.ones_like(sig), sig)


def make_schedule(kind: str, steps: int, **kw: Any) -> Schedule:
    if kind == "log_snr":
        return log_snr_schedule(steps, **kw)
    if kind == "vp_linear":
        return vp_linear_schedule(steps, **kw)
    if kind == "ve":
        return ve_schedule(steps, **kw)
    raise ValueError(f"schedule: expected 'log_snr', 'vp_linear' or 've', got {kind!r}")


# ----------------------------------------------------------------------------------------------
# analytic denoisers
# ----------------------------------------------------------------------------------------------


def posterior_weights(proj: Tensor, alpha: float | Tensor, sigma: float | Tensor, prior: str = "symmetric",
                      norm2: float | Tensor = 1.0, extra_logits: Tensor | None = None,
                      threshold: float = 0.0) -> Tensor:
    """Posterior weights of the atoms given the projections ``proj_i = <c_i, x_t>`` ``[..., n]``.

    ``prior="positive"``: softmax over atoms ``c_i`` (``norm2`` is ``|c_i|^2``);
    ``prior="symmetric"``: atoms at ``+-c_i``, weights ``P(+c_i) - P(-c_i) = sinh(l_i) / sum cosh(l_j)``.
    ``extra_logits`` (guidance) is added to the logits. ``threshold > 0`` makes the weights sparse,
    like the stochastic resonator's activation threshold: atoms whose logit is below it in magnitude
    get weight 0 (the others keep their weights, not renormalised); where no atom reaches it, all
    keep their weights."""
    logits = alpha * proj / sigma**2
    if extra_logits is not None:
        logits = logits + extra_logits
    if prior == "symmetric":
        w = symmetric_softmax(logits)
    elif prior == "positive":
        w = torch.softmax(logits - alpha**2 * norm2 / (2 * sigma**2), dim=-1)
    else:
        raise ValueError(f"prior: expected 'symmetric' or 'positive', got {prior!r}")
    if threshold > 0:
        keep = logits.abs() >= threshold
        keep |= ~keep.any(-1, keepdim=True)  # none above it: keep them all (a zero estimate would
        w = torch.where(keep, w, torch.zeros_like(w))  # unbind every other factor to zero)
    return w


def denoise_latent(x: Tensor, codebook: Tensor, alpha: float, sigma: float, prior: str = "symmetric") -> Tensor:
    """``E[x_0 | x_t = x]`` for a prior uniform over the rows of ``codebook`` ``[n, D]`` (or over
    ``+-`` them): ``x [..., D]`` -> ``[..., D]``."""
    norm2 = (codebook * codebook).sum(-1)
    w = posterior_weights(x @ codebook.T, alpha, sigma, prior, norm2)
    return w @ codebook


def denoise_codebook(a: Tensor, alpha: float, sigma: float, prior: str = "symmetric") -> Tensor:
    """``E[a_0 | a_t = a]`` for a prior uniform over the one-hot vectors of R^n (or ``+-`` them)."""
    return posterior_weights(a, alpha, sigma, prior, 1.0)


# ----------------------------------------------------------------------------------------------
# energies and guidance
# ----------------------------------------------------------------------------------------------


def _others(xs: list[Tensor], k: int) -> Tensor:
    out = None
    for j, x in enumerate(xs):
        if j != k:
            out = x if out is None else out * x
    return out if out is not None else torch.ones_like(xs[k])


def similarity_energy(s: Tensor, xs: list[Tensor], lam: float = 1.0) -> tuple[Tensor, list[Tensor]]:
    """``E = -lam <s, prod_k x_k> / D`` per row and its gradients ``-(lam / D) s * prod_{j!=k} x_j``."""
    D = s.shape[-1]
    prod = _others(xs + [s], len(xs))  # prod_k x_k, not including s
    energy = -lam * (s * prod).sum(-1) / D
    grads = [-(lam / D) * s * _others(xs, k) for k in range(len(xs))]
    return energy, grads


def gaussian_energy(s: Tensor, xs: list[Tensor], gamma: float = 1.0) -> tuple[Tensor, list[Tensor]]:
    """``E = |s - prod_k x_k|^2 / (2 gamma^2 D)`` and its gradients
    ``-(s - prod) * prod_{j!=k} x_j / (gamma^2 D)``."""
    D = s.shape[-1]
    prod = _others(xs + [s], len(xs))
    r = s - prod
    energy = (r * r).sum(-1) / (2 * gamma**2 * D)
    grads = [-(r * _others(xs, k)) / (gamma**2 * D) for k in range(len(xs))]
    return energy, grads


def normalize_guidance(g: Tensor, how: str, null_std: Tensor | None = None, clip: float | None = None) -> Tensor:
    """Normalise a guidance vector over the codebook (last dim):

    ``"zscore"``: ``(g - mean) / std``; ``"rms"``: ``g / rms(g)``; ``"null"``: ``g / null_std``
    (its standard deviation when the estimates are unrelated to ``s``); ``"none"``: unchanged.
    ``clip`` bounds the result to ``[-clip, clip]``."""
    if how == "zscore":
        g = (g - g.mean(-1, keepdim=True)) / g.std(-1, keepdim=True, unbiased=False).clamp_min(1e-12)
    elif how == "rms":
        g = g / g.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-12)
    elif how == "null":
        g = g / null_std.clamp_min(1e-12)
    elif how != "none":
        raise ValueError(f"normalize: expected 'zscore', 'rms', 'null' or 'none', got {how!r}")
    if clip is not None:
        g = g.clamp(-clip, clip)
    return g


# ----------------------------------------------------------------------------------------------
# step rule
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# adaptive defaults
# ----------------------------------------------------------------------------------------------

#: the options chosen per problem when left unset (None)
ADAPTIVE_OPTIONS = ("guidance_scale", "steps", "lambda_min", "lambda_max", "eta", "restart", "threshold")

#: the value of an adaptive option that an anchor does not set (written before the option existed)
_ANCHOR_MISSING = {"threshold": 0.0}

#: used only when ``defaults/diffusion.json`` has no ``auto`` anchors (the settings tuned at n = 80)
_FALLBACK_ANCHORS = [{"load": -0.67, "options": {"guidance_scale": 0.2198, "steps": 6, "lambda_min": -3.931,
                                                  "lambda_max": -2.2092, "eta": 0.8928, "restart": 0.9553}}]


def problem_load(sizes, dim: int) -> float:
    """``ln(prod_k n_k) - 2 ln D``: how hard a decomposition problem is for an iterative decoder.

    About -0.7 for K = 3, n = 80, D = 1000; 0 at n = 100; 1.2 at n = 150; -2.5 for the vision shape
    (8, 10, 4, 12, 12, 2) at D = 1024."""
    sizes = [int(n) for n in sizes]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes: expected positive codebook sizes, got {sizes}")
    _check_int("dim", dim, 1)
    return sum(math.log(n) for n in sizes) - 2.0 * math.log(dim)


def _anchors() -> list[dict[str, Any]]:
    from .registry import tuned_anchors

    return tuned_anchors("diffusion") or _FALLBACK_ANCHORS


def _same_factor_count(anchors: list[dict[str, Any]], K: int) -> list[dict[str, Any]]:
    """The anchors tuned on problems with the number of factors nearest to ``K`` (ties: the fewer
    factors); an anchor without ``factors`` serves every K."""
    counts = {a["factors"] for a in anchors if a.get("factors") is not None}
    if not counts:
        return anchors
    best = min(counts, key=lambda c: (abs(c - K), c))
    return [a for a in anchors if a.get("factors") in (None, best)]


def auto_settings(sizes, dim: int, anchors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The adaptive options for a problem shape: each anchor is ``{"load": l, "factors": K,
    "options": {...}}``. Only the anchors whose number of factors is nearest to the problem's count
    (the load alone does not tell K = 6 codebooks of 2 to 12 values from K = 3 of 40: both sit near
    -2.5, and they want different settings); between two of them every option is interpolated
    linearly in the load (the guidance scale geometrically, the steps rounded); outside them the
    nearest anchor's settings are used."""
    anchors = _anchors() if anchors is None else anchors
    if not anchors:
        raise ValueError("anchors: expected at least one")
    load = problem_load(sizes, dim)
    anchors = sorted(_same_factor_count(anchors, len(list(sizes))), key=lambda a: a["load"])
    lo = max([a for a in anchors if a["load"] <= load], key=lambda a: a["load"], default=anchors[0])
    hi = min([a for a in anchors if a["load"] >= load], key=lambda a: a["load"], default=anchors[-1])
    span = hi["load"] - lo["load"]
    t = 0.0 if span <= 0 else min(1.0, max(0.0, (load - lo["load"]) / span))
    out: dict[str, Any] = {}
    for key in ADAPTIVE_OPTIONS:
        a = lo["options"].get(key, _ANCHOR_MISSING.get(key))
        b = hi["options"].get(key, _ANCHOR_MISSING.get(key))
        if key == "guidance_scale":
            out[key] = math.exp((1 - t) * math.log(a) + t * math.log(b))
        elif key == "steps":
            out[key] = max(1, int(round((1 - t) * a + t * b)))
        else:
            out[key] = (1 - t) * a + t * b
    out["lambda_max"] = max(out["lambda_max"], out["lambda_min"])
    return out


# ----------------------------------------------------------------------------------------------
# the decomposer
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """The level of every iteration of the budget: current (alpha, sigma), next (alpha, sigma), and
    whether the state is re-noised (a restart) before the step."""

    alpha: list[float]
    sigma: list[float]
    alpha_next: list[float]
    sigma_next: list[float]
    renoise: list[bool]
    passes: int


class DiffusionDecomposer(IterativeDecomposer):
    """Coupled diffusion decomposer. ``get_decomposer("diffusion", space="latent", energy="similarity")``.

    Options (beyond the common ``iterations``, ``seed``, ``keep_best``, ``stop_similarity``,
    ``sign_invariant``, ``record_trajectory``):

    - ``space``: ``"latent"`` (R^D, tracked through its codebook projection) or ``"codebook"`` (R^n);
    - ``prior``: ``"symmetric"`` (atoms at +-codewords) or ``"positive"``;
    - ``energy``: ``"similarity"`` or ``"gaussian"``; ``guidance``: ``"logits"`` or ``"dps"``;
      ``guidance_scale``; ``normalize``: ``"zscore"``, ``"rms"``, ``"null"`` or ``"none"``;
      ``clip``: bound on the normalised guidance (None: no clip);
    - ``coupling``: ``"sequential"`` or ``"parallel"``;
    - ``schedule``: ``"log_snr"`` (with ``lambda_min``, ``lambda_max``, ``spacing``), ``"vp_linear"`` or
      ``"ve"``; ``steps``: reverse steps per pass;
    - ``step``: ``"ddim"`` (with ``eta``) or ``"ddpm"`` (``eta = 1``);
    - ``restart``: the restart level as a fraction of the schedule (1 = noisiest), ``restarts``: the
      number of restarts (None: as many as the budget allows; 0: one pass only).

    - ``threshold``: sparse posterior weights: atoms whose logit is below it in magnitude get weight 0;
    - ``chains``: independent chains per problem, the best returned (default 2; see the module notes).

    ``guidance_scale``, ``steps``, ``lambda_min``, ``lambda_max``, ``eta``, ``restart`` and ``threshold`` default to
    None: chosen per call from the problem's load (:func:`auto_settings`); :meth:`settings` shows
    the values used for given codebooks.

    State keys (for callbacks): ``h`` ``[A, sum n_k]`` the projected states of all factors, ``w`` the
    posterior weights, ``x`` ``[A, K * D]`` the estimates ``w_k X_k``, concatenated in factor order."""

    name = "diffusion"
    capabilities = Capabilities(stochastic=True, chains=True, adaptive=True)

    def __init__(
        self,
        iterations: int = 100,
        seed: int = 0,
        space: str = "codebook",
        prior: str = "symmetric",
        energy: str = "similarity",
        guidance: str = "logits",
        guidance_scale: float | None = None,
        normalize: str = "zscore",
        clip: float | None = None,
        coupling: str = "sequential",
        schedule: str = "log_snr",
        steps: int | None = None,
        lambda_min: float | None = None,
        lambda_max: float | None = None,
        spacing: str = "linear",
        step: str = "ddim",
        eta: float | None = None,
        restart: float | None = None,
        threshold: float | None = None,
        restarts: int | None = None,
        gamma: float = 1.0,
        keep_best: bool = True,
        stop_similarity: float | None = 0.5,
        sign_invariant: bool = True,
        record_trajectory: bool = False,
        chains: int = 2,
    ) -> None:
        super().__init__(iterations, seed, keep_best, stop_similarity, sign_invariant, record_trajectory)
        self._set_chains(chains)
        self.space = _check_choice("space", space, ("latent", "codebook"))
        self.prior = _check_choice("prior", prior, ("symmetric", "positive"))
        self.energy = _check_choice("energy", energy, ("similarity", "gaussian"))
        self.guidance = _check_choice("guidance", guidance, ("logits", "dps"))
        self.guidance_scale = _check_float("guidance_scale", guidance_scale, 0.0, allow_none=True)
        self.normalize = _check_choice("normalize", normalize, ("zscore", "rms", "null", "none"))
        self.clip = _check_float("clip", clip, 0.0, allow_none=True)
        self.coupling = _check_choice("coupling", coupling, ("sequential", "parallel"))
        self.schedule = _check_choice("schedule", schedule, ("log_snr", "vp_linear", "ve"))
        self.steps = None if steps is None else _check_int("steps", steps, 1)
        self.lambda_min = _check_float("lambda_min", lambda_min, allow_none=True)
        self.lambda_max = _check_float("lambda_max", lambda_max, allow_none=True)
        if self.lambda_min is not None and self.lambda_max is not None and self.lambda_max < self.lambda_min:
            raise ValueError(f"lambda_max: expected >= lambda_min ({lambda_min}), got {lambda_max}")
        self.spacing = _check_choice("spacing", spacing, ("linear", "power", "inverse_power"))
        self.step = _check_choice("step", step, ("ddim", "ddpm"))
        self.eta = _check_float("eta", eta, 0.0, 1.0, allow_none=True)
        self.restart = _check_float("restart", restart, 0.0, 1.0, allow_none=True)
        self.threshold = _check_float("threshold", threshold, 0.0, allow_none=True)
        self.restarts = None if restarts is None else _check_int("restarts", restarts, 0)
        self.gamma = _check_float("gamma", gamma, 1e-6)

    # -- settings, schedule and plan -----------------------------------------------------------

    def settings(self, codebooks: Codebooks | None = None) -> dict[str, Any]:
        """The adaptive options (:data:`ADAPTIVE_OPTIONS`) this decomposer uses on ``codebooks``:
        the ones given explicitly, the others from :func:`auto_settings` for that problem shape
        (without codebooks: the lightest anchor's)."""
        given = {k: getattr(self, k) for k in ADAPTIVE_OPTIONS if getattr(self, k) is not None}
        if len(given) == len(ADAPTIVE_OPTIONS):
            return given
        if codebooks is None:
            light = min(_anchors(), key=lambda a: a["load"])["options"]
            auto = {k: light.get(k, _ANCHOR_MISSING.get(k)) for k in ADAPTIVE_OPTIONS}
        else:
            auto = auto_settings(codebooks.sizes, codebooks.dim)
        out = {**auto, **given}
        if out["lambda_max"] < out["lambda_min"]:  # one end given, the other adapted past it
            if "lambda_max" in given:
                out["lambda_min"] = out["lambda_max"]
            else:
                out["lambda_max"] = out["lambda_min"]
        return out

    def noise_schedule(self, codebooks: Codebooks | None = None) -> Schedule:
        """The per-pass schedule: the ``steps`` levels at which the denoiser is evaluated, noisiest
        first; the last step of a pass goes on to the clean end (alpha = 1, sigma = 0)."""
        cfg = self.settings(codebooks)
        kw = {}
        if self.schedule == "log_snr":
            kw = {"lambda_min": cfg["lambda_min"], "lambda_max": cfg["lambda_max"], "spacing": self.spacing}
        return make_schedule(self.schedule, cfg["steps"], **kw)

    def plan(self, codebooks: Codebooks | None = None) -> _Plan:
        """The level of each of the ``iterations`` guided steps, restarts included."""
        cfg = self.settings(codebooks)
        sch = self.noise_schedule(codebooks)
        al, sg = sch.alpha.tolist() + [1.0], sch.sigma.tolist() + [0.0]
        T = cfg["steps"]
        start = min(T - 1, int(round((1.0 - cfg["restart"]) * T)))  # restart level index
        A, S, An, Sn, R = [], [], [], [], []
        i, passes, renoise = 0, 1, False
        for it in range(self.iterations):
            A.append(al[i]), S.append(sg[i]), An.append(al[i + 1]), Sn.append(sg[i + 1]), R.append(renoise)
            renoise = False
            i += 1
            if i == T and it + 1 < self.iterations:  # a pass ended with budget left
                if self.restarts is not None and passes > self.restarts:
                    # budget left but no restart allowed: repeat the cleanest level (pure cleanup steps)
                    i = T - 1
                else:
                    i, passes, renoise = start, passes + 1, True
        return _Plan(A, S, An, Sn, R, passes)

    # -- setup ---------------------------------------------------------------------------------

    def _setup(self, s: Tensor, cb: Codebooks) -> dict[str, Any]:
        D = cb.dim
        cfg = self.settings(cb)
        ctx: dict[str, Any] = {"plan": self.plan(cb), "noise": self._noise(s), "cfg": cfg}
        if self.space == "latent":
            chol = []
            for X in cb.tensors:
                G = (X @ X.T) / D  # covariance of the projected noise: unit diagonal
                G64 = G.double() + 1e-6 * torch.eye(G.shape[0], dtype=torch.float64, device=G.device)
                chol.append((G, torch.linalg.cholesky(G64).to(X.dtype)))
            ctx["gram"] = chol
        ctx["eta"] = 1.0 if self.step == "ddpm" else cfg["eta"]
        return ctx

    def _draw(self, ctx, rows: Tensor, it: int, k: int, stream: int, n: int) -> Tensor:
        z = ctx["noise"].normal(rows, it, 2 * k + stream, n)
        if self.space == "latent":
            z = z @ ctx["gram"][k][1].T
        return z

    def _mean(self, ctx, k: int, w: Tensor) -> Tensor:
        """Projection of the posterior mean: ``G w`` (latent) or ``w`` (codebook)."""
        return w @ ctx["gram"][k][0] if self.space == "latent" else w

    def _init(self, s, cb, ctx, rows):
        plan: _Plan = ctx["plan"]
        hs, ws = [], []
        for k, n in enumerate(cb.sizes):
            hs.append(plan.sigma[0] * self._draw(ctx, rows, -1, k, 0, n))
            ws.append(torch.zeros(s.shape[0], n, dtype=s.dtype, device=s.device))
        x = torch.zeros(s.shape[0], len(cb.sizes) * cb.dim, dtype=s.dtype, device=s.device)
        return {"h": torch.cat(hs, 1), "w": torch.cat(ws, 1), "x": x}

    # -- one guided step of all factors --------------------------------------------------------

    def _guidance(self, u: Tensor, xk: Tensor, o2: Tensor | None, X: Tensor, scale: float) -> Tensor:
        D = X.shape[1]
        if self.energy == "similarity":
            g = u @ X.T / D
        else:
            g = (u - xk * o2) @ X.T / (self.gamma**2 * D)
        null = None
        if self.normalize == "null":
            null = u.norm(dim=-1, keepdim=True) / D
        return scale * normalize_guidance(g, self.normalize, null, self.clip)

    def _step(self, state, s, cb, ctx, it, rows):
        plan: _Plan = ctx["plan"]
        a, sg, an, sn = plan.alpha[it], plan.sigma[it], plan.alpha_next[it], plan.sigma_next[it]
        sizes = cb.sizes
        hs = list(state["h"].split(sizes, 1))
        ws = list(state["w"].split(sizes, 1))
        if plan.renoise[it]:
            hs = [a * self._mean(ctx, k, ws[k]) + sg * self._draw(ctx, rows, it, k, 1, n)
                  for k, n in enumerate(sizes)]
        K = len(sizes)
        # current estimates in R^D (+-1 scale), w_k @ X_k from the last step (kept, not recomputed)
        xs = list(state["x"].split(cb.dim, 1))
        gaussian = self.energy == "gaussian"
        # products of the others' estimates: prefix (s times the factors before k, newest) and suffix
        suffix = [None] * (K + 1)
        for k in range(K - 1, -1, -1):
            suffix[k] = xs[k] if suffix[k + 1] is None else suffix[k + 1] * xs[k]
        sq = [x * x for x in xs] if gaussian else None
        prefix = s
        new_h, new_w, new_x, scores = [], [], [], []
        eta = ctx["eta"]
        thr = ctx["cfg"]["threshold"]
        for k, X in enumerate(cb.tensors):
            u = prefix if suffix[k + 1] is None else prefix * suffix[k + 1]
            o2 = None
            if gaussian:
                o2 = torch.ones_like(u)
                for j in range(K):
                    if j != k:
                        o2 = o2 * sq[j]
            g = self._guidance(u, xs[k], o2, X, ctx["cfg"]["guidance_scale"])
            h = hs[k]
            if self.guidance == "dps":
                h = h + g  # DPS: x_t <- x_t - zeta grad E (Jacobian of the denoiser dropped), projected
                w = posterior_weights(h, a, sg, self.prior, threshold=thr)
            else:
                w = posterior_weights(h, a, sg, self.prior, extra_logits=g, threshold=thr)
            noise = self._draw(ctx, rows, it, k, 0, X.shape[0]) if eta > 0 else None
            h_next = ddim_step(h, self._mean(ctx, k, w), a, sg, an, sn, eta, noise)
            new_h.append(h_next)
            new_w.append(w)
            scores.append(w)
            x_new = w @ X
            new_x.append(x_new)
            if self.coupling == "sequential":
                xs[k] = x_new
                if gaussian:
                    sq[k] = x_new * x_new
                prefix = prefix * x_new
            else:
                prefix = prefix * xs[k]
        idx = torch.stack([(w.abs() if self.sign_invariant else w).argmax(-1) for w in scores], -1)
        return {"h": torch.cat(new_h, 1), "w": torch.cat(new_w, 1), "x": torch.cat(new_x, 1)}, idx, None, None
