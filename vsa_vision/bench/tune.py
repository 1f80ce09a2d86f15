"""Hyperparameter search for a decomposer, reproducible from a seed.

``tune(method, n=80, trials=200, seed=0)`` draws ``trials`` settings from the method's search space
(Optuna's seeded TPE sampler when the ``tune`` extra is installed, else a seeded random search),
scores each on *tuning* problems made from ``seed``, then evaluates the best setting and the current
defaults on separate *evaluation* problems made from another seed, so the reported accuracy is not
the maximum of noisy trials. :func:`write_defaults` stores the chosen options where the registry
reads its defaults (``vsa_vision/defaults/<method>.json``).
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable
from typing import Any

from ..decompose.registry import DEFAULTS_DIR
from ..io import atomic_write
from .accuracy import evaluate
from .problems import make_problems

# each entry: (kind, low, high) for "float" / "logfloat" / "int", or ("choice", [options])
SPACES: dict[str, dict[str, tuple]] = {
    "diffusion": {
        "guidance_scale": ("logfloat", 0.15, 2.0),
        "steps": ("int", 2, 10),
        "lambda_min": ("float", -7.0, -1.0),
        "lambda_span": ("float", 0.5, 8.0),  # lambda_max = lambda_min + span
        "eta": ("float", 0.0, 1.0),
        "restart": ("float", 0.5, 1.0),
        "normalize": ("choice", ["zscore", "rms", "null"]),
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
            else:
                out[k] = rng.choice(spec[1])
        return out

    return draw


def _spec(method: str, opts: dict[str, Any]) -> str:
    return method + (":" + ",".join(f"{k}={v!r}" for k, v in opts.items()) if opts else "")


def tune(method: str, n: int = 80, k: int = 3, dim: int = 1000, iterations: int = 100, trials: int = 200,
         problems: int = 300, eval_problems: int = 500, seed: int = 0, eval_seed: int | None = None,
         log=print) -> dict[str, Any]:
    """Search ``method``'s options; returns a report with the best options and their evaluation."""
    if method not in SPACES:
        raise ValueError(f"method: no search space for {method!r}; tunable: {sorted(SPACES)}")
    if trials < 1:
        raise ValueError(f"trials: expected >= 1, got {trials}")
    eval_seed = seed + 10_000 if eval_seed is None else eval_seed
    if eval_seed == seed:
        raise ValueError("eval_seed: must differ from seed, so that evaluation problems are not tuning problems")
    space = SPACES[method]
    tune_p = make_problems(n, dim, problems, seed=seed, k=k)
    results: list[tuple[float, dict[str, Any]]] = []

    def score(params: dict[str, Any]) -> float:
        opts = _to_options(method, params)
        r = evaluate(_spec(method, opts), tune_p, iterations, seed)
        # ties broken by fewer iterations (cheaper)
        val = r["acc_all"] - 1e-4 * r["mean_iterations"] / iterations
        results.append((val, opts))
        if log:
            log(f"trial {len(results):4d}: all={100 * r['acc_all']:5.1f}% iters={r['mean_iterations']:5.1f} {opts}")
        return val

    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))

        def objective(trial):
            params = {}
            for key, spec in space.items():
                if spec[0] == "float":
                    params[key] = trial.suggest_float(key, spec[1], spec[2])
                elif spec[0] == "logfloat":
                    params[key] = trial.suggest_float(key, spec[1], spec[2], log=True)
                elif spec[0] == "int":
                    params[key] = trial.suggest_int(key, spec[1], spec[2])
                else:
                    params[key] = trial.suggest_categorical(key, spec[1])
            return score(params)

        study.optimize(objective, n_trials=trials)
        searcher = "optuna-tpe"
    except ImportError:
        draw = _random_sampler(space, seed)
        for _ in range(trials):
            score(draw())
        searcher = "random"
    best_val, best = max(results, key=lambda r: r[0])
    eval_p = make_problems(n, dim, eval_problems, seed=eval_seed, k=k)
    best_eval = evaluate(_spec(method, best), eval_p, iterations, eval_seed)
    default_eval = evaluate(method, eval_p, iterations, eval_seed)
    report = {
        "method": method, "searcher": searcher, "trials": trials, "seed": seed, "eval_seed": eval_seed,
        "problem": {"n": n, "K": k, "D": dim, "iterations": iterations, "tune_problems": problems,
                    "eval_problems": eval_problems},
        "options": best,
        "tune_score": best_val,
        "eval_acc_all": best_eval["acc_all"], "eval_ci": [best_eval["acc_all_lo"], best_eval["acc_all_hi"]],
        "previous_default_eval_acc_all": default_eval["acc_all"],
    }
    if log:
        log(f"best on evaluation problems: {100 * best_eval['acc_all']:.1f}% "
            f"(previous defaults {100 * default_eval['acc_all']:.1f}%) with {best}")
    return report


def write_defaults(report: dict[str, Any], path: str | None = None) -> str:
    """Write the tuned options (and how they were found) atomically; returns the path."""
    path = path or os.path.join(DEFAULTS_DIR, f"{report['method']}.json")

    def write(f):
        json.dump(report, f, indent=2, sort_keys=True)
        f.write("\n")

    atomic_write(path, write)
    return path
