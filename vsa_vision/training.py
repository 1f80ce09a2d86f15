"""The training entry point behind ``train.py``: LightningCLI, plus a test report after ``fit``.

    python train.py fit --config configs/default.yaml      train, then test every head and report
    python train.py fit --config configs/default.yaml --ckpt_path last   resume an interrupted run
    python train.py test --config configs/default.yaml --ckpt_path checkpoints/default-run/best.ckpt
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LightningCLI
from torch.utils.data import Dataset

from .checkpoint import export_model, model_class
from .io import atomic_write
from .metrics import format_report, report_json
from .model import VSAModel, to_float_images
from .scenes.datamodule import SceneDataModule
from .scenes.dataset import DATASET_SCHEMA, dataset_counts, dataset_schema


class FillingCache(Dataset):
    """``dataset``'s items kept in memory as they are first drawn: the first epoch renders each scene
    when it first trains on it (so the first step comes at once), later epochs read memory. The items
    and their order are those of rendering the split in full first; so is the memory at the end."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.n = len(dataset)  # type: ignore[arg-type]
        self.filled = torch.zeros(self.n, dtype=torch.bool)
        self.images: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = int(i)
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} items")
        i %= self.n
        if not self.filled[i]:
            image, label = self.dataset[i]
            if self.images is None or self.labels is None:
                self.images = torch.empty((self.n, *image.shape), dtype=image.dtype)
                self.labels = torch.empty((self.n, *label.shape), dtype=label.dtype)
            self.images[i], self.labels[i] = image, label
            self.filled[i] = True
        return self.images[i], self.labels[i]


class TrainingData(SceneDataModule):
    """The :class:`SceneDataModule` of ``train.py``: with ``cache: true``, no ``data_dir`` and no
    workers, each split is cached as its items are first drawn (:class:`FillingCache`) instead of
    being rendered in full before the first training step (about a minute for 100,000 scenes on 2
    cores). Same items, same order, same memory."""

    def setup(self, stage: str | None = None) -> None:
        lazy = bool(self.cache) and self.data_dir is None and self.num_workers == 0
        if not lazy:
            super().setup(stage)
            return
        self.cache = False
        try:
            super().setup(stage)
        finally:
            self.cache = True
        for split, ds in self.datasets.items():
            if not isinstance(ds, FillingCache):
                self.datasets[split] = FillingCache(ds)


class WallClock(pl.Callback):
    """Logs minutes of training so far at every validation: the accuracy-against-time curve."""

    def __init__(self) -> None:
        self.start: float | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.start is not None and not trainer.sanity_checking:
            pl_module.log("time/minutes", (time.perf_counter() - self.start) / 60.0)


def fit_decoder(model: VSAModel, batches: Iterable, minutes: float, recognition: float = 0.05, lr: float = 3e-3,
                batch_size: int = 64, log=print, log_every: int = 100, pixels_first: float = 0.5) -> list[float]:
    """Train ``model.decoder`` alone for ``minutes`` on ``(images, labels)`` batches (cycled; the first
    ``batch_size`` of each), the encoder frozen: the decoder's own loss plus ``recognition`` times the
    cross-entropy of the encoder's factor vectors of each drawing against its labels' codewords (the
    factorised head's ``factor_contrastive`` term), so that what it draws is read back as drawn. AdamW
    with a cosine decay of ``lr`` over the time. Returns (and logs) the mean loss of every ``log_every`` steps.
    ``pixels_first``: the share of the time spent on the decoder's own loss alone, before the term joins.

    Measured on sprites (``docs/BENCHMARKS.md``, your own images): the pixel loss alone draws
    positions and colours but blurs shapes and rotations (12% of edits read back as intended); with
    the term, 96%. The term uses the model's own encoder, so that reading is not an independent judge.
    On blurred drawings the term can drive the drawings away from the pictures (a model whose
    attributes are read by readers of their own, each of which reads its whole picture, was read
    worse after 8 minutes with it from the start than before); after half the time on pixels, it sharpens them."""
    check_decoder_fit(model.hparams, minutes, recognition, pixels_first)
    if model.decoder is None:
        raise ValueError("fit_decoder: the model has no learned decoder (decoder: <width> in its config)")
    device = next(model.decoder.parameters()).device
    model.eval()
    frozen = [p for p in model.encoder.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.decoder.parameters(), lr=lr, weight_decay=1e-4)
    model.decoder.train()
    losses, window, start, done = [], [], time.perf_counter(), 0.0
    try:
        while True:
            took = False
            for images, labels in batches:
                took = True
                x, y = to_float_images(images[:batch_size].to(device)), labels[:batch_size].to(device)
                drawn = model.decoder(y)  # drawn once, for both terms
                loss = model.decoder.image_loss(drawn, x)
                if recognition > 0 and done >= pixels_first:  # done: the share of the time after the last step
                    _, factors = model.encoder.forward_with_factors(drawn)
                    loss = loss + recognition * model._factor_loss(factors, y, contrastive=True)
                opt.zero_grad()
                loss.backward()
                opt.step()
                window.append(float(loss.detach()))
                if len(window) == log_every:
                    losses.append(sum(window) / log_every)
                    window = []
                    log(f"decoder: step {log_every * len(losses)}, loss {losses[-1]:.4f}")
                done = (time.perf_counter() - start) / (60.0 * minutes)
                for g in opt.param_groups:
                    g["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, done)))
                if done >= 1.0:
                    return losses
            if not took:
                raise ValueError("fit_decoder: batches gave no batch (empty, or an iterator already used up)")
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.decoder.eval()


def check_decoder_fit(hparams: Any, minutes: float, recognition: float, pixels_first: float = 0.5) -> None:
    """Refuse a decoder phase that could not run, before any training: a non-positive time, a negative
    weight, a share of the time outside [0, 1], or a recognition term on a model whose head has no factor vectors."""
    if not minutes > 0:
        raise ValueError(f"decoder_minutes: expected a positive number of minutes, got {minutes}")
    if not 0.0 <= pixels_first <= 1.0:
        raise ValueError(f"decoder_pixels_first: expected a share of the time in [0, 1], got {pixels_first}")
    if not recognition >= 0:
        raise ValueError(f"decoder_recognition: expected a weight >= 0, got {recognition}")
    if recognition > 0 and hparams.get("head", "factorised") != "factorised":
        raise ValueError(f"decoder_recognition: the recognition term reads the factorised head's vectors; this "
                         f"model's head is {hparams.get('head')!r} (pass --decoder_recognition 0)")


class VSACLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--test_after_fit", type=bool, default=True,
                            help="after fit, test the best checkpoint with every head and print the report")
        parser.add_argument("--report", type=str, default=None,
                            help="where to write the test report JSON (default: <log dir>/test_report.json)")
        parser.add_argument("--export", type=str, default=None,
                            help="after fit, write the best model as safetensors here "
                                 "(default: model.safetensors beside the checkpoints)")
        parser.add_argument("--calibrate", type=bool, default=False,
                            help="after fit, fit when the exported model abstains (known) and how likely its answers "
                                 "are right, on the dataset's val images against foreign inputs (renders when there "
                                 "is no data_dir), measure them on its test images, and store them in the export")
        parser.add_argument("--calibrate_scenes", type=int, default=4000,
                            help="with --calibrate: scenes to fit on (the val images, repeated, freshly degraded)")
        parser.add_argument("--calibrate_foreign", type=int, default=2000,
                            help="with --calibrate: foreign inputs to fit on (blank, noise, photographs, inverted)")
        parser.add_argument("--decoder_minutes", type=float, default=0.0,
                            help="after fit, train the exported model's learned decoder alone for this long with the "
                                 "encoder frozen (fit_decoder): its loss plus --decoder_recognition times how far the "
                                 "encoder's reading of the drawings is from their labels; the result is in the export "
                                 "(model.safetensors), not in best.ckpt")
        parser.add_argument("--decoder_recognition", type=float, default=0.05,
                            help="with --decoder_minutes: the weight of the recognition term")
        parser.add_argument("--decoder_pixels_first", type=float, default=0.5,
                            help="with --decoder_minutes: the share of the time on the decoder's pixel loss alone, "
                                 "before the recognition term joins")
        parser.link_arguments("model.schema", "data.schema")

    def before_instantiate_classes(self) -> None:
        """``model.schema: dataset`` (configs/own.yaml) becomes the schema of the dataset in
        ``data.data_dir``: a user's imported images bring their own attributes."""
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        if cfg.model.get("schema") == DATASET_SCHEMA:
            if not cfg.data.get("data_dir"):
                self.parser.error(f"model.schema {DATASET_SCHEMA!r}: the schema of the dataset in data.data_dir, but "
                                  "no --data.data_dir was given (import your images with 'vsa-vision data import "
                                  "FOLDER --out DATASET', then pass --data.data_dir DATASET)")
            try:
                schema = dataset_schema(cfg.data.data_dir).to_dict()
            except (OSError, ValueError) as e:
                self.parser.error(f"--data.data_dir: {e}")
            cfg.model.schema = schema
            cfg.data.schema = schema

    def before_fit(self) -> None:
        phase = self._decoder_phase()
        if phase["minutes"]:  # refused now, not after the whole training run
            if getattr(self.model, "decoder", None) is None:
                raise ValueError("decoder_minutes: the model has no learned decoder (model.decoder: <width>)")
            check_decoder_fit(self.model.hparams, **phase)

    def _decoder_phase(self) -> dict[str, float]:
        """The decoder phase's ``minutes`` (0: none), ``recognition`` and ``pixels_first``, as the config
        gives them (the parser's defaults where it is silent)."""
        cfg = self.config["fit"]
        return {"minutes": cfg.get("decoder_minutes", 0.0), "recognition": cfg.get("decoder_recognition", 0.05),
                "pixels_first": cfg.get("decoder_pixels_first", 0.5)}

    def _write_report(self) -> None:
        report = getattr(self.model, "test_report", None)
        if not report or not self.trainer.is_global_zero:
            return
        print("\n" + format_report(report) + "\n")
        path = self.config[self.subcommand].get("report") or os.path.join(
            self.trainer.log_dir or self.trainer.default_root_dir, "test_report.json")
        atomic_write(path, lambda f: f.write(report_json(report)))
        print(f"test report: {path}")

    def after_fit(self) -> None:
        if self.trainer.interrupted:
            return
        cb = self.trainer.checkpoint_callback
        best = getattr(cb, "best_model_path", "") if cb is not None else ""
        if self.trainer.is_global_zero and best and not self.trainer.fast_dev_run:
            out = self.config["fit"].get("export") or os.path.join(os.path.dirname(best), "model.safetensors")
            model = type(self.model).load_from_checkpoint(best, map_location="cpu", weights_only=True)
            phase = self._decoder_phase()
            if phase["minutes"]:  # before the one export (before_fit refused a model without a decoder)
                fit_decoder(model, self.datamodule.train_dataloader(), **phase)
                print(f"decoder fitted for {phase['minutes']:g} minutes")
            print(f"best model ({os.path.basename(best)}): {export_model(model, out)}")
            if self.config["fit"].get("calibrate", False):
                self._calibrate(model, out)
        if self.config["fit"].get("test_after_fit", True):
            if best:
                self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best, weights_only=True)
            else:
                self.trainer.test(self.model, datamodule=self.datamodule)
            self._write_report()

    def _calibrate(self, model: VSAModel, out: str) -> None:
        """Fit and measure the exported model's trust rules (:mod:`vsa_vision.trust_fit`) and write them
        into the export, with the measurement beside it (``calibration.json``)."""
        import json

        from .trust_fit import evaluate_trust, fit_trust, summary

        data_dir = getattr(self.datamodule, "data_dir", None)
        model = model.eval()
        t0 = time.perf_counter()
        cfg = self.config["fit"]
        model.trust = fit_trust(model, data_dir=data_dir, n_scenes=cfg.get("calibrate_scenes", 4000),
                                n_foreign=cfg.get("calibrate_foreign", 2000))
        if data_dir is not None and not dataset_counts(data_dir)["test"]:
            export_model(model, out)
            print(f"calibrated in {time.perf_counter() - t0:.0f} s (rules stored in {out}); not measured: {data_dir} "
                  "has no test images")
            return
        report = summary(evaluate_trust(model, data_dir=data_dir, n_foreign=cfg.get("calibrate_foreign", 2000)))
        model.trust["report"] = report
        export_model(model, out)
        path = os.path.join(os.path.dirname(out), "calibration.json")
        atomic_write(path, lambda f: f.write(json.dumps(report, indent=2) + "\n"))
        print(f"calibrated in {time.perf_counter() - t0:.0f} s: clean test images known {report['known_clean']:.2%}, "
              f"foreign inputs unknown {report['unknown_foreign']:.2%}, ECE {report['ece_clean']:.3f} (clean) / "
              f"{report['ece']:.3f} (degraded); rules stored in {out}, measurement in {path}")

    def after_test(self) -> None:
        self._write_report()


def _schema_of(args: Sequence[str]) -> Any:
    """The schema the command line asks for: the last ``--model.schema``, else the last config
    file's ``model.schema``, else the model's default."""
    import yaml

    schema: Any = "default"
    data_dir: Any = None
    for i, a in enumerate(args):
        key, eq, value = a.partition("=")
        if key not in ("--config", "--model.schema", "--data.data_dir"):
            continue
        value = value if eq else (args[i + 1] if i + 1 < len(args) else "")
        if key == "--model.schema":
            schema = value
        elif key == "--data.data_dir":
            data_dir = value
        elif os.path.isfile(value):
            with open(value) as f:
                cfg = yaml.safe_load(f) or {}
            if isinstance(cfg, dict):
                schema = (cfg.get("model") or {}).get("schema", schema)
                data_dir = (cfg.get("data") or {}).get("data_dir", data_dir)
    if schema == DATASET_SCHEMA and data_dir:
        return dataset_schema(data_dir)
    return schema


def cli_main(args: Any = None) -> VSACLI:
    """``train.py``'s LightningCLI; the schema decides the model: several objects a scene train a
    :class:`~vsa_vision.multi.MultiVSAModel`, one a :class:`~vsa_vision.model.VSAModel`."""
    import sys

    argv = list(sys.argv[1:] if args is None else args) if not isinstance(args, dict) else []
    try:
        cls = model_class(_schema_of(argv))
    except (ValueError, OSError):
        cls = VSAModel  # LightningCLI reports the bad schema in its own words
    return VSACLI(cls, TrainingData, args=args, save_config_kwargs={"overwrite": True})
