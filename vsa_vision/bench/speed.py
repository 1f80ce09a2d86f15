"""Cost of each method: time, throughput, achieved FLOP/s and peak memory, over batch sizes,
codebook sizes and dtypes, with the ratio to exhaustive search at the same point.

- **Equal work by default**: early stopping is off (``stop_similarity=None``) so every method spends
  its budget, except where a method stops by its own criterion (the classic resonator's fixed points
  and cycles); ``us_per_problem_iteration`` divides the time by the iterations actually run.
  ``early_stop=True`` measures instead the time to finish the batch with each method's own stop.
- **FLOPs** are counted from the matrix products actually executed (``torch.utils.flop_counter``:
  ``2 m n k`` per product), in one untimed run; elementwise work is not counted.
- **Peak memory** is the most memory held at once by tensors the method allocates (its inputs
  excluded): on CUDA the allocator's peak, on CPU a dispatch-level tracker of live tensor storage.
- **dtypes**: ``fp32``; ``bf16`` runs the method with bf16 codebooks and targets (a method that
  fails in bf16 gets a row with its error); ``tf32`` (CUDA only) is fp32 with TF32 matrix products.
- Exhaustive search grows with the product of the codebook sizes; a point whose estimated cost
  exceeds ``max_brute_flop`` is skipped (and its ratio left empty) rather than run for hours.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from ..decompose.registry import capabilities, parse_method
from .accuracy import is_exhaustive
from .problems import brute_force_flop, make_problems

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "tf32": torch.float32}
FIELDS = ["method", "device", "dtype", "K", "n", "D", "batch", "iterations", "early_stop", "ms_per_problem",
          "problems_per_s", "mean_iterations", "us_per_problem_iteration", "gflop_per_problem", "gflops_per_s",
          "peak_mem_mb", "acc_all", "ratio_to_brute", "note"]


class PeakMemory(TorchDispatchMode):
    """Tracks the bytes of tensor storage allocated by the ops run under it and still alive; ``peak``
    is the most held at once. Storage shared by views or written in place is counted once."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: set[int] = set()

    def _free(self, key: int, nbytes: int) -> None:
        self._seen.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                st = t.untyped_storage()
                key, nbytes = st.data_ptr(), st.nbytes()
                if nbytes == 0 or key in self._seen:
                    continue
                self._seen.add(key)
                self.live += nbytes
                weakref.finalize(st, self._free, key, nbytes)
                self.peak = max(self.peak, self.live)
        return out


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def synchronize(device: str) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so that a timer measures it."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed_decompose(decomposer, s: torch.Tensor, codebooks, device: str):
    """``(result, seconds)`` of one ``decomposer.decompose(s, codebooks)``, the device's queued work
    finished before the clock starts and before it stops."""
    synchronize(device)
    t0 = time.perf_counter()
    res = decomposer.decompose(s, codebooks)
    synchronize(device)
    return res, time.perf_counter() - t0


def _decomposer(spec: str, iterations: int, seed: int, early_stop: bool):
    """The method of ``spec`` with the budget and seed where the spec does not set them, and, for
    equal work, early stopping by similarity off (brute force and the torchhd peer have none)."""
    from ..decompose import get_decomposer

    name, opts = parse_method(spec)
    opts.setdefault("iterations", iterations)
    opts.setdefault("seed", seed)
    if not early_stop and capabilities(spec).early_stop:
        opts.setdefault("stop_similarity", None)
    return get_decomposer(name, **opts)


def measure(spec: str, problems, iterations: int, device: str = "cpu", dtype: str = "fp32",
            repeats: int = 3, early_stop: bool = False, seed: int = 0, min_seconds: float = 0.5) -> dict[str, Any]:
    """Time one method on one batch of problems (best of ``repeats``; fewer when one run already
    takes ``min_seconds`` x repeats), then count its FLOPs and peak memory in one more run."""
    d = _decomposer(spec, iterations, seed, early_stop)
    cb = problems.codebooks.to(device=device, dtype=DTYPES[dtype])
    s = problems.s.to(device=device, dtype=DTYPES[dtype])
    B = s.shape[0]
    best, res, runs, total = float("inf"), None, 0, 0.0
    with _tf32(dtype == "tf32"):
        d.decompose(s[:8], cb)  # warm-up: first-call allocations and kernel selection stay out of the timing
        while runs < repeats and not (runs >= 1 and total > min_seconds * repeats):
            synchronize(device)
            t0 = time.perf_counter()
            res = d.decompose(s, cb)
            synchronize(device)
            dt = time.perf_counter() - t0
            best, runs, total = min(best, dt), runs + 1, total + dt
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            with FlopCounterMode(display=False) as fc:
                d.decompose(s, cb)
            peak = torch.cuda.max_memory_allocated() - base
        else:
            mem = PeakMemory()
            with FlopCounterMode(display=False) as fc, mem:
                d.decompose(s, cb)
            peak = mem.peak
    flops = float(fc.get_total_flops())
    its = float(res.iterations.float().sum())
    acc = float((res.indices.cpu() == problems.indices.cpu()).all(-1).float().mean())
    return {"method": spec, "device": device, "dtype": dtype, "batch": B, "iterations": iterations,
            "early_stop": early_stop, "ms_per_problem": 1e3 * best / B, "problems_per_s": B / best,
            "mean_iterations": its / B, "us_per_problem_iteration": 1e6 * best / max(its, 1.0),
            "gflop_per_problem": flops / B / 1e9, "gflops_per_s": flops / best / 1e9,
            "peak_mem_mb": peak / 2**20, "acc_all": acc, "note": ""}


def speed_benchmark(methods: Sequence[str], ns: Sequence[int] = (50,), k: int = 3, dim: int = 1000,
                    batches: Sequence[int] = (1, 16, 256, 4096), iterations: int = 100,
                    dtypes: Sequence[str] = ("fp32",), device: str = "cpu", repeats: int = 3,
                    early_stop: bool = False, seed: int = 0, max_brute_flop: float = 2e12,
                    log=print) -> list[dict[str, Any]]:
    """Every method at every (n, batch, dtype); ``ratio_to_brute`` is a method's time per problem
    over exhaustive search's at the same point (below 1: cheaper than exhaustive search)."""
    for dt in dtypes:
        if dt not in DTYPES:
            raise ValueError(f"dtypes: unknown dtype {dt!r}; expected some of {list(DTYPES)}")
    if "tf32" in dtypes and not device.startswith("cuda"):
        raise ValueError("dtypes: tf32 applies to CUDA matrix products only; drop it on the CPU")
    rows = []
    for n in ns:
        for batch in batches:
            p = make_problems(n, dim, batch, seed=seed, k=k)
            for dt in dtypes:
                point = []
                for spec in methods:
                    empty = {"method": spec, "device": device, "dtype": dt, "batch": batch, "iterations": iterations,
                             "early_stop": early_stop}
                    est = brute_force_flop(p.codebooks.sizes, dim, batch) if is_exhaustive(spec) else 0.0
                    if est > max_brute_flop:
                        row = {**empty, "note": f"skipped: {est:.1e} FLOP > max_brute_flop"}
                    else:
                        try:
                            row = measure(spec, p, iterations, device, dt, repeats, early_stop, seed)
                        except (RuntimeError, TypeError, ValueError, ImportError) as e:
                            row = {**empty, "note": f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}"}
                    row.update(K=k, n=n, D=dim)
                    point.append(row)
                    if log:
                        log(_line(row))
                brute_ms = next((r["ms_per_problem"] for r in point
                                 if is_exhaustive(r["method"]) and "ms_per_problem" in r), None)
                for row in point:
                    if brute_ms and "ms_per_problem" in row:
                        row["ratio_to_brute"] = row["ms_per_problem"] / brute_ms
                rows += point
    return rows


def _line(r: dict[str, Any]) -> str:
    head = f"n={r['n']:4d} batch={r['batch']:5d} {r['dtype']} {r['method']:34s}"
    if "ms_per_problem" not in r:
        return f"{head} {r.get('note', '')}"
    return (f"{head} {r['ms_per_problem']:9.4f} ms/problem {r['problems_per_s']:10.0f} problems/s "
            f"{r['mean_iterations']:6.1f} its {r['gflops_per_s']:7.2f} GFLOP/s {r['peak_mem_mb']:8.2f} MB "
            f"acc {100 * r['acc_all']:5.1f}%")


def crossover(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, int, str], tuple[int | None, int | None]]:
    """Per (method, batch, dtype): the largest n where the method costs at least exhaustive search
    and the smallest larger n where it is cheaper, among the n measured: the crossover lies between
    (``None`` where the sweep did not reach it)."""
    out: dict[tuple[str, int, str], tuple[int | None, int | None]] = {}
    keys = {(r["method"], r["batch"], r["dtype"]) for r in rows
            if r.get("ratio_to_brute") is not None and not is_exhaustive(r["method"])}
    for key in sorted(keys):
        pts = sorted((r["n"], r["ratio_to_brute"]) for r in rows
                     if (r["method"], r["batch"], r["dtype"]) == key and r.get("ratio_to_brute") is not None)
        above = [n for n, q in pts if q >= 1]
        last_above = max(above) if above else None
        below = [n for n, q in pts if q < 1 and (last_above is None or n > last_above)]
        out[key] = (last_above, min(below) if below else None)
    return out


def speed_table(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table of the rows."""
    head = ("| method | dtype | n | batch | ms/problem | problems/s | us/problem-it | GFLOP/s | peak MB | "
            "x brute | acc |")
    lines = [head, "| --- |" + " --- |" * 10]
    for r in rows:
        if "ms_per_problem" not in r:
            lines.append(f"| `{r['method']}` | {r['dtype']} | {r['n']} | {r['batch']} | {r.get('note', '')} "
                         "| | | | | | |")
            continue
        ratio = f"{r['ratio_to_brute']:.3g}" if r.get("ratio_to_brute") is not None else ""
        lines.append(f"| `{r['method']}` | {r['dtype']} | {r['n']} | {r['batch']} | {r['ms_per_problem']:.4g} | "
                     f"{r['problems_per_s']:.4g} | {r['us_per_problem_iteration']:.3g} | {r['gflops_per_s']:.3g} | "
                     f"{r['peak_mem_mb']:.3g} | {ratio} | {100 * r['acc_all']:.1f} |")
    return "\n".join(lines)


def cost_rounds(methods: Sequence[str], problems, iterations: int, rounds: int = 7, device: str = "cpu",
                early_stop: bool = False, seed: int = 0) -> list[dict[str, Any]]:
    """Cost per problem-iteration of each method relative to the first, timed in turn: after a
    warm-up, ``rounds`` rounds each run every method once on the same batch (A B C A B C ...), so
    that drift in the machine's speed hits every method alike. Per method: the median and range
    of its time per problem-iteration and of its per-round ratio to the first method."""
    from statistics import median

    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds: expected an int >= 1, got {rounds!r}")
    if not methods:
        raise ValueError("methods: expected at least one")
    for spec in methods:
        if is_exhaustive(spec):
            raise ValueError(f"{spec}: cost per iteration applies to iterative methods only")
    decs = [_decomposer(spec, iterations, seed, early_stop) for spec in methods]
    cb, s = problems.codebooks.to(device), problems.s.to(device)

    def timed(d) -> float:
        synchronize(device)
        t0 = time.perf_counter()
        res = d.decompose(s, cb)
        synchronize(device)
        return 1e6 * (time.perf_counter() - t0) / max(float(res.iterations.float().sum()), 1.0)

    for d in decs:
        timed(d)  # warm-up
    times = [[0.0] * rounds for _ in decs]
    for r in range(rounds):
        for i, d in enumerate(decs):
            times[i][r] = timed(d)
    rows = []
    for spec, ts in zip(methods, times):
        ratio = [a / b for a, b in zip(ts, times[0])]
        rows.append({"method": spec, "device": device, "batch": len(problems), "iterations": iterations,
                     "early_stop": early_stop, "rounds": rounds,
                     "us_per_problem_iteration": median(ts), "us_min": min(ts), "us_max": max(ts),
                     "ratio": median(ratio), "ratio_min": min(ratio), "ratio_max": max(ratio)})
    return rows
