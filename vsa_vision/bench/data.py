"""How fast scenes are made: the renderer on one core, and the loaders a training run reads from."""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import torch

from ..scenes import Renderer, SceneDataModule, generate_dataset, sample_indices


def _drain(loader, limit: int) -> float:
    n, t0 = 0, time.perf_counter()
    for x, _ in loader:
        n += len(x)
        if n >= limit:
            break
    return n / (time.perf_counter() - t0)


def data_benchmark(images: int = 20000, workers: int = 2, batch_size: int = 128, schema: str = "default",
                   log=print) -> dict[str, Any]:
    """Images per second: rendering on one core; the DataModule rendering on the fly with ``workers``
    worker processes; from a dataset on disk with ``workers``; from the in-memory cache."""
    out: dict[str, Any] = {"images": images, "workers": workers, "batch_size": batch_size}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = Renderer(schema)
        idx = sample_indices(r.schema, images, seed=0, split="train")
        t0 = time.perf_counter()
        r.render_batch(idx)
        out["render_one_core"] = images / (time.perf_counter() - t0)
        log(f"renderer, one core:                {out['render_one_core']:8.0f} images/s")
        dm = SceneDataModule(schema, train_size=images, batch_size=batch_size, num_workers=workers, cache=False)
        dm.setup("fit")
        out["loader_on_the_fly"] = _drain(dm.train_dataloader(), images)
        log(f"DataModule, on the fly, {workers} workers: {out['loader_on_the_fly']:8.0f} images/s")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ds")
            generate_dataset(path, schema=schema, n=images, val=0, test=0, heldout=0, progress=False, log=None)
            dm = SceneDataModule(schema, data_dir=path, batch_size=batch_size, num_workers=workers)
            dm.setup("fit")
            out["loader_disk"] = _drain(dm.train_dataloader(), images)
            log(f"DataModule, from disk, {workers} workers:  {out['loader_disk']:8.0f} images/s")
        t0 = time.perf_counter()
        dm = SceneDataModule(schema, train_size=images, batch_size=batch_size, num_workers=0, cache=True)
        dm.setup("fit")
        out["cache_build"] = images / (time.perf_counter() - t0)
        out["loader_cached"] = _drain(dm.train_dataloader(), images)
        log(f"DataModule, cached in memory:      {out['loader_cached']:8.0f} images/s "
            f"(building the cache: {out['cache_build']:.0f} images/s)")
    finally:
        torch.set_num_threads(threads)
    return out
