"""Hyperparameter search for a decomposer, reproducible from a seed.

``tune(method, n=80, trials=200, seed=0)`` draws ``trials`` settings from the method's search space
(Optuna's seeded TPE sampler when the ``tune`` extra is installed, else a seeded random search),
scores each on *tuning* problems made from ``seed``, then evaluates the best setting and the current
defaults on separate *evaluation* problems made from another seed, so the reported accuracy is not
the maximum of noisy trials.

``tune(method, portfolio=PORTFOLIO)`` scores each setting by its mean accuracy over several problem
shapes at once (each with its own codebooks, budget and noise), so that one default serves them all
instead of the single shape it was tuned on. :func:`write_defaults` stores the chosen options in a file the
user names: fixed options (read back with :func:`vsa_vision.decompose.registry.tuned_options`), or an anchor
of the diffusion decomposer's adaptive defaults (:mod:`vsa_vision.decompose.diffusion.defaults`); the full
report of the search goes beside it.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from typing import Any

from ..decompose.diffusion.defaults import (
    ADAPTIVE_OPTIONS,
    FALLBACK_ANCHORS,
    MISSING,
    Anchor,
    anchors_in_force,
    problem_load,
    write_anchor,
)
from ..decompose.registry import capabilities, get_decomposer, method_spec
from ..io import atomic_write
from .accuracy import evaluate
from .problems import make_problems

#: the problem shapes of ``vsa-vision tune --portfolio``: where one default has to serve several shapes.
#: Each: codebook ``sizes`` (an int with ``k``, or a list), ``dim``, ``iterations``, ``problems`` per
#: trial, and optional sign ``flip`` noise.
PORTFOLIO: list[dict[str, Any]] = [
    {"name": "K=3 n=100, 100 iterations", "sizes": 100, "k": 3, "dim": 1000, "iterations": 100, "problems": 300},
    {"name": "K=3 n=150, 300 iterations", "sizes": 150, "k": 3, "dim": 1000, "iterations": 300, "problems": 200},
    {"name": "vision shape, 20% flips, 300 iterations", "sizes": [8, 10, 4, 12, 12, 2], "dim": 1024,
     "iterations": 300, "problems": 200, "flip": 0.2},
    {"name": "K=3 n=40, 20% flips, 100 iterations", "sizes": 40, "k": 3, "dim": 1000, "iterations": 100,
     "problems": 200, "flip": 0.2},
]

_K3 = {"k": 3, "dim": 1000}
#: named portfolios: ``mixed`` (above), and the anchors of the diffusion decomposer's adaptive
#: defaults: ``light`` (the vision shape, K = 6, exact and with 20% flips), ``small`` (K = 3, n = 50
#: and 60 at 100 iterations, n = 40 with 20% flips), ``low`` (K = 3, n = 80, 100 iterations), ``mid``
#: (n = 100, 100 iterations) and ``high`` (n = 150 / 200 with 300 / 1000 iterations). Tuning on an
#: anchor's portfolio writes that anchor, at the load and number of factors of its ``reference`` shape.
PORTFOLIOS: dict[str, dict[str, Any]] = {
    "mixed": {"shapes": PORTFOLIO},
    "light": {"reference": {"sizes": [8, 10, 4, 12, 12, 2], "dim": 1024}, "shapes": [
        {"name": "vision shape, exact, 300 iterations", "sizes": [8, 10, 4, 12, 12, 2], "dim": 1024,
         "iterations": 300, "problems": 200},
        PORTFOLIO[2]]},
    "small": {"reference": {"sizes": [60, 60, 60], "dim": 1000}, "shapes": [
        {"name": "K=3 n=50, 100 iterations", "sizes": 50, **_K3, "iterations": 100, "problems": 500},
        {"name": "K=3 n=60, 100 iterations", "sizes": 60, **_K3, "iterations": 100, "problems": 500},
        PORTFOLIO[3]]},
    "low": {"reference": {"sizes": [80, 80, 80], "dim": 1000}, "shapes": [
        {"name": "K=3 n=80, 100 iterations", "sizes": 80, **_K3, "iterations": 100, "problems": 500}]},
    "mid": {"reference": {"sizes": [100, 100, 100], "dim": 1000}, "shapes": [
        {"name": "K=3 n=100, 100 iterations", "sizes": 100, **_K3, "iterations": 100, "problems": 500}]},
    "high": {"reference": {"sizes": [150, 150, 150], "dim": 1000}, "max_dim": 3000, "shapes": [
        PORTFOLIO[1],
        {"name": "K=3 n=200, 1000 iterations", "sizes": 200, **_K3, "iterations": 1000, "problems": 100}]},
    # the capacity regime (the published in-memory factorizer's table, D = 1500): scored at a budget
    # near the mean iterations to beat, so that accuracy there measures the rate at which problems
    # are solved; searched in the sparse, hard-estimate regime only (PORTFOLIO_SPACES["capacity"]); the
    # anchors serve D >= 1200 only (at D = 400, 500 and 1000, loads 1.8, 2.6 and 2.1, the dense regime
    # solved more, or as many in fewer iterations)
    "capacity": {"reference": {"sizes": [214, 214, 214], "dim": 1500}, "space": "capacity", "min_dim": 1200, "shapes": [
        {"name": "K=3 n=214 D=1500, 150 iterations", "sizes": 214, "k": 3, "dim": 1500, "iterations": 150,
         "problems": 100}]},
    "vast": {"reference": {"sizes": [463, 463, 463], "dim": 1500}, "space": "capacity", "min_dim": 1200, "shapes": [
        {"name": "K=3 n=463 D=1500, 700 iterations", "sizes": 463, "k": 3, "dim": 1500, "iterations": 700,
         "problems": 60}]},
    # from D = 3000 the capacity regime serves from load 0.9 on (n = 345 at D = 4096), after a dense
    # anchor with the low anchor's settings (dense_wide, not searched); the high anchor stops there
    "wide": {"reference": {"sizes": [345, 345, 345], "dim": 4096}, "space": "capacity", "min_dim": 3000, "shapes": [
        {"name": "K=3 n=345 D=4096, 300 iterations", "sizes": 345, "k": 3, "dim": 4096, "iterations": 300,
         "problems": 60}]},
    # seven-factor vision schemas too large to enumerate cheaply (D = 4096)
    "vision7": {"reference": {"sizes": [10, 12, 6, 32, 32, 2, 8], "dim": 4096}, "shapes": [
        {"name": "10,12,6,32,32,2,8 D=4096, 300 iterations", "sizes": [10, 12, 6, 32, 32, 2, 8], "dim": 4096,
         "iterations": 300, "problems": 100}]},
    "vision7_large": {"reference": {"sizes": [10, 12, 6, 64, 64, 2, 12], "dim": 4096}, "shapes": [
        {"name": "10,12,6,64,64,2,12 D=4096, 1000 iterations", "sizes": [10, 12, 6, 64, 64, 2, 12],
         "dim": 4096, "iterations": 1000, "problems": 60}]},
}

# each entry: (kind, low, high) for "float" / "logfloat" / "int" / "logint", or ("choice", [options])
SPACES: dict[str, dict[str, tuple]] = {
    "diffusion": {
        "guidance_scale": ("logfloat", 0.1, 1.0),
        "steps": ("logint", 2, 16),
        "lambda_min": ("float", -6.0, -1.0),
        "lambda_span": ("float", 0.3, 6.0),  # lambda_max = lambda_min + span
        "eta": ("float", 0.3, 1.0),
        "restart": ("float", 0.7, 1.0),
        "normalize": ("choice", ["null", "zscore", "rms"]),
        "threshold": ("float", 0.0, 0.8),
        "estimate": ("choice", ["mean", "sign"]),
        "activation": ("choice", ["magnitude", "positive"]),
    },
    "stochastic_resonator": {
        "noise": ("logfloat", 0.003, 0.1),
        "threshold": ("float", 0.0, 0.12),
        "update": ("choice", ["sequential", "sync"]),
    },
    "attention_resonator": {
        "beta": ("logfloat", 0.5, 60.0),
        "update": ("choice", ["sequential", "sync"]),
    },
}


#: a portfolio's own search space (``"space"``), replacing the method's for the options it names: the
#: capacity regime of the diffusion decomposer (hard estimates, sparse positive activation, a weak
#: prior: the logits' noise is a small fraction of the guidance's)
PORTFOLIO_SPACES: dict[str, dict[str, tuple]] = {
    "capacity": {
        "guidance_scale": ("choice", [0.05]),
        "steps": ("choice", [3, 10, 30, 100]),
        "lambda_min": ("float", -14.0, -8.0),
        "lambda_span": ("float", 0.0, 4.0),
        "eta": ("float", 0.5, 1.0),
        "restart": ("float", 0.5, 1.0),
        "threshold": ("float", 0.06, 0.13),
        "estimate": ("choice", ["sign"]),
        "activation": ("choice", ["positive"]),
    },
}


def _to_options(method: str, params: dict[str, Any]) -> dict[str, Any]:
    opts = dict(params)
    if "lambda_span" in opts:
        opts["lambda_max"] = round(opts["lambda_min"] + opts.pop("lambda_span"), 4)
    return opts


def _random_sampler(space: dict[str, tuple], seed: int) -> Callable[[], dict[str, Any]]:
    rng = random.Random(seed)

    def draw() -> dict[str, Any]:
        out = {}
        for k, spec in space.items():
            if spec[0] == "float":
                out[k] = round(rng.uniform(spec[1], spec[2]), 4)
            elif spec[0] == "logfloat":
                out[k] = round(math.exp(rng.uniform(math.log(spec[1]), math.log(spec[2]))), 4)
            elif spec[0] == "int":
                out[k] = rng.randint(spec[1], spec[2])
            elif spec[0] == "logint":
                out[k] = int(round(math.exp(rng.uniform(math.log(spec[1]), math.log(spec[2])))))
            else:
                out[k] = rng.choice(spec[1])
        return out

    return draw


def _start_params(method: str, space: dict[str, tuple], shapes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The current defaults as a point of the search space (the first trial), so that the search
    never ends below them on its own problems; None when they are not all in the space."""
    d = get_decomposer(method)
    sh = shapes[0]
    opts = d.options()
    if capabilities(method).adaptive:  # adaptive options: their values on the first shape
        cb = _shape_problems(sh, 1, 0).codebooks
        opts.update(d.settings(cb))
    return _as_params(opts, space)


def _as_params(opts: dict[str, Any], space: dict[str, tuple]) -> dict[str, Any] | None:
    """Options as a point of the search space (clamped into it); None when one is missing."""
    opts = dict(opts)
    if "lambda_span" in space and "lambda_min" in opts and "lambda_max" in opts:
        opts["lambda_span"] = opts["lambda_max"] - opts["lambda_min"]
    params = {}
    for key, spec in space.items():
        v = opts.get(key)
        if v is None:
            return None
        if spec[0] == "choice":
            if v not in spec[1]:
                return None
        else:
            v = min(max(v, spec[1]), spec[2])
        params[key] = v
    return params


def _shape_problems(shape: dict[str, Any], count: int, seed: int):
    return make_problems(shape["sizes"], shape["dim"], count, seed=seed, k=shape.get("k"),
                         flip=shape.get("flip", 0.0))


def _search_space(method: str, only: list[str] | None) -> dict[str, tuple]:
    if method not in SPACES:
        raise ValueError(f"method: no search space for {method!r}; tunable: {sorted(SPACES)}")
    space = SPACES[method]
    if only is None:
        return space
    keep = {("lambda_span" if o == "lambda_max" else o) for o in only}
    unknown = sorted(keep - set(space))
    if unknown:
        raise ValueError(f"only: {unknown} are not in {method}'s search space {sorted(space)}")
    return {k: v for k, v in space.items() if k in keep}


def _suggest(trial, space: dict[str, tuple]) -> dict[str, Any]:
    """One point of ``space`` drawn by an Optuna trial."""
    params = {}
    for key, spec in space.items():
        if spec[0] == "float":
            params[key] = trial.suggest_float(key, spec[1], spec[2])
        elif spec[0] == "logfloat":
            params[key] = trial.suggest_float(key, spec[1], spec[2], log=True)
        elif spec[0] in ("int", "logint"):
            params[key] = trial.suggest_int(key, spec[1], spec[2], log=spec[0] == "logint")
        else:
            params[key] = trial.suggest_categorical(key, spec[1])
    return params


def _search(score: Callable[[dict[str, Any]], float], space: dict[str, tuple], first: list[dict[str, Any]],
            trials: int, seed: int) -> str:
    """Score ``trials`` points, ``first`` ones first: Optuna's seeded TPE where installed, else a seeded
    random search. Returns the searcher's name."""
    try:
        import optuna
    except ImportError:
        draw = _random_sampler(space, seed)
        for i in range(trials):
            score(first[i] if i < len(first) else draw())
        return "random"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    for p in first:
        study.enqueue_trial(p)
    study.optimize(lambda trial: score(_suggest(trial, space)), n_trials=trials)
    return "optuna-tpe"


def _evaluate_best(method: str, best: dict[str, Any], shapes: list[dict[str, Any]], eval_problems: int,
                   eval_seed: int, log) -> list[dict[str, Any]]:
    """The best setting and the current defaults on each shape's evaluation problems."""
    per_shape = []
    for i, sh in enumerate(shapes):
        eval_p = _shape_problems(sh, eval_problems, eval_seed + i)
        best_eval = evaluate(method_spec(method, **best), eval_p, sh["iterations"], eval_seed + i)
        default_eval = evaluate(method, eval_p, sh["iterations"], eval_seed + i)
        per_shape.append({"shape": sh, "eval_acc_all": best_eval["acc_all"],
                          "eval_ci": [best_eval["acc_all_lo"], best_eval["acc_all_hi"]],
                          "previous_default_eval_acc_all": default_eval["acc_all"]})
        if log:
            log(f"{sh.get('name', sh)}: {100 * best_eval['acc_all']:.1f}% on evaluation problems "
                f"(previous defaults {100 * default_eval['acc_all']:.1f}%)")
    return per_shape


def tune(method: str, n: int = 80, k: int = 3, dim: int = 1000, iterations: int = 100, trials: int = 200,
         problems: int = 300, eval_problems: int = 500, seed: int = 0, eval_seed: int | None = None,
         portfolio: list[dict[str, Any]] | None = None, only: list[str] | None = None,
         starts: list[dict[str, Any]] | None = None, space: dict[str, tuple] | None = None,
         log=print) -> dict[str, Any]:
    """Search ``method``'s options; returns a report with the best options and their evaluation.

    One problem shape (``n``, ``k``, ``dim``, ``iterations``, ``problems``) or, with ``portfolio``, a
    list of shapes (see :data:`PORTFOLIO`) scored by their mean accuracy; shape ``i`` draws its
    tuning problems from ``seed + i`` and its evaluation problems from ``eval_seed + i``. ``only``
    restricts the search to those options (the others keep their defaults); ``space`` replaces the
    ranges of the options it names. The first trial is the current defaults; ``starts`` (option
    dicts, e.g. the other anchors' settings) are tried next (each where it lies in the space)."""
    space = {**_search_space(method, only), **(space or {})}
    if trials < 1:
        raise ValueError(f"trials: expected >= 1, got {trials}")
    eval_seed = seed + 10_000 if eval_seed is None else eval_seed
    if eval_seed == seed:
        raise ValueError("eval_seed: must differ from seed, so that evaluation problems are not tuning problems")
    if portfolio is not None and not portfolio:
        raise ValueError("portfolio: expected at least one problem shape")
    shapes = portfolio if portfolio is not None else [
        {"name": f"K={k} n={n}, {iterations} iterations", "sizes": n, "k": k, "dim": dim,
         "iterations": iterations, "problems": problems}]
    first = [_start_params(method, space, shapes)] + [_as_params(o, space) for o in (starts or [])]
    first = [p for p in first if p is not None]
    tune_p = [_shape_problems(sh, sh["problems"], seed + i) for i, sh in enumerate(shapes)]
    results: list[tuple[float, dict[str, Any]]] = []

    def score(params: dict[str, Any]) -> float:
        opts = _to_options(method, params)
        accs, val = [], 0.0
        for i, (sh, p) in enumerate(zip(shapes, tune_p)):
            r = evaluate(method_spec(method, **opts), p, sh["iterations"], seed + i)
            accs.append(r["acc_all"])
            # ties broken by fewer iterations (cheaper)
            val += (r["acc_all"] - 1e-4 * r["mean_iterations"] / sh["iterations"]) / len(shapes)
        results.append((val, opts))
        if log:
            per = " ".join(f"{100 * a:5.1f}" for a in accs)
            log(f"trial {len(results):4d}: all={100 * sum(accs) / len(accs):5.1f}% ({per}) {opts}")
        return val

    searcher = _search(score, space, first, trials, seed)
    best_val, best = max(results, key=lambda r: r[0])
    per_shape = _evaluate_best(method, best, shapes, eval_problems, eval_seed, log)
    report = {
        "method": method, "searcher": searcher, "trials": trials, "seed": seed, "eval_seed": eval_seed,
        "options": best,
        "tune_score": best_val,
        "eval_acc_all": sum(r["eval_acc_all"] for r in per_shape) / len(per_shape),
        "previous_default_eval_acc_all":
            sum(r["previous_default_eval_acc_all"] for r in per_shape) / len(per_shape),
    }
    if portfolio is None:
        report["problem"] = {"n": n, "K": k, "D": dim, "iterations": iterations, "tune_problems": problems,
                             "eval_problems": eval_problems}
        report["eval_ci"] = per_shape[0]["eval_ci"]
    else:
        report["portfolio"] = per_shape
        report["eval_problems"] = eval_problems
    if log:
        log(f"best on evaluation problems: {100 * report['eval_acc_all']:.1f}% "
            f"(previous defaults {100 * report['previous_default_eval_acc_all']:.1f}%) with {best}")
    return report


def tune_anchor(name: str, trials: int = 40, eval_problems: int = 500, seed: int = 0,
                eval_seed: int | None = None, log=print) -> dict[str, Any]:
    """Tune the diffusion decomposer's adaptive-default anchor ``name`` (a portfolio with a
    ``reference`` shape): only the adaptive options are searched, starting from the current settings,
    then the other anchors' settings and the built-in fallback. The report carries the anchor's
    ``anchor`` name, ``load`` and ``factors``, ready for :func:`write_defaults`."""
    folio = PORTFOLIOS.get(name)
    if folio is None or "reference" not in folio:
        raise ValueError(f"anchor: expected one of {[n for n, f in PORTFOLIOS.items() if 'reference' in f]}, "
                         f"got {name!r}")
    ref = folio["reference"]
    load, factors = problem_load(ref["sizes"], ref["dim"]), len(ref["sizes"])
    others = [{**MISSING, **a.options} for a in (*anchors_in_force(), *FALLBACK_ANCHORS)
              if abs(a.load - load) > 1e-6 or a.factors not in (None, factors)]
    report = tune("diffusion", trials=trials, eval_problems=eval_problems, seed=seed, eval_seed=eval_seed,
                  portfolio=folio["shapes"], only=list(ADAPTIVE_OPTIONS), starts=others,
                  space=PORTFOLIO_SPACES.get(folio.get("space")), log=log)
    report.update(anchor=name, load=round(load, 4), factors=factors, min_dim=folio.get("min_dim"),
                  max_dim=folio.get("max_dim"))
    return report


def report_path(path: str, report: dict[str, Any]) -> str:
    """Where the full report of a search goes: beside the defaults file, named by its anchor."""
    stem = path[:-5] if path.endswith(".json") else path
    return f"{stem}-{report.get('anchor', 'options')}-report.json"


def write_defaults(report: dict[str, Any], path: str) -> str:
    """Write the tuned options to ``path`` atomically (and the full report beside it, see
    :func:`report_path`); returns the path.

    A report with an ``anchor`` (``tune --portfolio <anchor>``, e.g. ``light`` or ``vast``) becomes that anchor of
    the anchors file at ``path`` (the other anchors are kept; a new file starts from the anchors in
    force); any other report writes ``{"method", "options"}``."""
    if "anchor" in report:
        write_anchor(path, Anchor(report["anchor"], float(report["load"]), dict(report["options"]),
                                  report.get("factors"), report.get("min_dim"), report.get("max_dim")))
    else:
        data = {"method": report["method"], "options": report["options"]}
        atomic_write(path, lambda f: f.write(json.dumps(data, indent=2, sort_keys=True) + "\n"))
    atomic_write(report_path(path, report), lambda f: f.write(json.dumps(report, indent=2, sort_keys=True) + "\n"))
    return path
