"""Coupled inference in diffusion models: K diffusion processes, one per factor, coupled by a
reconstruction energy (Yeung, Zakeri, Zou & Imani).

Composed from small parts, each usable and tested alone, in the manner of k-diffusion's samplers:

- :mod:`.schedules`: noise levels ``(alpha_t, sigma_t)`` from the noisiest to the cleanest
  (:func:`log_snr_schedule`, :func:`vp_linear_schedule`, :func:`ve_schedule`, or any function);
- :mod:`.denoisers`: the exact posterior mean (Tweedie) of a codebook prior, uniform over the
  codewords (``"positive"``) or over ``+-`` them (``"symmetric"``), and the two spaces the sampler
  runs in: codebook space (R^n, one-hot atoms) and latent space (R^D, tracked through its
  projection on the codebook, with the projected noise drawn exactly);
- :mod:`.energies`: the reconstruction energies coupling the factors through ``s``,
  ``E_S = -lam <s, prod_k x_k> / D`` and ``E_G = |s - prod_k x_k|^2 / (2 gamma^2 D)``, their
  gradients, and the guidance ``g_k = X_k (-grad_{x_k} E)`` of each factor, normalised over the
  codebook and applied inside the posterior logits (``guidance="logits"``) or as a DPS-style shift;
- :mod:`.sampler`: the DDIM step (``eta`` in [0, 1]; 1 is the DDPM ancestral step), the plan of
  restarts (after a pass of ``steps`` levels the estimates are re-noised to the fraction
  ``restart`` of the schedule and the pass runs again, within the budget), and the decomposer;
- :mod:`.config`: every option in one frozen record, :class:`DiffusionConfig`;
- :mod:`.defaults`: the adaptive defaults (options chosen per problem shape from tuned anchors).

**Sparse posterior.** ``threshold > 0`` zeroes the weight of every atom whose logit is below it in
magnitude (the stochastic resonator's activation threshold, moved into the posterior), except where
no atom of a factor reaches it.

**Chains.** ``chains`` independent chains solve each problem at once, as one batch, with their own
noise (default: chosen from the problem shape, :func:`~.defaults.auto_chains`: two, four or eight on
the largest schemas); a problem stops when any chain explains ``s`` and returns the best chain's answer.
Across iterations the driver keeps the best answer by similarity of its bound codewords to ``s``.

Measured accuracy and cost of every variant: ``docs/BENCHMARKS.md``.
"""

from .config import DiffusionConfig
from .defaults import ADAPTIVE_OPTIONS, Anchor, anchors_in_force, auto_chains, auto_settings, problem_load
from .denoisers import SPACES, CodebookSpace, LatentSpace, denoise_codebook, denoise_latent, posterior_weights
from .energies import (
    ENERGIES,
    GaussianEnergy,
    SimilarityEnergy,
    gaussian_energy,
    normalize_guidance,
    similarity_energy,
)
from .sampler import DiffusionDecomposer, DiffusionState, Plan, ddim_step, plan_levels
from .schedules import SCHEDULES, Schedule, log_snr_schedule, make_schedule, ve_schedule, vp_linear_schedule

__all__ = [
    "DiffusionDecomposer", "DiffusionConfig", "DiffusionState",
    "problem_load", "auto_settings", "auto_chains", "anchors_in_force", "Anchor", "ADAPTIVE_OPTIONS",
    "Schedule", "SCHEDULES", "make_schedule", "vp_linear_schedule", "log_snr_schedule", "ve_schedule",
    "posterior_weights", "denoise_latent", "denoise_codebook", "SPACES", "CodebookSpace", "LatentSpace",
    "SimilarityEnergy", "GaussianEnergy", "ENERGIES", "similarity_energy", "gaussian_energy", "normalize_guidance",
    "ddim_step", "Plan", "plan_levels",
]
