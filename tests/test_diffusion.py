import json
import math

import pytest
import torch

from vsa_vision import Codebooks, get_decomposer
from vsa_vision.decompose.diffusion import (
    ddim_step,
    denoise_codebook,
    denoise_latent,
    gaussian_energy,
    log_snr_schedule,
    normalize_guidance,
    posterior_weights,
    similarity_energy,
    ve_schedule,
    vp_linear_schedule,
)

from .conftest import problems


def test_schedules_end_points():
    s = log_snr_schedule(7, -3.0, 5.0)
    assert len(s) == 7
    assert torch.allclose(s.log_snr[[0, -1]], torch.tensor([-3.0, 5.0], dtype=torch.float64))
    assert torch.allclose(s.alpha**2 + s.sigma**2, torch.ones(7, dtype=torch.float64))
    assert bool((s.log_snr.diff() > 0).all())  # noisiest first
    warped = log_snr_schedule(7, -3.0, 5.0, spacing="power")
    assert torch.allclose(warped.log_snr[[0, -1]], s.log_snr[[0, -1]])
    vp = vp_linear_schedule(10)
    assert float(vp.alpha[0]) < 0.01 and float(vp.alpha[-1]) > 0.99
    assert torch.allclose(vp.alpha**2 + vp.sigma**2, torch.ones(10, dtype=torch.float64))
    ve = ve_schedule(5, sigma_max=10.0, sigma_min=0.1)
    assert torch.equal(ve.alpha, torch.ones(5, dtype=torch.float64))
    assert math.isclose(float(ve.sigma[0]), 10.0) and math.isclose(float(ve.sigma[-1]), 0.1)
    with pytest.raises(ValueError, match="lambda_max"):
        log_snr_schedule(3, 2.0, 1.0)


def _mixture_mean(x, atoms, alpha, sigma):
    """Brute-force posterior mean of a uniform mixture of Dirac atoms under x = alpha x0 + sigma eps."""
    logp = -((x[:, None, :] - alpha * atoms[None]) ** 2).sum(-1) / (2 * sigma**2)
    w = torch.softmax(logp, dim=1)
    return w @ atoms


@pytest.mark.parametrize("prior", ["positive", "symmetric"])
@pytest.mark.parametrize("alpha,sigma", [(0.3, 0.95), (0.8, 0.6), (0.99, 0.14)])
def test_denoisers_equal_brute_force_posterior_mean(prior, alpha, sigma):
    torch.manual_seed(0)
    X = Codebooks.random({"a": 5}, dim=12, seed=1)["a"].double() / math.sqrt(12)
    atoms = X if prior == "positive" else torch.cat([X, -X])
    x = torch.randn(8, 12, dtype=torch.float64)
    assert torch.allclose(denoise_latent(x, X, alpha, sigma, prior), _mixture_mean(x, atoms, alpha, sigma))
    E = torch.eye(5, dtype=torch.float64)
    a = torch.randn(8, 5, dtype=torch.float64)
    atoms = E if prior == "positive" else torch.cat([E, -E])
    assert torch.allclose(denoise_codebook(a, alpha, sigma, prior), _mixture_mean(a, atoms, alpha, sigma))


@pytest.mark.parametrize("energy,kw", [(similarity_energy, {"lam": 1.7}), (gaussian_energy, {"gamma": 0.8})])
def test_energy_gradients_match_autograd(energy, kw):
    torch.manual_seed(1)
    s = torch.randn(4, 16, dtype=torch.float64)
    xs = [torch.randn(4, 16, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    e, grads = energy(s, xs, **kw)
    auto = torch.autograd.grad(e.sum(), xs)
    for g, a in zip(grads, auto):
        assert torch.allclose(g, a)


def test_normalize_guidance():
    g = torch.tensor([[1.0, 2.0, 3.0, 6.0]])
    z = normalize_guidance(g, "zscore")
    assert torch.allclose(z.mean(), torch.tensor(0.0), atol=1e-6)
    assert torch.allclose(z.std(unbiased=False), torch.tensor(1.0))
    r = normalize_guidance(g, "rms")
    assert torch.allclose(r.pow(2).mean(), torch.tensor(1.0))
    assert float(normalize_guidance(g, "zscore", clip=0.5).abs().max()) == 0.5
    with pytest.raises(ValueError, match="normalize"):
        normalize_guidance(g, "minmax")


def test_ddim_eta_zero_is_deterministic_and_eta_one_is_the_ddpm_posterior():
    torch.manual_seed(2)
    x, x0 = torch.randn(3, 6, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    a, s, an, sn = 0.5, math.sqrt(0.75), 0.8, 0.6
    one = ddim_step(x, x0, a, s, an, sn, eta=0.0, noise=torch.randn(3, 6, dtype=torch.float64))
    two = ddim_step(x, x0, a, s, an, sn, eta=0.0, noise=torch.randn(3, 6, dtype=torch.float64))
    assert torch.equal(one, two)
    # eta = 1: mean and variance of q(x_next | x_t, x0) for x_t = (a / an) x_next + noise
    at, s2 = a / an, s**2 - (a / an) ** 2 * sn**2
    mean = (at * sn**2 / s**2) * x + (an * s2 / s**2) * x0
    var = s2 * sn**2 / s**2
    z = torch.randn(3, 6, dtype=torch.float64)
    out = ddim_step(x, x0, a, s, an, sn, eta=1.0, noise=z)
    assert torch.allclose(out, mean + math.sqrt(var) * z)
    # to the clean end (sigma_next = 0) the step returns alpha_next * x0
    assert torch.allclose(ddim_step(x, x0, a, s, 1.0, 0.0), x0)


@pytest.mark.parametrize("sign_symmetric,prior", [(False, "positive"), (True, "symmetric")])
def test_attention_resonator_is_a_diffusion_step(sign_symmetric, prior):
    """Noise level fixed, guided point = the unbinding estimate u_k: one denoiser step of the
    latent-space diffusion equals one attention-resonator step with beta / D = alpha / sigma^2."""
    p = problems(15, dim=500, count=20, seed=3)
    cb = p.codebooks
    alpha, sigma = 0.6, 0.8
    beta = 500 * alpha / sigma**2
    att = get_decomposer("attention_resonator", iterations=1, similarity="dot", beta=beta,
                         sign_symmetric=sign_symmetric, update="sync", stop_similarity=None, keep_best=False)
    states = []
    att.decompose(p.s, cb, callback=lambda info: states.append(info.state.x))
    x0 = [X.mean(0).expand(20, -1) for X in cb.tensors]  # the resonator's initial superposition
    for k, X in enumerate(cb.tensors):
        u = p.s * math.prod(x0[j] for j in range(3) if j != k)
        step = denoise_latent(u, X, alpha, sigma, prior)
        assert torch.allclose(step, states[0][:, k], atol=1e-5, rtol=1e-4)
    # and the positive-prior weights with the |c|^2 term are the softmax of alpha <c, x> / sigma^2
    w = posterior_weights(torch.tensor([[1.0, 2.0]]), 0.5, 0.5, "positive", norm2=3.0)
    assert torch.allclose(w, torch.softmax(torch.tensor([[2.0, 4.0]]), -1))


VARIANTS = [
    {},
    {"space": "latent"},
    {"energy": "gaussian"},
    {"space": "latent", "energy": "gaussian"},
    {"prior": "positive", "guidance_scale": 1.0, "lambda_max": 2.0},
    {"prior": "positive", "space": "latent", "guidance_scale": 1.0, "lambda_max": 2.0},
    {"coupling": "parallel"},
    {"guidance": "dps", "guidance_scale": 1.0},
    {"restarts": 0, "steps": 100},
    {"step": "ddim", "eta": 0.0},
    {"normalize": "rms"},
    {"normalize": "null", "guidance_scale": 0.1},
    {"schedule": "vp_linear", "steps": 10},
    # the adaptive restart level is tuned as a fraction of the log-SNR schedule; on the geometric VE
    # schedule the same fraction re-noises far less (sigma 1.7 instead of 10 at restart 0.73), so the
    # VE variant restarts from its noisiest level
    {"schedule": "ve", "steps": 10, "restart": 1.0},
    {"threshold": 0.3},
    {"estimate": "sign"},
]


VARIANT_IDS = [",".join(f"{k}={v}" for k, v in o.items()) or "default" for o in VARIANTS]


@pytest.mark.parametrize("opts", VARIANTS, ids=VARIANT_IDS)
def test_every_variant_solves_small_problems(opts):
    # the variants of METHOD.md section 3 with dense posterior weights (the sparse-activation
    # threshold of the tuned defaults is itself a variant, and the default row keeps it)
    if opts:
        opts = {"threshold": 0.0, **opts}
    p = problems(10, dim=1000, count=100, seed=4)
    res = get_decomposer("diffusion", iterations=100, seed=0, **opts).decompose(p.s, p.codebooks)
    assert res.accuracy(p.indices)[0] >= 0.99, opts


def test_plan_keeps_the_budget_and_restarts():
    d = get_decomposer("diffusion", iterations=10, steps=3, restart=1.0)
    plan = d.plan()
    assert len(plan.alpha) == 10 and plan.passes == 4 and sum(plan.renoise) == 3
    assert plan.sigma_next[2] == 0.0 and plan.renoise[3]  # a pass ends clean, then restarts
    once = get_decomposer("diffusion", iterations=10, steps=3, restarts=0).plan()
    assert once.passes == 1 and not any(once.renoise)
    half = get_decomposer("diffusion", iterations=10, steps=4, restart=0.5).plan()
    assert half.alpha[4] == half.alpha[2]  # restarts from the middle of the schedule


def test_noisy_target_returns_best_so_far_answer():
    p = problems(20, dim=1000, count=40, seed=5, flip=0.3)
    best = torch.full((40,), -1.0)
    found = torch.zeros(40, dtype=torch.bool)  # the true answer was decoded at some iteration

    def watch(info):  # rows are chains: info.problems maps them to problems
        best.scatter_reduce_(0, info.problems, info.similarity, "amax")
        hit = (info.indices == p.indices[info.problems]).all(1)
        found.scatter_reduce_(0, info.problems, hit, "amax")

    res = get_decomposer("diffusion", iterations=60, stop_similarity=0.99).decompose(p.s, p.codebooks, callback=watch)
    assert torch.allclose(res.similarity, best)
    assert bool((res.iterations == 60).all()) and not bool(res.converged.any())  # 0.4 < 0.99: never stops
    # the truth (cosine 0.4) beats every wrong answer (~0.03): once seen, it is what comes back
    assert int(found.sum()) >= 30
    assert bool((res.indices[found] == p.indices[found]).all())


def test_solved_problems_leave_the_batch():
    p = problems(10, dim=1000, count=50, seed=6)
    active = []
    get_decomposer("diffusion", iterations=50, stop_similarity=1.0).decompose(
        p.s, p.codebooks, callback=lambda info: active.append(len(info.rows)))
    chains = get_decomposer("diffusion").chains_for(p.codebooks)
    assert active[0] == 50 * chains and active[-1] < 50 * chains and active == sorted(active, reverse=True)


def test_bad_options():
    with pytest.raises(ValueError, match="space: expected one of"):
        get_decomposer("diffusion", space="pixel")
    with pytest.raises(ValueError, match="eta: expected a finite number in \\[0.0, 1.0\\]"):
        get_decomposer("diffusion", eta=2.0)
    with pytest.raises(ValueError, match="lambda_max: expected >= lambda_min"):
        get_decomposer("diffusion", lambda_min=1.0, lambda_max=0.0)


# ---- adaptive defaults ---------------------------------------------------------------------------

ANCHORS = [
    {"load": 0.0, "options": {"guidance_scale": 0.2, "steps": 4, "lambda_min": -4.0, "lambda_max": -3.0,
                              "eta": 0.6, "restart": 1.0, "threshold": 0.0}},
    {"load": math.log(100), "options": {"guidance_scale": 0.8, "steps": 8, "lambda_min": -2.0, "lambda_max": 1.0,
                              "eta": 1.0, "restart": 0.8, "threshold": 0.4}},
]


def test_problem_load_is_log_search_space_over_squared_dimension():
    from vsa_vision.decompose.diffusion import problem_load

    assert problem_load([100, 100, 100], 1000) == pytest.approx(0.0, abs=1e-12)
    assert problem_load([8, 10, 4, 12, 12, 2], 1024) == pytest.approx(math.log(92160) - 2 * math.log(1024))
    with pytest.raises(ValueError, match="sizes"):
        problem_load([], 1000)


def test_auto_settings_interpolate_between_anchors_and_clamp_outside():
    from vsa_vision.decompose.diffusion import auto_settings

    assert _numbers(auto_settings([1], 1, ANCHORS)) == pytest.approx(ANCHORS[0]["options"])  # load 0: the light anchor
    assert _numbers(auto_settings([100], 1, ANCHORS)) == pytest.approx(ANCHORS[1]["options"])  # load ln 100
    mid = auto_settings([10], 1, ANCHORS)  # half way
    assert mid["guidance_scale"] == pytest.approx(0.4)  # geometric mean of 0.2 and 0.8
    assert mid["steps"] == 6 and mid["lambda_max"] == pytest.approx(-1.0) and mid["restart"] == pytest.approx(0.9)
    assert _numbers(auto_settings([10**5], 1, ANCHORS)) == pytest.approx(ANCHORS[1]["options"])  # no extrapolation
    assert _numbers(auto_settings([1], 10, ANCHORS)) == pytest.approx(ANCHORS[0]["options"])
    # an anchor written before an option existed reads it as "off": no threshold, the dense estimate
    old = [{"load": a["load"], "options": {k: v for k, v in a["options"].items() if k != "threshold"}}
           for a in ANCHORS]
    got = auto_settings([1], 1, old)
    assert got["threshold"] == 0.0 and got["estimate"] == "mean" and got["activation"] == "magnitude"


def _numbers(settings):
    """The numeric adaptive options of a settings dict (the named ones are checked on their own)."""
    return {k: v for k, v in settings.items() if not isinstance(v, str)}


def test_named_adaptive_options_come_from_the_nearer_anchor():
    from vsa_vision.decompose.diffusion import auto_settings

    hard = {**ANCHORS[1], "options": {**ANCHORS[1]["options"], "estimate": "sign", "activation": "positive"}}
    anchors = [ANCHORS[0], hard]  # loads 0 and ln 100
    for n, want in ((1, "mean"), (9, "mean"), (11, "sign"), (100, "sign")):  # ln n against the midpoint ln 10
        got = auto_settings([n], 1, anchors)
        assert got["estimate"] == want and got["activation"] == ("positive" if want == "sign" else "magnitude"), n
    # two regimes are not mixed: every option comes from the nearer anchor
    assert auto_settings([9], 1, anchors) == {**ANCHORS[0]["options"], "estimate": "mean", "activation": "magnitude"}
    assert auto_settings([11], 1, anchors) == hard["options"]
    # anchors of one regime still interpolate
    same = [ANCHORS[0], {**ANCHORS[1], "options": {**ANCHORS[1]["options"], "estimate": "mean"}}]
    assert auto_settings([9], 1, same)["threshold"] == pytest.approx(0.4 * math.log(9) / math.log(100))


def test_auto_settings_use_the_anchors_of_the_nearest_number_of_factors():
    from vsa_vision.decompose.diffusion import auto_settings

    many = {"load": 0.0, "factors": 6, "options": {**ANCHORS[1]["options"], "steps": 12}}
    three = [{**a, "factors": 3} for a in ANCHORS]
    anchors = three + [many]
    # K = 3 and K = 4 (nearer 3 than 6) interpolate between the K = 3 anchors only
    assert _numbers(auto_settings([1, 1, 1], 1, anchors)) == pytest.approx(ANCHORS[0]["options"])
    assert auto_settings([10, 10, 1, 1], 1, anchors)["steps"] == 8  # load ln 100: the heavy K = 3 anchor
    # K = 5 and more: the six-factor anchor, clamped at every load
    assert auto_settings([1] * 6, 1, anchors)["steps"] == 12
    assert auto_settings([10, 10, 10, 10, 10], 1, anchors)["steps"] == 12
    # a tie (K = 2 between factors 1 and 3) goes to the fewer factors; anchors without a count serve all
    one = {"load": 0.0, "factors": 1, "options": {**ANCHORS[0]["options"], "steps": 2}}
    assert auto_settings([1, 1], 1, three + [one])["steps"] == 2
    mixed = [ANCHORS[1], many]  # uncounted (load ln 100) beside six-factor (load 0)
    assert auto_settings([1] * 6, 1, mixed)["steps"] == 12
    assert auto_settings([10, 10, 1, 1, 1, 1], 1, mixed)["steps"] == 8
    assert auto_settings([1] * 6, 1, ANCHORS)["steps"] == 4


def _use_anchors(monkeypatch, tmp_path, anchors):
    """Point the decomposer at an anchors file holding ``anchors`` (as a user's tune would)."""
    from vsa_vision.decompose.diffusion.defaults import ANCHORS_ENV

    path = tmp_path / "anchors.json"
    path.write_text(json.dumps({"method": "diffusion", "anchors": [
        {"name": f"a{i}", **a} for i, a in enumerate(anchors)]}))
    monkeypatch.setenv(ANCHORS_ENV, str(path))
    return path


def test_decomposer_adapts_to_the_problem_shape_and_explicit_options_win(monkeypatch, tmp_path):
    _use_anchors(monkeypatch, tmp_path, ANCHORS)
    light = Codebooks.random({"a": 2, "b": 3}, 100, seed=0)  # load ln 6 - 2 ln 100 < 0
    heavy = Codebooks.random({"a": 100, "b": 100}, 10, seed=0)  # load ln 1e4 - 2 ln 10 = ln 100
    d = get_decomposer("diffusion", iterations=20)
    assert _numbers(d.settings(light)) == pytest.approx(ANCHORS[0]["options"])
    assert _numbers(d.settings(heavy)) == pytest.approx(ANCHORS[1]["options"])
    assert d.plan(light).passes == 5 and d.plan(heavy).passes == 3  # 4 and 8 steps a pass in 20 iterations
    fixed = get_decomposer("diffusion", iterations=20, steps=5, guidance_scale=0.3)
    cfg = fixed.settings(heavy)
    assert cfg["steps"] == 5 and cfg["guidance_scale"] == 0.3 and cfg["eta"] == 1.0
    # an explicit lambda_max below the adapted lambda_min pulls lambda_min down with it
    low = get_decomposer("diffusion", lambda_max=-5.0).settings(heavy)
    assert low["lambda_min"] == low["lambda_max"] == -5.0


def test_adaptive_settings_change_the_answer_path_not_the_api():
    light, heavy = problems(10, dim=1000, count=2, seed=9), problems(150, dim=1000, count=2, seed=9)
    d = get_decomposer("diffusion")
    assert d.settings(light.codebooks) != d.settings(heavy.codebooks)  # the shape picks the settings
    p = problems(10, dim=1000, count=30, seed=9)
    a = get_decomposer("diffusion", iterations=50, seed=1).decompose(p.s, p.codebooks)
    d = get_decomposer("diffusion", iterations=50, seed=1)
    b = get_decomposer("diffusion", iterations=50, seed=1, **d.settings(p.codebooks)).decompose(p.s, p.codebooks)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.iterations, b.iterations)  # same as spelt out


def test_shipped_anchors_choose_the_regime_by_dimension_and_load():
    from vsa_vision.decompose.diffusion import auto_settings

    def regime(n, dim):
        return auto_settings([n] * 3, dim)["estimate"]

    # D < 1200: the dense regime at every load (the capacity anchors serve D >= 1200)
    assert {regime(n, 1000) for n in (50, 200, 400)} == {"mean"}
    # D = 1500: dense up to n = 150, the capacity regime at the published table's n = 214 and 463
    assert (regime(150, 1500), regime(214, 1500), regime(463, 1500)) == ("mean", "sign", "sign")
    # D = 4096: dense at n = 250, the capacity regime from n = 345 (measured both ways)
    assert (regime(250, 4096), regime(345, 4096), regime(486, 4096)) == ("mean", "sign", "sign")
    # an anchor's own values come back exactly, not through the interpolation's arithmetic
    assert auto_settings([214] * 3, 1500)["guidance_scale"] == 0.05


def test_anchors_serve_the_dimensions_they_name():
    from vsa_vision.decompose.diffusion import auto_settings
    from vsa_vision.decompose.diffusion.defaults import Anchor

    big = {**ANCHORS[1], "min_dim": 1000}
    anchors = [ANCHORS[0], big]
    # load ln 100 at D = 1000 (sizes 1e8) and at D = 10 (sizes 1e4): the big anchor serves only the first
    assert auto_settings([10**8], 1000, anchors)["steps"] == 8
    assert auto_settings([10**4], 10, anchors)["steps"] == 4
    assert auto_settings([10**4], 10, [big])["steps"] == 8  # no other anchor: it serves anyway
    small = {**ANCHORS[1], "max_dim": 1000}  # below D = 1000 only
    assert auto_settings([10**8], 1000, [ANCHORS[0], small])["steps"] == 4
    assert auto_settings([10**4], 10, [ANCHORS[0], small])["steps"] == 8
    assert Anchor("a", 0.0, min_dim=10, max_dim=20).serves(10) and not Anchor("a", 0.0, max_dim=20).serves(20)
    # the nearest number of factors is chosen first: a K = 3 problem below every K = 3 anchor's
    # min_dim still gets a K = 3 anchor, not another K's
    three = {**ANCHORS[1], "factors": 3, "min_dim": 1000}
    six = {**ANCHORS[0], "factors": 6, "options": {**ANCHORS[0]["options"], "steps": 12}}
    assert auto_settings([10, 10, 10], 10, [three, six])["steps"] == 8


def test_a_malformed_dimension_bound_is_refused_when_the_anchors_load(tmp_path):
    from vsa_vision.decompose.diffusion.defaults import load_anchors

    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"anchors": [{"name": "a", "load": 0.0, "options": {}, "min_dim": "big"}]}))
    with pytest.raises(ValueError, match="anchor .* is malformed"):
        load_anchors(str(path))


def test_positive_activation_keeps_only_atoms_the_guidance_favours():
    proj = torch.tensor([[0.1, -0.5, 2.0, -0.05, 0.4]])
    dense = posterior_weights(proj, 1.0, 1.0, "symmetric")
    pos = posterior_weights(proj, 1.0, 1.0, "symmetric", threshold=0.3, activation="positive")
    assert pos[0, 1] == 0  # logit -0.5: kept by magnitude, dropped here
    assert torch.equal(pos[0, [2, 4]], dense[0, [2, 4]]) and (pos[0, [0, 1, 3]] == 0).all()
    mag = posterior_weights(proj, 1.0, 1.0, "symmetric", threshold=0.3)
    assert mag[0, 1] == dense[0, 1] != 0
    # near zero the kept weights are linear in the logits (sinh l ~ l), as the in-memory factorizer's
    small = posterior_weights(1e-3 * torch.tensor([[1.0, 2.0, 4.0]]), 1.0, 1.0, "symmetric", threshold=1.5e-3,
                              activation="positive")
    assert small[0, 0] == 0 and small[0, 2] / small[0, 1] == pytest.approx(2.0, rel=1e-5)
    with pytest.raises(ValueError, match="activation: expected 'magnitude' or 'positive'"):
        posterior_weights(proj, 1.0, 1.0, threshold=0.3, activation="relu")
    # at threshold 0 the positive activation still drops the negative logits
    zero = posterior_weights(proj, 1.0, 1.0, "symmetric", threshold=0.0, activation="positive")
    assert (zero[0, [1, 3]] == 0).all() and torch.equal(zero[0, [0, 2, 4]], dense[0, [0, 2, 4]])
    # where no atom reaches the threshold: the positive ones keep their weights; where none is
    # positive, the largest logit's atom alone; never a negative weight
    weak = torch.tensor([[0.1, -0.2, 0.05], [-0.3, -0.1, -0.2]])
    w = posterior_weights(weak, 1.0, 1.0, "symmetric", threshold=0.5, activation="positive")
    full = posterior_weights(weak, 1.0, 1.0, "symmetric")
    assert torch.equal(w[0], torch.where(weak[0] > 0, full[0], torch.zeros(3)))
    assert (w[1, [0, 2]] == 0).all() and w[1, 1] == full[1, 1] != 0


def test_sign_estimate_makes_every_estimate_bipolar():
    p = problems(20, dim=500, count=6, seed=2)
    seen = []
    d = get_decomposer("diffusion", iterations=5, estimate="sign", stop_similarity=None, keep_best=False)
    d.decompose(p.s, p.codebooks, callback=lambda info: seen.append(info.state.x))
    assert seen and all(((x == 1) | (x == -1)).all() for x in seen)
    seen.clear()
    get_decomposer("diffusion", iterations=5, estimate="mean", stop_similarity=None,
                   keep_best=False).decompose(p.s, p.codebooks, callback=lambda info: seen.append(info.state.x))
    assert not all(((x == 1) | (x == -1)).all() for x in seen)  # the dense estimate is a superposition
    with pytest.raises(ValueError, match="estimate: expected one of"):
        get_decomposer("diffusion", estimate="round")
    with pytest.raises(ValueError, match="activation: expected one of"):
        get_decomposer("diffusion", activation="relu")


def test_threshold_zeroes_weak_atoms_and_keeps_the_rest():
    proj = torch.tensor([[0.1, -0.5, 2.0, -0.05]])
    dense = posterior_weights(proj, 1.0, 1.0, "symmetric")
    sparse = posterior_weights(proj, 1.0, 1.0, "symmetric", threshold=0.3)
    assert sparse[0, 0] == 0 and sparse[0, 3] == 0  # |logit| < 0.3
    assert torch.equal(sparse[0, 1:3], dense[0, 1:3])  # the others keep their weights
    assert torch.equal(posterior_weights(proj, 1.0, 1.0, "symmetric", threshold=0.0), dense)
    # a row where no atom reaches the threshold keeps them all: a zero estimate of one factor would
    # unbind every other factor's target to zero
    weak = torch.tensor([[0.1, -0.2], [0.1, 0.9]])
    w = posterior_weights(weak, 1.0, 1.0, "symmetric", threshold=0.5)
    assert torch.equal(w[0], posterior_weights(weak, 1.0, 1.0, "symmetric")[0])
    assert w[1, 0] == 0 and w[1, 1] != 0


@pytest.mark.parametrize("energy", ["similarity", "gaussian"])
def test_the_guidance_the_sampler_uses_is_the_tested_energy_gradient(energy):
    """The step calls ``energy.guidance``: it must equal ``X_k (-grad_{x_k} E)`` of the energy whose
    gradients the tests above check against autograd."""
    from vsa_vision.decompose.diffusion import ENERGIES
    from vsa_vision.vsa import LeaveOneOut

    e = ENERGIES[energy](gamma=1.7) if energy == "gaussian" else ENERGIES[energy](lam=1.3)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(5, 64, generator=g).sign()
    xs = [torch.randn(4, 64, generator=g) for _ in range(3)]
    s = torch.randn(4, 64, generator=g)
    grads = e.grads(s, xs)
    squares = LeaveOneOut.all([x * x for x in xs])
    for k, u in enumerate(LeaveOneOut.all(xs, start=s)):
        guided = e.guidance(u, xs[k], squares[k] if e.needs_squares else None, X)
        assert torch.allclose(guided, -grads[k] @ X.T, rtol=1e-4, atol=1e-5)
    # and the gradients are those of the energy's value
    leaves = [x.clone().requires_grad_(True) for x in xs]
    e.value(s, leaves).sum().backward()
    for k in range(3):
        assert torch.allclose(leaves[k].grad, grads[k], rtol=1e-4, atol=1e-6)


def test_one_config_for_the_class_and_the_registry():
    from vsa_vision.decompose import DiffusionDecomposer
    from vsa_vision.decompose.diffusion import DiffusionConfig

    assert DiffusionDecomposer().options() == get_decomposer("diffusion").options() == DiffusionConfig().as_dict()
    d = get_decomposer("diffusion", space="latent", steps=4)
    assert d.space == "latent" and d.config.steps == 4 and d.normalize == DiffusionConfig().normalize
    with pytest.raises(Exception, match="cannot assign"):
        d.config.steps = 5  # frozen
    again = DiffusionDecomposer(d.config, chains=1)
    assert again.steps == 4 and again.chains == 1 and d.chains is None  # None: chosen from the problem
    assert d.chains_for(Codebooks.random({"a": 10, "b": 10, "c": 10}, 256, seed=0)) == 2
    with pytest.raises(ValueError, match="energy: expected one of"):
        DiffusionConfig(energy="cosine")
    with pytest.raises(TypeError, match="unknown option.*'stepz'.*valid options"):
        get_decomposer("diffusion", stepz=3)
    with pytest.raises(AttributeError):
        d.nonsense  # noqa: B018


def test_schedule_energy_and_space_can_be_passed_as_objects():
    from vsa_vision.decompose.diffusion import GaussianEnergy, LatentSpace, log_snr_schedule

    p = problems(8, dim=500, count=10, seed=2)
    by_name = get_decomposer("diffusion", iterations=30, seed=1, energy="gaussian", gamma=2.0, space="latent",
                             schedule="log_snr").decompose(p.s, p.codebooks)
    by_object = get_decomposer("diffusion", iterations=30, seed=1, energy=GaussianEnergy(gamma=2.0),
                               space=LatentSpace, schedule=log_snr_schedule).decompose(p.s, p.codebooks)
    assert torch.equal(by_name.indices, by_object.indices) and torch.equal(by_name.iterations, by_object.iterations)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_diffusion_solves_float16_and_bfloat16_problems_as_in_float32(dtype):
    p = problems(10, dim=256, count=20)
    d = get_decomposer("diffusion", iterations=50, seed=0)
    ref = d.decompose(p.s, p.codebooks)
    low = d.decompose(p.s.to(dtype), p.codebooks.to(dtype=dtype))
    assert torch.equal(low.indices, ref.indices) and torch.equal(low.indices, p.indices)
    assert low.similarity.dtype == dtype and bool(torch.isfinite(low.confidence).all())
