"""Accuracy sweeps: every method on the same problems in the same run.

A method is given as a spec string ``name[:option=value,option=value]``, e.g.
``resonator:update=sync`` or ``attention_resonator:beta=20``. Results are rows of plain data that
:func:`write_csv` and :func:`plot_sweep` turn into files.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from ..decompose.registry import build_method, parse_method  # noqa: F401  (re-exported)
from ..io import atomic_write
from .figures import new_axes, save_figure
from .problems import Problems, make_problems
from .stats import wilson_interval

FIELDS = [
    "sweep", "method", "K", "n", "sizes", "D", "iterations", "flip", "snr_db", "problems",
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
    for b0 in range(0, B, batch_size):
        s = problems.s[b0:b0 + batch_size]
        truth = problems.indices[b0:b0 + batch_size].to(s.device)
        res = method.decompose(s, problems.codebooks)
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


def sweep_size(methods: Sequence[str], ns: Iterable[int | Sequence[int]], k: int = 3, dim: int = 1000,
               iterations: int = 100, problems: int = 200, seed: int = 0,
               flip: float = 0.0, snr_db: float | None = None, log=print) -> list[dict[str, Any]]:
    """Accuracy against codebook size n (K factors of n values each): the paper's Fig. 2."""
    rows = []
    for n in ns:
        # an int is K factors of n values; a list is one shape of unequal sizes
        p = make_problems(n, dim, problems, seed=seed, k=k, flip=flip, snr_db=snr_db)
        k = p.codebooks.num_factors
        n = max(p.codebooks.sizes)
        for spec in methods:
            r = evaluate(spec, p, iterations, seed)
            r.update(sweep="size", K=k, n=n, sizes="x".join(map(str, p.codebooks.sizes)), D=dim,
                     iterations=iterations, flip=flip, snr_db=snr_db, seed=seed)
            rows.append(r)
            if log:
                log(f"n={n:4d} {spec:40s} all={100 * r['acc_all']:5.1f}% "
                    f"[{100 * r['acc_all_lo']:.1f}, {100 * r['acc_all_hi']:.1f}] "
                    f"factors={100 * r['acc_factor']:5.1f}% {r['ms_per_problem']:.2f} ms/problem")
    return rows


def write_csv(rows: Sequence[dict[str, Any]], path: str) -> None:
    def w(f):
        wr = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        wr.writeheader()
        for r in rows:
            wr.writerow({k: r.get(k, "") for k in FIELDS})

    atomic_write(path, w)


def markdown_table(rows: Sequence[dict[str, Any]], column: str = "sizes") -> str:
    """A table with one row per method and one column per value of ``column``: 'all% (factor%)'."""
    cols = list(dict.fromkeys(str(r[column]) for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["method"], str(r[column])): r for r in rows}
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


def plot_sweep(rows: Sequence[dict[str, Any]], path: str, x: str, xlabel: str, title: str) -> None:
    """Accuracy (all factors right) with its 95% interval against ``x``, one line per method."""
    fig, ax = new_axes((6.4, 4.2))
    for m in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == m]
        xs = [float(r[x]) for r in rs]
        ys = [100 * r["acc_all"] for r in rs]
        lo = [100 * r["acc_all_lo"] for r in rs]
        hi = [100 * r["acc_all_hi"] for r in rs]
        ax.plot(xs, ys, marker="o", label=m)
        ax.fill_between(xs, lo, hi, alpha=0.15)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("all factors right (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)
