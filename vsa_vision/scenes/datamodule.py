"""A LightningDataModule over rendered scenes, on the fly or from a dataset generated to disk."""

from __future__ import annotations

import os
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..checks import check_int
from .dataset import DATASET_SCHEMA, RenderedScenes, SceneShards, dataset_counts, dataset_schema
from .degrade import CORRUPTIONS, Degrade
from .render import STROKE, stroke_range
from .sampling import seed63
from .schema import Schema, load_schema


class SceneDataModule(pl.LightningDataModule):
    """Train / val / test (+ held-out combinations) loaders of ``(uint8 [B, 3, H, W], int64 [B, K])``.

    With ``data_dir`` the splits come from a dataset written by ``vsa-vision data generate`` or
    ``vsa-vision data import`` (their sizes are the dataset's; ``schema: dataset`` takes the dataset's
    own schema, as for a user's imported images; its heldout split, if any, is the held-out loader);
    otherwise they are rendered from ``seed`` (``cache=True`` renders each split once into memory, the
    fastest source on a small CPU). ``test_dataloader`` returns the test split and, when there are
    held-out images (the schema holds combinations out, or the dataset has a heldout split), the
    held-out split as a second loader.

    ``train_stroke`` (a ``[low, high]`` range of outline widths, fractions of the radius) varies the
    outline of outlined shapes in the training split only, an augmentation that keeps the
    evaluation splits at the standard rendering. ``val_heldout_size > 0`` adds a second validation
    loader of held-out combinations (drawn with ``seed + 1``), to follow compositional
    generalisation during training; model selection should keep to the first (the ``val`` split).

    ``train_degrade`` (a probability, default 0) degrades that fraction of the training images, each
    with a random corruption of ``train_degrade_kinds`` (default: every one of
    :data:`~vsa_vision.scenes.degrade.CORRUPTIONS`: pixel noise, salt and pepper, blur, JPEG,
    brightness, contrast, gamma, small shifts) at a random strength (:class:`~vsa_vision.scenes.degrade.Degrade`),
    in :meth:`on_after_batch_transfer`, batched on the training device, after any cache (a cached
    scene is degraded afresh every epoch); validation and test images stay clean. The draws follow
    ``seed``.

    ``seed``: any int >= 0; the scenes use it whole, the shuffle generator of the train loader takes
    it as it is below 2**63 and reduced to 63 bits by SHA-256 above (``sampling.seed63``)."""

    def __init__(self, schema: str | dict[str, Any] | Schema = "default", data_dir: str | None = None,
                 train_size: int = 50000, val_size: int = 2000, test_size: int = 2000, heldout_size: int = 2000,
                 seed: int = 0, batch_size: int = 128, num_workers: int = 0, cache: bool = True,
                 jitter: float = 0.0, noise: float = 0.0, size: int | None = None,
                 train_stroke: list[float] | None = None, val_heldout_size: int = 0, train_degrade: float = 0.0,
                 train_degrade_kinds: list[str] | None = None) -> None:
        super().__init__()
        if data_dir is not None and not os.path.isdir(data_dir):
            raise FileNotFoundError(f"data_dir: no such folder {data_dir!r} "
                                    "(generate it with 'vsa-vision data generate', or import your images with "
                                    "'vsa-vision data import')")
        if schema == DATASET_SCHEMA:
            if data_dir is None:
                raise ValueError(f"schema {DATASET_SCHEMA!r}: the schema of the dataset in data_dir, but no data_dir "
                                 "was given")
            schema = dataset_schema(data_dir)
        self.schema = load_schema(schema)
        on_disk = dataset_counts(data_dir) if data_dir is not None else None
        batch_size, train_size = check_int("batch_size", batch_size, 1), check_int("train_size", train_size, 1)
        num_workers = check_int("num_workers", num_workers, 0)
        seed = check_int("seed", seed, 0)
        self.data_dir, self.seed, self.batch_size, self.num_workers = data_dir, seed, batch_size, num_workers
        val_heldout_size = check_int("val_heldout_size", val_heldout_size, 0)
        if train_stroke is not None and data_dir is not None:
            raise ValueError("train_stroke: applies to scenes rendered on the fly, not to a data_dir dataset")
        self.train_stroke = None if train_stroke is None else stroke_range(train_stroke)
        self.sizes = {"train": train_size, "val": val_size, "test": test_size,
                      "heldout": heldout_size if self.schema.holdout else 0,
                      "val_heldout": val_heldout_size if self.schema.holdout else 0}
        if on_disk is not None:  # a dataset's own splits: held-out images wherever it has them
            self.sizes.update({s: on_disk[s] for s in ("train", "val", "test", "heldout")})
            self.sizes["val_heldout"] = min(val_heldout_size, on_disk["heldout"])
        self.cache, self.jitter, self.noise, self.image_size = cache, jitter, noise, size
        self.datasets: dict[str, Dataset] = {}
        self.degrade = Degrade(p=train_degrade, kinds=train_degrade_kinds or CORRUPTIONS) if train_degrade else None
        self._degrade_rng: torch.Generator | None = None  # made on first use: a datamodule is pickled to spawn

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Training batches degraded by :attr:`degrade` (``train_degrade > 0``); everything else as it is."""
        trainer = getattr(self, "trainer", None)
        if self.degrade is None or trainer is None or not trainer.training:
            return batch
        if self._degrade_rng is None:
            self._degrade_rng = torch.Generator().manual_seed(seed63(self.seed) ^ 0x5EED)
        images, labels = batch
        return self.degrade(images, self._degrade_rng), labels

    def _make(self, split: str) -> Dataset:
        if split == "val_heldout" and self.data_dir is not None:  # the first images of the dataset's heldout split
            return Subset(SceneShards(self.data_dir, "heldout", schema=self.schema), range(self.sizes[split]))
        if split == "val_heldout":
            return RenderedScenes(self.schema, self.sizes[split], seed=self.seed + 1, split="heldout",
                                  size=self.image_size, jitter=self.jitter, noise=self.noise, cache=self.cache)
        if self.data_dir is not None:
            return SceneShards(self.data_dir, split, schema=self.schema)
        stroke = self.train_stroke if split == "train" and self.train_stroke is not None else STROKE
        return RenderedScenes(self.schema, self.sizes[split], seed=self.seed, split=split, size=self.image_size,
                              jitter=self.jitter, noise=self.noise, cache=self.cache, stroke=stroke)

    def setup(self, stage: str | None = None) -> None:
        want = {"fit": ("train", "val", "val_heldout"), "validate": ("val", "val_heldout"),
                "test": ("test", "heldout"), "predict": ("test",)}.get(
                    stage or "", ("train", "val", "val_heldout", "test", "heldout"))
        for split in want:
            if split == "val_heldout" and not self.sizes[split]:
                continue
            if split not in self.datasets and (self.data_dir is not None or self.sizes[split] > 0):
                ds = self._make(split)
                if len(ds):
                    self.datasets[split] = ds

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        if split not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "val_heldout": "validate", "test": "test",
                        "heldout": "test"}[split])
        if split not in self.datasets:
            raise ValueError(f"the {split!r} split is empty")
        gen = torch.Generator().manual_seed(seed63(self.seed)) if shuffle else None  # torch takes 64 bits
        return DataLoader(self.datasets[split], batch_size=self.batch_size, shuffle=shuffle, generator=gen,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        if self.sizes["val_heldout"]:
            return [self._loader("val"), self._loader("val_heldout")]
        return self._loader("val")

    def test_dataloader(self) -> list[DataLoader]:
        loaders = [self._loader("test")]
        if "heldout" in self.datasets or self.sizes["heldout"]:
            try:
                loaders.append(self._loader("heldout"))
            except ValueError:
                pass
        return loaders

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")

    @property
    def test_split_names(self) -> list[str]:
        """Names of the loaders :meth:`test_dataloader` returns, in order."""
        return ["test"] + (["heldout"] if "heldout" in self.datasets else [])
