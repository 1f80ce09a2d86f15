"""Capacity benchmarks: how large a search space each method solves, and published tables reproduced.

**The capacity frontier** (:func:`capacity_frontier`): for each method and dimension D, the largest
search space solved with accuracy (every factor right) at least ``target`` within the iteration
budget, on fresh random problems per size. Two shapes: ``"k3"``, three factors of n values (search
space n^3, n searched), and ``"vision"``, the seven factors of a vision-like schema
``[10, 12, 6, p, p, 2, 8]`` (shape, colour, size, x, y, outline, rotation-like; search space
11,520 p^2, the grid p searched). The search grows the parameter geometrically until a size fails,
then bisects between the last pass and the first fail down to ``resolution``; each size is
evaluated in chunks and abandoned as soon as its failures exceed what ``target`` allows. Exhaustive
methods are not searched (always right; their limit is time: :func:`exhaustive_crossover`).
:data:`PUBLISHED_CAPACITY` holds published points to draw beside ours (:func:`plot_capacity`).

**The exhaustive-search crossover** (:func:`exhaustive_crossover`): an iterative method against
exhaustive search on the same problems, per schema: accuracy and time per problem side by side, and
the smallest search space from which the iterative method is faster.

**The in-memory factorizer reproduced** (:func:`reproduce_imf`): the in-memory factorizer with
asymmetric codebooks (``get_decomposer("in_memory_factorizer")``) on the problems of IBM's published
table (``experiments/300a_assymetric_cb/f3_optimum.csv``: d = 1500, three factors), one row per
codebook size, side by side with the published accuracy and mean iterations.

``protocol="repo"`` is the repository's experiment (``main_capacity.py``): codebooks drawn as it
draws them (:func:`repo_codebooks`: every codeword exactly D/2 entries +1; rolled copies of factor
0 where the table says ``perm``), the targets bound from the *perturbed* codebooks (its ``encode``
multiplies rows of the modified item memory), which are therefore the codebooks handed to the
decomposer; its projection codebooks (the perturbation undone) are then the clean ones, as in the
repository. ``protocol="bipolar"``: the clean bipolar codebooks encode the targets and are handed to
the decomposer, which projects with a perturbed copy: the project's own setting.

The published accuracy is the fraction of *factors* right (``main_capacity.py`` L216); the
published iterations count the detection iteration plus one (``densebipolarbatched.py`` L473,
L507; at most the cap). Each row reports both our count and the repository's, and both accuracies.
"""

from __future__ import annotations

import csv
import hashlib
import math
import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import torch

from ..checks import check_choice, check_float, check_int, check_positive_sizes
from ..decompose import get_decomposer
from ..decompose.in_memory import PUBLISHED, iteration_cap
from ..decompose.registry import build_method, capabilities
from ..vsa import Codebooks
from .figures import new_axes, save_figure
from .problems import Problems, make_problems
from .speed import synchronize, timed_decompose
from .stats import wilson_interval

__all__ = ["repo_codebooks", "reproduce_imf", "capacity_frontier", "plot_capacity",
           "capacity_table", "shape_sizes", "frontier_problems", "search_frontier", "evaluate_size",
           "iteration_budget", "chains_of", "problem_seed", "start_guess", "DEFAULT_ITERATIONS",
           "PUBLISHED_CAPACITY", "CAPACITY_FIELDS", "read_capacity_csv"]

def repo_codebooks(n: int, dim: int, factors: int, rolled: bool, seed: int) -> Codebooks:
    """Codebooks as ``densebipolarbatched`` draws them with ``im_sampling="ExactDense"`` (L181-189):
    each codeword has exactly ``dim // 2`` entries +1; ``rolled``: factor k is factor 0 rolled by k
    along D (``permutation=True``), else every factor is drawn on its own. Drawn on the CPU."""
    gen = torch.Generator().manual_seed(seed)

    def draw() -> torch.Tensor:
        return (torch.rand(n, dim, generator=gen).argsort(1) < dim // 2).float() * 2 - 1

    first = draw()
    books = [torch.roll(first, k, 1) if rolled else (first if k == 0 else draw()) for k in range(factors)]
    return Codebooks.from_tensors({f"f{k}": b for k, b in enumerate(books)})


def reproduce_imf(sizes: Sequence[int] = (99, 214), dim: int = 1500, problems: int = 300, seed: int = 0,
                  protocol: str = "repo", device: str = "cpu", **options: Any) -> list[dict[str, Any]]:
    """One row per codebook size n (three factors): accuracy and mean iterations of the in-memory
    factorizer on ``problems`` random problems over one codebook draw (the repository also uses one
    draw per row), next to the published row for that n (None where the table has none).

    The decomposer runs with its defaults (the published threshold and flipped fraction for the
    search space, the repository's iteration cap) and the table's flip pattern; ``options`` override
    them. ``seed`` seeds the codebooks, the answers and the decomposer."""
    if protocol not in ("repo", "bipolar"):
        raise ValueError(f"protocol: expected one of ['repo', 'bipolar'], got {protocol!r}")
    published = {row[0]: row for row in PUBLISHED}
    rows = []
    for n in sizes:
        pub = published.get(n)
        rolled = bool(pub[3]) if pub is not None else False
        opts = {"seed": seed, "flip_pattern": "rolled" if rolled else "independent", **options}
        d = get_decomposer("in_memory_factorizer", **opts)
        cb = repo_codebooks(n, dim, 3, opts["flip_pattern"] == "rolled", seed)
        if protocol == "repo":  # the perturbed codebooks encode and are read; projecting undoes it
            cb = Codebooks.from_tensors(dict(zip(cb.names, d.projection_codebooks(cb))), check_bipolar=False)
        cb = cb.to(device)
        gen = torch.Generator().manual_seed(seed + 1)
        truth = torch.randint(0, n, (problems, 3), generator=gen).to(device)
        s = cb.bind_indices(truth)
        cfg = d.settings(cb)
        res, wall = timed_decompose(d, s, cb, device)
        hit = res.indices == truth
        its = res.iterations.double()
        repo_its = (its + res.converged.double()).clamp(max=cfg["iterations"])
        rows.append({
            "n": n, "factors": 3, "dim": dim, "search_space": n ** 3, "protocol": protocol, "problems": problems,
            "seed": seed, "threshold": cfg["threshold"], "flip_fraction": cfg["flip_fraction"],
            "flip_pattern": opts["flip_pattern"], "cap": iteration_cap([n] * 3),
            "accuracy": float(hit.all(1).double().mean()), "factor_accuracy": float(hit.double().mean()),
            "converged": float(res.converged.double().mean()),
            "mean_iterations": float(its.mean()), "mean_iterations_repo_count": float(repo_its.mean()),
            "iterations_sem": float(its.std() / math.sqrt(problems)) if problems > 1 else 0.0,
            "median_iterations": float(its.median()), "max_iterations": int(res.iterations.max()),
            "published_factor_accuracy": None if pub is None else pub[4],
            "published_iterations": None if pub is None else pub[5],
            "wall_s": round(wall, 2), "device": device,
        })
    return rows


# -- the capacity frontier ---------------------------------------------------------------------

#: the iteration budget of the frontier and the crossover when none is given
DEFAULT_ITERATIONS = 1000
#: per shape: the name of the searched parameter and its least value
SHAPES = {"k3": ("n", 2), "vision": ("p", 1)}
#: the vision-like schema's fixed factors: shape, colour, size, (x, y: the grid p), outline, rotation-like
VISION_FIXED = (10, 12, 6, 2, 8)

CAPACITY_FIELDS = [
    "method", "shape", "dim", "parameter", "frontier", "sizes", "search_space", "log10_space", "accuracy",
    "acc_lo", "acc_hi", "fail_at", "fail_search_space", "fail_accuracy", "fail_evaluated", "capped", "cap",
    "iterations", "mean_iterations", "chains", "chain_iterations", "ms_per_problem", "sizes_tried",
    "problems_run", "wall_s", "device", "problems", "target", "seed",
]

#: published capacities to draw beside ours (three factors of n values; not our protocol: see each source)
PUBLISHED_CAPACITY: list[dict[str, Any]] = [
    # Kent, Frady, Sommer & Olshausen 2020, "Resonator networks, 2: factorization performance and capacity
    # compared to optimization-based methods", Neural Computation 32(12): the resonator network's
    # operational capacity, the largest n with 99% of problems solved (all factors right), three factors,
    # under their own iteration budget; from operational_capacity.yaml in the authors' repository.
    *({"source": "Kent et al. 2020, resonator: 99% of problems", "shape": "k3", "dim": d, "n": n,
       "search_space": n ** 3, "accuracy": 0.99, "criterion": "problems", "mean_iterations": None}
      for d, n in ((1500, 79), (2000, 128), (3000, 205), (5000, 323))),
    # Langenegger et al. 2023 (Nature Nanotechnology 18), IBM in-memory-factorizer,
    # experiments/300a_assymetric_cb/f3_optimum.csv (PUBLISHED in decompose/in_memory.py), d = 1500, three
    # factors: the largest n with at least 99% of *factors* right (n = 999: 99.7% at 27,561 mean
    # iterations; its iteration cap grows as n^2 / 3 x a factor: far above our budgets)
    *({"source": f"IMF, Langenegger et al. 2023: {100 * acc:.1f}% of factors, {its:,.0f} mean iterations",
       "shape": "k3", "dim": 1500, "n": n, "search_space": n ** 3, "accuracy": acc, "criterion": "factors",
       "mean_iterations": its}
      for n, _, _, _, acc, its in [max((r for r in PUBLISHED if r[4] >= 0.99), key=lambda r: r[0])]),
]


def shape_sizes(shape: str, value: int) -> list[int]:
    """The factor sizes of ``shape`` at parameter ``value``: ``k3`` -> [n, n, n]; ``vision`` ->
    [10, 12, 6, p, p, 2, 8]."""
    check_choice("shape", shape, tuple(SHAPES))
    if shape == "k3":
        return [value] * 3
    shp, colour, size, outline, rot = VISION_FIXED
    return [shp, colour, size, value, value, outline, rot]


def _space(shape: str, value: int) -> int:
    return math.prod(shape_sizes(shape, value))


def _cap(shape: str, max_space: float) -> int:
    """The largest parameter whose search space is at most ``max_space`` (at least the least value)."""
    least = SHAPES[shape][1]
    v = max(least, int(max_space ** (1 / 3)) if shape == "k3" else int(math.sqrt(max_space / _space(shape, 1))))
    while v > least and _space(shape, v) > max_space:
        v -= 1
    while _space(shape, v + 1) <= max_space:
        v += 1
    return v


def start_guess(shape: str, dim: int) -> int:
    """Where the search starts at dimension ``dim``: n ~ D / 20 (the resonator's published capacity is
    n ~ D / 19 at D = 1500), and for the vision shape the p of about the same search space."""
    n = dim / 20
    if shape == "k3":
        return max(2, round(n))
    return max(1, round(math.sqrt(n ** 3 / _space(shape, 1))))


def problem_seed(seed: int, *key: Any) -> int:
    """A seed for the problems of ``key`` (shape, D, size, ...) under the run's ``seed``: fresh
    problems per size, the same for every method."""
    digest = hashlib.blake2b("/".join(map(str, (seed, *key))).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % 2**62


def frontier_problems(shape: str, dim: int, value: int, problems: int, seed: int = 0,
                      device: str = "cpu") -> Problems:
    """The problems the frontier evaluates at one size (codebooks and answers seeded from ``seed``,
    the shape, D and the size)."""
    return make_problems(shape_sizes(shape, value), dim, problems, seed=problem_seed(seed, shape, dim, value),
                         device=device)


def iteration_budget(decomposer, codebooks: Codebooks) -> int:
    """The iteration budget the decomposer runs on ``codebooks`` (the in-memory factorizer's cap with
    ``iterations=None``)."""
    its = getattr(decomposer, "iterations", 1)
    return int(decomposer.settings(codebooks)["iterations"]) if its is None else int(its)


def chains_of(spec: str, decomposer, codebooks) -> int:
    """The chains per problem the decomposer runs on ``codebooks`` (anything with ``sizes`` and
    ``dim``; 1 for a method without chains)."""
    return int(decomposer.chains_for(codebooks)) if capabilities(spec).chains else 1


def evaluate_size(decomposer, p: Problems, chunks: int, allowed: int, device: str = "cpu") -> dict[str, Any]:
    """Run ``decomposer`` on ``p`` in ``chunks`` batches, stopping once more than ``allowed`` problems
    failed; ``passed``: every problem run and at most ``allowed`` failed."""
    B = len(p)
    bounds = [round(B * i / chunks) for i in range(chunks + 1)]
    hits = run = 0
    its = 0.0
    t0 = time.perf_counter()
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b <= a:
            continue
        res = decomposer.decompose(p.s[a:b], p.codebooks)
        hits += int((res.indices == p.indices[a:b]).all(-1).sum())
        its += float(res.iterations.double().sum())
        run += b - a
        if run - hits > allowed:
            break
    synchronize(device)
    return {"passed": run == B and run - hits <= allowed, "hits": hits, "evaluated": run,
            "mean_iterations": its / run, "wall_s": time.perf_counter() - t0,
            "budget": iteration_budget(decomposer, p.codebooks)}


def search_frontier(passes: Callable[[int], bool], start: int, least: int, cap: int, growth: float = 1.5,
                    resolution: float = 0.05) -> tuple[int | None, int | None]:
    """``(last pass, first fail)`` of an integer parameter: from ``start`` grow by ``growth`` while
    ``passes`` (or shrink while not), then bisect (geometric midpoints) until the fail is at most
    ``1 + resolution`` times the pass or one above it. ``(cap, None)``: everything passed up to
    ``cap``; ``(None, least)``: even the least value failed."""
    x = min(max(start, least), cap)
    lo, hi = None, None
    if passes(x):
        lo = x
        while lo < cap and hi is None:
            x = min(cap, max(lo + 1, math.ceil(lo * growth)))
            lo, hi = (x, None) if passes(x) else (lo, x)
    else:
        hi = x
        while hi > least and lo is None:
            x = max(least, min(hi - 1, math.floor(hi / growth)))
            lo, hi = (x, hi) if passes(x) else (None, x)
    while lo is not None and hi is not None and hi - lo > 1 and hi > lo * (1 + resolution):
        mid = min(hi - 1, max(lo + 1, round(math.sqrt(lo * hi))))
        lo, hi = (mid, hi) if passes(mid) else (lo, mid)
    return lo, hi


def _frontier_row(spec: str, shape: str, dim: int, decomposer, lo: int | None, hi: int | None,
                  trials: dict[int, dict[str, Any]], cap: int, wall: float, setting: dict[str, Any]) -> dict[str, Any]:
    at, fail = trials.get(lo), trials.get(hi)
    chains = chains_of(spec, decomposer, SimpleNamespace(sizes=shape_sizes(shape, lo if lo is not None else hi or 1),
                                                         dim=dim))
    row: dict[str, Any] = {k: None for k in CAPACITY_FIELDS}
    row.update({
        "method": spec, "shape": shape, "dim": dim, "parameter": SHAPES[shape][0], "frontier": lo,
        "capped": lo == cap, "cap": cap, "chains": chains, "sizes_tried": len(trials),
        "problems_run": sum(t["evaluated"] for t in trials.values()), "wall_s": round(wall, 2), **setting,
        "fail_at": hi, "fail_search_space": None if hi is None else _space(shape, hi),
        "fail_accuracy": None if fail is None else fail["hits"] / fail["evaluated"],
        "fail_evaluated": None if fail is None else fail["evaluated"],
    })
    if at is not None:
        lo_ci, hi_ci = wilson_interval(at["hits"], at["evaluated"])
        space = _space(shape, lo)
        row.update(sizes="x".join(map(str, shape_sizes(shape, lo))), search_space=space,
                   log10_space=round(math.log10(space), 3), accuracy=at["hits"] / at["evaluated"],
                   acc_lo=lo_ci, acc_hi=hi_ci, iterations=at["budget"], mean_iterations=at["mean_iterations"],
                   chain_iterations=at["mean_iterations"] * chains,
                   ms_per_problem=1e3 * at["wall_s"] / at["evaluated"])
    else:
        row.update(iterations=fail["budget"], search_space=0)
    return row


def _frontier_at(spec: str, shape: str, dim: int, start: int, cap: int, setting: dict[str, Any], chunks: int,
                 growth: float, resolution: float, log) -> dict[str, Any]:
    """The frontier of one method at one D (see :func:`capacity_frontier`)."""
    problems, target, device = setting["problems"], setting["target"], setting["device"]
    d = build_method(spec, setting["budget"], setting["seed"])
    allowed = math.floor(problems * (1 - target) + 1e-9)
    trials: dict[int, dict[str, Any]] = {}

    def passes(value: int) -> bool:
        p = frontier_problems(shape, dim, value, problems, setting["seed"], device)
        t = trials[value] = evaluate_size(d, p, chunks, allowed, device)
        if log:
            log(f"{spec:32s} {shape:6s} D={dim:5d} {SHAPES[shape][0]}={value:6d} space={_space(shape, value):9.3g} "
                f"{t['hits']}/{t['evaluated']} right -> {'pass' if t['passed'] else 'fail'} "
                f"({t['mean_iterations']:.0f} its, {t['wall_s']:.1f} s)")
        return t["passed"]

    t0 = time.perf_counter()
    lo, hi = search_frontier(passes, start, SHAPES[shape][1], cap, growth, resolution)
    wall = time.perf_counter() - t0
    keep = {k: setting[k] for k in ("device", "problems", "target", "seed")}
    return _frontier_row(spec, shape, dim, d, lo, hi, trials, cap, wall, keep)


def _skip(spec: str, shape: str) -> str | None:
    """Why ``spec`` has no frontier on ``shape`` (None: it has one)."""
    caps = capabilities(spec)
    if caps.exhaustive:
        return ("exhaustive search is always right; its limit is time (prod(n) x D multiply-adds a problem), "
                "not capacity: see exhaustive_crossover")
    if caps.equal_sizes and shape == "vision":
        return "needs equal factor sizes; the vision shape has none"
    return None


def capacity_frontier(methods: Sequence[str], dims: Sequence[int] = (256, 512, 1024, 2048, 4096), shape: str = "k3",
                      iterations: int = DEFAULT_ITERATIONS, problems: int = 100, target: float = 0.99, seed: int = 0,
                      device: str = "cpu", log=None, *, chunks: int = 4, growth: float = 1.5,
                      resolution: float = 0.05, max_space: float = 1e12, start: int | None = None) -> list[dict]:
    """For each method spec and each D, the largest search space solved with accuracy (all factors
    right) >= ``target`` on ``problems`` fresh problems, within ``iterations`` (where the spec does not
    set its own). ``shape``: ``"k3"``, ``"vision"`` or ``"both"``. The parameter (n or p) grows by
    ``growth`` from ``start`` (default :func:`start_guess`, or the frontier at the previous D if
    larger), then is bisected down to ``resolution``; it never exceeds the value whose search space is
    ``max_space`` (a row with ``capped`` True: everything up to the cap passed). Each size runs in
    ``chunks`` batches and stops as soon as more problems failed than ``target`` allows. Exhaustive
    methods (and methods needing equal sizes, on the vision shape) are skipped with a note to ``log``.
    One row per (shape, method, D): :data:`CAPACITY_FIELDS`."""
    if isinstance(methods, str) or not methods:
        raise ValueError(f"methods: expected a non-empty list of method specs, got {methods!r}")
    dims = check_positive_sizes("dims", dims)
    check_choice("shape", shape, ("k3", "vision", "both"))
    setting = {"budget": check_int("iterations", iterations, 1), "problems": check_int("problems", problems, 1),
               "target": check_float("target", target, 0.0, 1.0), "seed": check_int("seed", seed, 0),
               "device": str(device)}
    if target <= 0:
        raise ValueError(f"target: expected a fraction in (0, 1], got {target}")
    chunks = min(check_int("chunks", chunks, 1), problems)
    if check_float("growth", growth, 1.0) <= 1.0:
        raise ValueError(f"growth: expected a factor above 1, got {growth}")
    if check_float("resolution", resolution, 0.0) <= 0.0:
        raise ValueError(f"resolution: expected a fraction above 0, got {resolution}")
    check_float("max_space", max_space, 1.0)
    if start is not None:
        check_int("start", start, 1)
    rows = []
    for sh in ("k3", "vision") if shape == "both" else (shape,):
        cap = _cap(sh, max_space)
        for spec in methods:
            if (why := _skip(spec, sh)) is not None:
                if log:
                    log(f"{spec}: skipped on {sh}: {why}")
                continue
            prev = None
            for dim in dims:
                s0 = start if start is not None else max(start_guess(sh, dim), prev or 0)
                rows.append(_frontier_at(spec, sh, dim, s0, cap, setting, chunks, growth, resolution, log))
                prev = rows[-1]["frontier"]
    return rows


def _fmt(v: Any, spec: str = ".3g") -> str:
    return "" if v is None or v == "" else format(v, spec)


def capacity_table(rows: Sequence[dict[str, Any]]) -> str:
    """The frontier rows as a Markdown table."""
    lines = ["| method | shape | D | frontier | search space | all right [95% CI] | first fail (all right, run) "
             "| budget | mean its | chains | chain-its | ms/problem | s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        front = "none" if r["frontier"] is None else f"{r['parameter']} = {r['frontier']}" + \
            (" (cap)" if r["capped"] else "")
        acc = "" if r.get("accuracy") is None else \
            f"{100 * r['accuracy']:.1f} [{100 * r['acc_lo']:.1f}, {100 * r['acc_hi']:.1f}]"
        fail = "" if r["fail_at"] is None else \
            f"{r['parameter']} = {r['fail_at']} ({100 * r['fail_accuracy']:.0f}%, {r['fail_evaluated']})"
        lines.append(f"| `{r['method']}` | {r['shape']} | {r['dim']} | {front} | {_fmt(r.get('search_space') or None)} "
                     f"| {acc} | {fail} | {r['iterations']} | {_fmt(r.get('mean_iterations'), '.1f')} | {r['chains']} "
                     f"| {_fmt(r.get('chain_iterations'), '.1f')} | {_fmt(r.get('ms_per_problem'))} | {r['wall_s']} |")
    return "\n".join(lines)


def _plot_shape(ax, rows: Sequence[dict[str, Any]], shape: str, methods: list[str],
                published: Sequence[dict[str, Any]]) -> None:
    """One panel of :func:`plot_capacity`."""
    for i, m in enumerate(methods):
        colour = f"C{i % 10}"
        mine = [r for r in rows if r["shape"] == shape and r["method"] == m]
        rs = sorted((r for r in mine if r["frontier"]), key=lambda r: r["dim"])
        if not rs:
            if mine:  # searched, and failed even at the smallest size at every D
                ax.plot([], [], color=colour, linestyle=":", label=f"{m}: none (fails at the smallest size)")
            continue
        ax.plot([r["dim"] for r in rs], [r["search_space"] for r in rs], marker="o" if shape == "k3" else "s",
                color=colour, label=m)
        capped = [r for r in rs if r["capped"]]
        if capped:
            ax.scatter([r["dim"] for r in capped], [r["search_space"] for r in capped], marker="^", s=110,
                       facecolors="none", edgecolors=colour, label=f"{m}: reached the cap (a lower bound)")
    for j, src in enumerate(dict.fromkeys(p["source"] for p in published if p["shape"] == shape)):
        ps = [p for p in published if p["source"] == src]
        ax.scatter([p["dim"] for p in ps], [p["search_space"] for p in ps], marker="*D^v"[j % 4], s=70,
                   color="black", zorder=5, label=f"published: {src}")
    ours = {r["dim"] for r in rows if r["shape"] == shape}
    # a published D within 10% of one of ours gets no tick of its own (2000 beside 2048 would overprint)
    dims = sorted(ours | {p["dim"] for p in published if p["shape"] == shape
                          and all(abs(p["dim"] / d - 1) > 0.1 for d in ours)})
    ax.set_xscale("log")
    ax.set_xticks(dims, [str(d) for d in dims], fontsize=7, rotation=45)
    ax.minorticks_off()
    if dims:
        ax.set_xlim(min(dims) / 1.2, max(dims) * 1.2)
    if any(line.get_xydata().size for line in ax.get_lines()) or ax.collections:
        ax.set_yscale("log")
    else:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no size solved at any D", transform=ax.transAxes, ha="center", fontsize=9)
    ax.set_xlabel("dimension D")
    ax.set_ylabel("search space solved (combinations)")
    ax.set_title("three factors: n^3" if shape == "k3" else "vision-like: 10 x 12 x 6 x p x p x 2 x 8 = 11,520 p^2",
                 fontsize=9)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)


def plot_capacity(rows: Sequence[dict[str, Any]], path: str,
                  published: Sequence[dict[str, Any]] = tuple(PUBLISHED_CAPACITY), title: str | None = None) -> None:
    """Search space solved (log) against D (log), one line per method, one panel per shape (circles:
    k3, squares: vision; an open triangle: the search reached its cap, a lower bound); the published
    points (three factors) as black markers on the k3 panel, their protocols stated in the caption."""
    shapes = list(dict.fromkeys(r["shape"] for r in rows)) or ["k3"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = new_axes((6.2 * len(shapes) + 0.8, 5.6), ncols=len(shapes))
    for ax, sh in zip(axes, shapes):
        _plot_shape(ax, rows, sh, methods, published)
    note = ("published points: other protocols and far larger iteration budgets; the IMF's accuracy is the "
            "fraction of factors right, ours and Kent's of problems (all factors right)")
    if title is None and rows:
        r = rows[0]
        title = (f"the largest search space with all factors right in >= {100 * r['target']:g}% of "
                 f"{r['problems']} problems, budget {r['iterations']} iterations")
    fig.suptitle((title + "\n" if title else "") + note, fontsize=8)
    save_figure(fig, path)


def read_capacity_csv(*paths: str) -> list[dict[str, Any]]:
    """The rows of one or more ``capacity.csv`` files (e.g. runs of different D), typed again, so that
    :func:`plot_capacity` and :func:`capacity_table` can draw them together."""
    def typed(value: str) -> Any:
        if value == "":
            return None
        if value in ("True", "False"):
            return value == "True"
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
        return value

    rows = []
    for path in paths:
        with open(path, newline="") as f:
            rows += [{k: (v if k in ("method", "sizes") else typed(v)) for k, v in r.items()}
                     for r in csv.DictReader(f)]
    return rows
