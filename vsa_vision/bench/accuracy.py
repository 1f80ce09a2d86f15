"""Accuracy sweeps: every method on the same problems in the same run.

A method is given as a spec string ``name[:option=value,option=value]``, e.g.
``resonator:update=sync`` or ``attention_resonator:beta=20``. Results are rows of plain data that
:func:`write_csv` and :func:`plot_sweep` turn into files.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from ..decompose.registry import (  # noqa: F401  (parse_method re-exported)
    build_method,
    capabilities,
    decomposer_options,
    parse_method,
    with_options,
)
from ..io import atomic_write
from .figures import new_axes, save_figure
from .problems import Problems, brute_force_flop, make_problems
from .stats import wilson_interval

FIELDS = [
    "sweep", "method", "K", "n", "sizes", "D", "iterations", "noise", "flip", "snr_db", "steps", "restart",
    "restarts", "problems",
    "acc_all", "acc_all_lo", "acc_all_hi", "acc_factor", "mean_iterations", "converged",
    "ms_per_problem", "seed",
]


def evaluate(spec: str, problems: Problems, iterations: int, seed: int = 0,
             batch_size: int = 1000) -> dict[str, Any]:
    """Run one method on ``problems``; returns accuracy, its 95% interval and cost."""
    method = build_method(spec, iterations, seed)
    B = len(problems)
    hits_all = hits_f = 0
    iters = conv = 0.0
    t0 = time.perf_counter()
    for res, truth in _batches(method, problems, batch_size):
        hit = res.indices == truth
        hits_all += int(hit.all(-1).sum())
        hits_f += int(hit.sum())
        iters += float(res.iterations.float().sum())
        conv += float(res.converged.float().sum())
    if problems.s.is_cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    lo, hi = wilson_interval(hits_all, B)
    K = problems.codebooks.num_factors
    return {
        "method": spec, "problems": B, "acc_all": hits_all / B, "acc_all_lo": lo, "acc_all_hi": hi,
        "acc_factor": hits_f / (B * K), "mean_iterations": iters / B, "converged": conv / B,
        "ms_per_problem": 1e3 * dt / B,
    }


def _batches(method, problems: Problems, batch_size: int):
    """``(Decomposition, true indices)`` for each batch of ``batch_size`` problems, in order."""
    for b0 in range(0, len(problems), batch_size):
        s = problems.s[b0:b0 + batch_size]
        yield method.decompose(s, problems.codebooks), problems.indices[b0:b0 + batch_size].to(s.device)


def is_exhaustive(spec: str) -> bool:
    """Whether the method of ``spec`` searches every combination (no budget; cost grows with it)."""
    return capabilities(spec).exhaustive


def _restarts(spec: str) -> bool:
    """Whether the method of ``spec`` runs passes of steps with restarts (the steps and restarts sweeps)."""
    return {"steps", "restart", "restarts"} <= set(decomposer_options(parse_method(spec)[0]))


def _run_point(methods: Sequence[str], p: Problems, iterations: int, seed: int, setting: dict[str, Any],
               max_brute_flop: float, log, options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    rows = []
    for spec in methods:
        run_spec = with_options(spec, **options) if options else spec
        if is_exhaustive(spec):
            cost = brute_force_flop(p.codebooks.sizes, p.codebooks.dim, len(p))
            if cost > max_brute_flop:
                if log:
                    log(f"{_describe(setting)} {spec:40s} skipped: {cost:.1e} FLOP > max_brute_flop")
                continue
        r = evaluate(run_spec, p, iterations, seed)
        r.update(setting)
        r.update(method=spec, K=p.codebooks.num_factors, n=max(p.codebooks.sizes),
                 sizes="x".join(map(str, p.codebooks.sizes)), D=p.codebooks.dim, iterations=iterations, seed=seed)
        rows.append(r)
        if log:
            log(f"{_describe(setting)} {spec:40s} all={100 * r['acc_all']:5.1f}% "
                f"[{100 * r['acc_all_lo']:.1f}, {100 * r['acc_all_hi']:.1f}] "
                f"factors={100 * r['acc_factor']:5.1f}% {r['ms_per_problem']:.2f} ms/problem")
    return rows


def _describe(setting: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in setting.items() if k != "sweep" and v not in (None, ""))


def noise_label(flip: float, snr_db: float | None) -> str:
    """``"none"``, ``"flip 20%"`` or ``"SNR -5 dB"``."""
    if snr_db is not None:
        return f"SNR {snr_db:g} dB"
    return f"flip {100 * flip:g}%" if flip else "none"


def sweep_size(methods: Sequence[str], ns: Iterable[int | Sequence[int]], k: int = 3, dim: int = 1000,
               iterations: int = 100, problems: int = 200, seed: int = 0,
               flip: float = 0.0, snr_db: float | None = None, max_brute_flop: float = 4e12,
               log=print) -> list[dict[str, Any]]:
    """Accuracy against codebook size n (K factors of n values each; a list in ``ns`` is one shape of
    unequal sizes): the paper's Fig. 2."""
    rows = []
    for n in ns:
        p = make_problems(n, dim, problems, seed=seed, k=k, flip=flip, snr_db=snr_db)
        rows += _run_point(methods, p, iterations, seed, {"sweep": "size", "flip": flip, "snr_db": snr_db,
                                                          "noise": noise_label(flip, snr_db)}, max_brute_flop, log)
    return rows


def sweep_dim(methods: Sequence[str], dims: Iterable[int], n: int = 50, k: int = 3, iterations: int = 100,
              problems: int = 200, seed: int = 0, max_brute_flop: float = 4e12, log=print) -> list[dict[str, Any]]:
    """Accuracy against the dimension D at a fixed codebook size (the paper's Fig. 3)."""
    rows = []
    for d in dims:
        p = make_problems(n, d, problems, seed=seed, k=k)
        rows += _run_point(methods, p, iterations, seed, {"sweep": "dim", "noise": "none"}, max_brute_flop, log)
    return rows


def sweep_noise(methods: Sequence[str], ns: Iterable[int], flips: Sequence[float] = (0.1, 0.2, 0.3),
                snrs: Sequence[float] = (0.0, -5.0), k: int = 3, dim: int = 1000, iterations: int = 100,
                problems: int = 200, seed: int = 0, max_brute_flop: float = 4e12,
                log=print) -> list[dict[str, Any]]:
    """Every method on the same corrupted vectors: no noise, sign flips, additive Gaussian noise."""
    rows = []
    conditions = [(0.0, None)] + [(f, None) for f in flips] + [(0.0, snr) for snr in snrs]
    for n in ns:
        for flip, snr in conditions:
            p = make_problems(n, dim, problems, seed=seed, k=k, flip=flip, snr_db=snr)
            rows += _run_point(methods, p, iterations, seed, {"sweep": "noise", "flip": flip, "snr_db": snr,
                                                              "noise": noise_label(flip, snr)}, max_brute_flop, log)
    return rows


def sweep_iterations(methods: Sequence[str], budgets: Iterable[int], n: int = 60, k: int = 3, dim: int = 1000,
                     problems: int = 200, seed: int = 0, max_brute_flop: float = 4e12,
                     log=print) -> list[dict[str, Any]]:
    """Accuracy against the iteration budget, so methods compare at equal cost (exhaustive search,
    which has no budget, is run once and repeated as a reference)."""
    rows = []
    p = make_problems(n, dim, problems, seed=seed, k=k)
    brute = [m for m in methods if is_exhaustive(m)]
    ref = _run_point(brute, p, 1, seed, {"sweep": "iterations", "noise": "none"}, max_brute_flop, log)
    for budget in budgets:
        rows += [{**r, "iterations": budget} for r in ref]
        rows += _run_point([m for m in methods if not is_exhaustive(m)], p, budget, seed,
                           {"sweep": "iterations", "noise": "none"}, max_brute_flop, log)
    return rows


def sweep_steps(methods: Sequence[str], steps: Iterable[int], n: int = 50, k: int = 3, dim: int = 1000,
                iterations: int = 100, problems: int = 200, seed: int = 0, max_brute_flop: float = 4e12,
                log=print) -> list[dict[str, Any]]:
    """Diffusion accuracy against the number of discretised steps per pass (the paper's Fig. 5), the
    restarts filling the rest of the budget; the other methods, which have no steps, are run once at
    the same budget as references (``steps`` empty)."""
    rows = []
    p = make_problems(n, dim, problems, seed=seed, k=k)
    rows += _run_point([m for m in methods if not _restarts(m)], p, iterations, seed,
                       {"sweep": "steps", "noise": "none"}, max_brute_flop, log)
    for st in steps:
        if st > iterations:
            raise ValueError(f"steps: {st} steps per pass exceed the budget of {iterations} iterations")
        rows += _run_point([m for m in methods if _restarts(m)], p, iterations, seed,
                           {"sweep": "steps", "noise": "none", "steps": st}, max_brute_flop, log,
                           options={"steps": st, "restarts": None})
    return rows


def sweep_restarts(methods: Sequence[str], rhos: Sequence[float], counts: Sequence[int], n: int = 40, k: int = 3,
                   dim: int = 1000, iterations: int = 100, problems: int = 200, seed: int = 0,
                   steps: int | None = 6, log=print) -> list[dict[str, Any]]:
    """Diffusion accuracy over the restart level rho x the number of restarts R (the paper's Fig. 4);
    only the diffusion methods in ``methods`` take part. A count whose passes do not fit the budget
    is cut to what fits, as the decomposer itself does. ``steps`` per pass applies to the specs that
    do not set it (None: the adaptive default): the restart level picks a level of the pass's
    schedule, so with the default's 3 steps a pass the levels 0.2 / 0.4 and 0.6 / 0.8 coincide."""
    diff = [m for m in methods if _restarts(m)]
    if not diff:
        raise ValueError("the restarts sweep needs at least one method with restarts (diffusion)")
    rows = []
    p = make_problems(n, dim, problems, seed=seed, k=k)
    for rho in rhos:
        for count in counts:
            for spec in diff:
                own = parse_method(spec)[1].get("steps")
                opts = {"restart": rho, "restarts": count}
                if own is None and steps is not None:
                    opts["steps"] = steps
                setting = {"sweep": "restarts", "noise": "none", "restart": rho, "restarts": count,
                           "steps": opts.get("steps", own)}
                rows += _run_point([spec], p, iterations, seed, setting, math.inf, log, options=opts)
    return rows


def write_csv(rows: Sequence[dict[str, Any]], path: str, fields: Sequence[str] = FIELDS) -> None:
    """Rows as CSV with the columns ``fields`` (missing values empty), written atomically."""
    def w(f):
        wr = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        wr.writeheader()
        for r in rows:
            wr.writerow({k: r.get(k, "") for k in fields})

    atomic_write(path, w)


def markdown_table(rows: Sequence[dict[str, Any]], column: str = "sizes") -> str:
    """A table with one row per method and one column per value of ``column``: 'all% (factor%)'.
    Rows without a value of ``column`` (references run once, e.g. baselines in the steps sweep) go
    in a column ``-``."""
    key = lambda r: str(r.get(column, "")) if r.get(column) not in (None, "") else "-"
    cols = list(dict.fromkeys(key(r) for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["method"], key(r)): r for r in rows}
    head = "| method | " + " | ".join(cols) + " |"
    sep = "| --- |" + " --- |" * len(cols)
    lines = [head, sep]
    for m in methods:
        vals = []
        for c in cols:
            r = cell.get((m, c))
            vals.append("" if r is None else f"{100 * r['acc_all']:.1f} ({100 * r['acc_factor']:.1f})")
        lines.append(f"| `{m}` | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def plot_sweep(rows: Sequence[dict[str, Any]], path: str, x: str, xlabel: str, title: str,
               logx: bool = False, ylabel: str = "all factors right (%)") -> None:
    """Accuracy (all factors right) with its 95% interval against ``x``, one line per method; a
    method with no value of ``x`` (a reference run once) is drawn as a dashed horizontal line."""
    fig, ax = new_axes((6.4, 4.2))
    for i, m in enumerate(dict.fromkeys(r["method"] for r in rows)):
        colour = f"C{i % 10}"
        rs = [r for r in rows if r["method"] == m and r.get(x) not in (None, "")]
        if not rs:
            ref = next(r for r in rows if r["method"] == m)
            ax.axhline(100 * ref["acc_all"], linestyle="--", linewidth=1, color=colour, label=f"{m} (reference)")
            continue
        xs = [float(r[x]) for r in rs]
        ys = [100 * r["acc_all"] for r in rs]
        lo = [100 * r["acc_all_lo"] for r in rs]
        hi = [100 * r["acc_all_hi"] for r in rs]
        ax.plot(xs, ys, marker="o", color=colour, label=m)
        ax.fill_between(xs, lo, hi, color=colour, alpha=0.15)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-2, 102)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_noise(rows: Sequence[dict[str, Any]], path: str, title: str) -> None:
    """One panel per n: accuracy (all factors right) of every method at each noise condition."""
    ns = list(dict.fromkeys(r["n"] for r in rows))
    fig, axes = new_axes((4.2 * len(ns) + 2.6, 4.2), ncols=len(ns))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for ax, n in zip(axes, ns):
        conds = list(dict.fromkeys(r["noise"] for r in rows if r["n"] == n))
        width = 0.8 / max(1, len(methods))
        for j, m in enumerate(methods):
            cell = {r["noise"]: r for r in rows if r["n"] == n and r["method"] == m}
            xs = [i + (j - (len(methods) - 1) / 2) * width for i, c in enumerate(conds) if c in cell]
            ys = [100 * cell[c]["acc_all"] for c in conds if c in cell]
            ax.bar(xs, ys, width=width, color=f"C{j % 10}", label=m)
        ax.set_xticks(range(len(conds)), conds, rotation=30, fontsize=8)
        ax.set_ylim(0, 102)
        ax.set_title(f"n = {n}")
        ax.set_ylabel("all factors right (%)")
        ax.grid(alpha=0.3, axis="y")
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title)
    save_figure(fig, path)


def plot_heatmap(rows: Sequence[dict[str, Any]], path: str, title: str) -> None:
    """Accuracy over restart level rho (rows) x number of restarts R (columns), one panel per method."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = new_axes((4.4 * len(methods) + 0.6, 4.0), ncols=len(methods))
    for ax, m in zip(axes, methods):
        rs = [r for r in rows if r["method"] == m]
        rhos = sorted(dict.fromkeys(float(r["restart"]) for r in rs))
        counts = sorted(dict.fromkeys(int(r["restarts"]) for r in rs))
        grid = torch.full((len(rhos), len(counts)), float("nan"))
        for r in rs:
            grid[rhos.index(float(r["restart"])), counts.index(int(r["restarts"]))] = 100 * r["acc_all"]
        im = ax.imshow(grid.numpy(), vmin=0, vmax=100, cmap="viridis", aspect="auto", origin="lower")
        for i in range(len(rhos)):
            for j in range(len(counts)):
                v = float(grid[i, j])
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if v < 60 else "black")
        ax.set_xticks(range(len(counts)), [str(c) for c in counts])
        ax.set_yticks(range(len(rhos)), [f"{r:g}" for r in rhos])
        ax.set_xlabel("restarts R")
        ax.set_ylabel("restart level rho")
        ax.set_title(m, fontsize=8)
    fig.colorbar(im, ax=axes[-1], label="all factors right (%)")
    fig.suptitle(title)
    save_figure(fig, path)


# -- the sweeps by name, with their defaults and --quick presets ---------------------------------

SWEEPS = ("size", "dim", "restarts", "steps", "noise", "iterations")

#: defaults of each sweep; ``quick`` overrides them so that the sweep runs in well under a minute
SWEEP_DEFAULTS: dict[str, dict[str, Any]] = {
    "size": {"ns": [10, 20, 30, 40, 50, 60, 80, 100, 150, 200], "ns_k4": [5, 10, 15, 20, 25, 30, 40]},
    "dim": {"n": 50, "values": [250, 500, 1000, 1500, 2000, 3000]},
    "restarts": {"n": 40, "rhos": [0.2, 0.4, 0.6, 0.8, 1.0], "counts": [0, 1, 2, 4, 8, 15]},
    "steps": {"n": 50, "values": [2, 3, 4, 6, 8, 12, 16, 25, 50, 100]},
    "noise": {"ns": [20, 40], "flips": [0.1, 0.2, 0.3], "snrs": [0.0, -5.0]},
    "iterations": {"n": 60, "values": [10, 20, 50, 100, 200, 500, 1000]},
}
QUICK: dict[str, dict[str, Any]] = {
    "size": {"ns": [10, 20], "problems": 50, "iterations": 50},
    "dim": {"n": 10, "values": [250, 500], "problems": 50, "iterations": 50},
    "restarts": {"n": 10, "rhos": [0.5, 1.0], "counts": [0, 2], "problems": 50, "iterations": 50},
    "steps": {"n": 10, "values": [2, 6], "problems": 50, "iterations": 50},
    "noise": {"ns": [10], "flips": [0.2], "snrs": [0.0], "problems": 50, "iterations": 50},
    "iterations": {"n": 10, "values": [10, 50], "problems": 50},
}


def run_sweep(sweep: str, methods: Sequence[str], out: str, *, k: int = 3, dim: int = 1000,
              iterations: int = 100, problems: int = 200, seed: int = 0, quick: bool = False,
              ns: Sequence[int] | None = None, sizes: Sequence[int] | None = None,
              values: Sequence[int] | None = None, rhos: Sequence[float] | None = None,
              counts: Sequence[int] | None = None, flips: Sequence[float] | None = None,
              snrs: Sequence[float] | None = None, flip: float = 0.0, snr_db: float | None = None,
              max_brute_flop: float = 4e12, log=print) -> tuple[list[dict[str, Any]], str]:
    """Run sweep ``sweep`` and write ``<out>/accuracy-<sweep>-<tag>.csv`` and ``.png``; returns the
    rows and the path stem. Arguments left ``None`` take :data:`SWEEP_DEFAULTS` (or :data:`QUICK`)."""
    if sweep not in SWEEPS:
        raise ValueError(f"sweep: expected one of {list(SWEEPS)}, got {sweep!r}")
    cfg = dict(SWEEP_DEFAULTS[sweep])
    if quick:
        cfg.update(QUICK[sweep])
    iterations = cfg.get("iterations", iterations)
    problems = cfg.get("problems", problems)
    n0 = ns[0] if ns else cfg.get("n")
    tag = "x".join(map(str, sizes)) if sizes else f"K{k}"
    stem = os.path.join(out, f"accuracy-{sweep}-{tag}")
    common = {"iterations": iterations, "problems": problems, "seed": seed, "log": log}
    head = f"D={dim}, {problems} problems"
    if sweep == "size":
        if sizes:
            grid = [list(sizes)]
        elif ns:
            grid = list(ns)
        else:
            grid = cfg["ns"] if k == 3 or quick else cfg["ns_k4"]
        rows = sweep_size(methods, grid, k=k, dim=dim, flip=flip, snr_db=snr_db, max_brute_flop=max_brute_flop,
                          **common)
        plot = lambda: plot_sweep(rows, stem + ".png", x="n", xlabel="codebook size n per factor",
                                  title=f"K={k}, {head}, {iterations} iterations")
    elif sweep == "dim":
        rows = sweep_dim(methods, values or cfg["values"], n=n0, k=k, max_brute_flop=max_brute_flop, **common)
        plot = lambda: plot_sweep(rows, stem + ".png", x="D", xlabel="dimension D",
                                  title=f"K={k}, n={n0}, {problems} problems, {iterations} iterations")
    elif sweep == "noise":
        rows = sweep_noise(methods, ns or cfg["ns"], flips=cfg["flips"] if flips is None else flips,
                           snrs=cfg["snrs"] if snrs is None else snrs, k=k, dim=dim,
                           max_brute_flop=max_brute_flop, **common)
        plot = lambda: plot_noise(rows, stem + ".png", title=f"K={k}, {head}, {iterations} iterations")
    elif sweep == "iterations":
        common.pop("iterations")
        rows = sweep_iterations(methods, values or cfg["values"], n=n0, k=k, dim=dim,
                                max_brute_flop=max_brute_flop, **common)
        plot = lambda: plot_sweep(rows, stem + ".png", x="iterations", xlabel="iteration budget",
                                  title=f"K={k}, n={n0}, {head}", logx=True)
    elif sweep == "steps":
        rows = sweep_steps(methods, values or cfg["values"], n=n0, k=k, dim=dim, max_brute_flop=max_brute_flop,
                           **common)
        plot = lambda: plot_sweep(rows, stem + ".png", x="steps", xlabel="diffusion steps per pass",
                                  title=f"K={k}, n={n0}, {head}, {iterations} iterations", logx=True)
    else:
        rows = sweep_restarts(methods, rhos or cfg["rhos"], counts or cfg["counts"], n=n0, k=k, dim=dim,
                              **common)
        plot = lambda: plot_heatmap(rows, stem + ".png",
                                    title=f"K={k}, n={n0}, {head}, {iterations} iterations")
    os.makedirs(out, exist_ok=True)
    write_csv(rows, stem + ".csv")
    plot()
    return rows, stem


def chain_independence(spec: str, problems: Problems, iterations: int, seeds: Sequence[int],
                       batch_size: int = 1000) -> list[dict[str, Any]]:
    """How independent the failures of separate runs of a stochastic method are: ``spec`` is run on
    ``problems`` once with each method seed in ``seeds``; row ``c`` gives the accuracy of the run
    with the ``c``-th seed alone and of the best of the first ``c`` runs (a problem counts as solved
    if any of them solved it), next to what fully independent failures would give
    (``1 - prod(1 - acc_i)``). Near-independent failures are what makes ``chains > 1`` pay."""
    if not seeds:
        raise ValueError("seeds: expected at least one method seed")
    if "seed" in parse_method(spec)[1]:
        raise ValueError(f"{spec}: the runs differ by their seed; leave it out of the spec and give --seeds")
    B = len(problems)
    any_hit = torch.zeros(B, dtype=torch.bool)
    miss_if_independent = 1.0
    rows = []
    for c, sd in enumerate(seeds, 1):
        method = build_method(spec, iterations, int(sd))
        hit = torch.cat([(res.indices == truth).all(-1).cpu() for res, truth in _batches(method, problems, batch_size)])
        any_hit |= hit
        acc = float(hit.float().mean())
        miss_if_independent *= 1.0 - acc
        union = int(any_hit.sum())
        lo, hi = wilson_interval(union, B)
        rows.append({"method": spec, "runs": c, "seed": int(sd), "problems": B, "acc_run": acc,
                     "acc_best_of": union / B, "acc_best_of_lo": lo, "acc_best_of_hi": hi,
                     "acc_if_independent": 1.0 - miss_if_independent})
    return rows
