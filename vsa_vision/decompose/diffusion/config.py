"""The options of the diffusion decomposer, in one frozen, validated record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from ...checks import check_choice, check_float, check_int
from .denoisers import SPACES
from .energies import ENERGIES, NORMALIZATIONS, make_energy
from .fused import covers
from .schedules import SCHEDULES

__all__ = ["DiffusionConfig"]


@dataclass(frozen=True)
class DiffusionConfig:
    """Every option of :class:`~vsa_vision.decompose.diffusion.DiffusionDecomposer`.

    - ``space``: ``"codebook"`` (R^n) or ``"latent"`` (R^D, tracked through its codebook projection),
      or a class built from the codebooks (see :mod:`.denoisers`);
    - ``prior``: ``"symmetric"`` (atoms at +-codewords) or ``"positive"``;
    - ``energy``: ``"similarity"`` or ``"gaussian"`` (with ``gamma``), or an energy object (see
      :mod:`.energies`); ``guidance``: ``"logits"`` (added to the posterior logits) or ``"dps"`` (a
      shift of the state); ``guidance_scale``; ``normalize``: ``"null"``, ``"zscore"``, ``"rms"`` or
      ``"none"``; ``clip``: bound on the normalised guidance (None: no clip);
    - ``coupling``: ``"sequential"`` (each factor sees the newest estimates of the others) or
      ``"parallel"``;
    - ``schedule``: ``"log_snr"`` (with ``lambda_min``, ``lambda_max``, ``spacing``), ``"vp_linear"``,
      ``"ve"``, or a function ``f(steps, **options) -> Schedule``; ``steps``: reverse steps a pass;
    - ``step``: ``"ddim"`` (with ``eta``) or ``"ddpm"`` (``eta = 1``);
    - ``restart``: the restart level as a fraction of the schedule (1 = noisiest); ``restarts``: the
      number of restarts (None: as many as the budget allows; 0: one pass only);
    - ``threshold``: sparse posterior weights (atoms whose logit is below it in magnitude get 0);
      ``activation``: ``"magnitude"`` (keep ``|logit| >= threshold``) or ``"positive"`` (keep
      ``logit >= threshold``: the in-memory factorizer's sparse positive activation, which also fixes
      each factor's sign);
    - ``estimate``: the estimate ``x_k`` a factor hands the others, ``"mean"`` (the posterior mean
      ``w_k X_k``) or ``"sign"`` (its sign: the nearest point of the bipolar cube every codeword
      lies on);
    - ``chains``: independent chains per problem, the best returned (None: chosen from the problem
      shape by :func:`~.defaults.auto_chains`: two, and more on the largest schemas);
    - ``compile``: run each iteration as one ``torch.compile``d function (:mod:`.fused`): several
      times cheaper an iteration at small batches after a one-time compilation of seconds per problem
      shape and process (a C++ compiler on a CPU, Triton on CUDA; where compilation fails, a warning
      and the same iteration eagerly). For the symmetric prior, guidance in the logits normalised by
      the null spread, the similarity energy and the built-in spaces;
    - ``merge``: factors searched as one (:mod:`~vsa_vision.decompose.merge`): ``"auto"`` joins the
      smallest while the joined codebook holds at most ``isqrt(prod n_k)`` combinations, an int is that
      cap, None (the default) searches every factor apart. The same search space over fewer factors:
      2 to 2.6 times faster on the shipped models' single encoder outputs, but far less accurate on
      bundles of several objects (``docs/BENCHMARKS.md``, joined factors), hence off by default;
    - the common options of every iterative decomposer: ``iterations``, ``seed``, ``keep_best``,
      ``stop_similarity``, ``sign_invariant``, ``record_trajectory``, and the patience rule
      ``patience``, ``patience_margin``, ``patience_long`` (on by default here: 100 quiet iterations
      and a lead of 0.05, or 150 quiet iterations, chosen on the shipped models' test and held-out
      encoder outputs, ``docs/BENCHMARKS.md``; None turns each off), and the give-up rule
      ``give_up`` for a caller's bar (off by default; the shipped set models' decode sets two thirds of its budget).

    ``guidance_scale``, ``steps``, ``lambda_min``, ``lambda_max``, ``eta``, ``restart``,
    ``threshold``, ``estimate`` and ``activation`` default to None: chosen per call from the
    problem's shape (:mod:`.defaults`; at high loads and D >= 1200 the capacity regime: sign
    estimates, positive activation, a prior whose noise is a small fraction of the guidance)."""

    iterations: int = 100
    seed: int = 0
    space: str | Callable[..., Any] = "codebook"
    prior: str = "symmetric"
    energy: str | Any = "similarity"
    guidance: str = "logits"
    guidance_scale: float | None = None
    normalize: str = "null"
    clip: float | None = None
    coupling: str = "sequential"
    schedule: str | Callable[..., Any] = "log_snr"
    steps: int | None = None
    lambda_min: float | None = None
    lambda_max: float | None = None
    spacing: str = "linear"
    step: str = "ddim"
    eta: float | None = None
    restart: float | None = None
    threshold: float | None = None
    restarts: int | None = None
    gamma: float = 1.0
    keep_best: bool = True
    stop_similarity: float | None = 0.5
    sign_invariant: bool = True
    record_trajectory: bool = False
    chains: int | None = None
    estimate: str | None = None
    activation: str | None = None
    patience: int | None = 100
    patience_margin: float = 0.05
    patience_long: int | None = 150
    give_up: int | None = None
    compile: bool = False
    merge: str | int | None = None

    def __post_init__(self) -> None:
        for name, choices in (("space", SPACES), ("energy", ENERGIES), ("schedule", SCHEDULES)):
            if isinstance(getattr(self, name), str):
                check_choice(name, getattr(self, name), tuple(choices))
        for name, choices in (("prior", ("symmetric", "positive")), ("guidance", ("logits", "dps")),
                              ("normalize", NORMALIZATIONS), ("coupling", ("sequential", "parallel")),
                              ("spacing", ("linear", "power", "inverse_power")), ("step", ("ddim", "ddpm"))):
            check_choice(name, getattr(self, name), choices)
        for name, choices in (("estimate", ("mean", "sign")), ("activation", ("magnitude", "positive"))):
            if getattr(self, name) is not None:
                check_choice(name, getattr(self, name), choices)
        ints = {"iterations": (1, False), "seed": (0, False), "steps": (1, True), "restarts": (0, True),
                "chains": (1, True), "patience": (1, True), "patience_long": (1, True),
                "give_up": (1, True)}
        floats = {"guidance_scale": (0.0, None), "clip": (0.0, None), "lambda_min": (None, None),
                  "lambda_max": (None, None), "eta": (0.0, 1.0), "restart": (0.0, 1.0), "threshold": (0.0, None),
                  "gamma": (1e-6, None), "stop_similarity": (0.0, 1.0), "patience_margin": (0.0, 1.0)}
        for name, (lo, optional) in ints.items():
            value = getattr(self, name)
            if value is not None or not optional:
                object.__setattr__(self, name, check_int(name, value, lo))
        for name, (lo, hi) in floats.items():
            allow_none = name not in ("gamma", "patience_margin")
            object.__setattr__(self, name, check_float(name, getattr(self, name), lo, hi, allow_none=allow_none))
        for name in ("keep_best", "sign_invariant", "record_trajectory", "compile"):
            object.__setattr__(self, name, bool(getattr(self, name)))
        if isinstance(self.merge, str):
            check_choice("merge", self.merge, ("auto",))
        elif self.merge is not None:
            object.__setattr__(self, "merge", check_int("merge", self.merge, 1))
        if self.compile:
            reason = covers(self, make_energy(self.energy, self.gamma))
            if reason is not None:
                raise ValueError(f"compile=True: the compiled iteration does not cover {reason}; use compile=False")
        if self.lambda_min is not None and self.lambda_max is not None and self.lambda_max < self.lambda_min:
            raise ValueError(f"lambda_max: expected >= lambda_min ({self.lambda_min}), got {self.lambda_max}")

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every option with its default."""
        return {f.name: f.default for f in fields(cls)}

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
