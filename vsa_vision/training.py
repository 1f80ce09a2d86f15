"""The training entry point behind ``train.py``: LightningCLI, plus a test report after ``fit``.

    python train.py fit --config configs/default.yaml      train, then test every head and report
    python train.py fit --config configs/default.yaml --ckpt_path last   resume an interrupted run
    python train.py test --config configs/default.yaml --ckpt_path checkpoints/default-run/best.ckpt
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.cli import LightningCLI

from .checkpoint import export_model
from .io import atomic_write
from .model import VSAModel, format_report, report_json
from .scenes.datamodule import SceneDataModule


class WallClock(pl.Callback):
    """Logs minutes of training so far at every validation: the accuracy-against-time curve."""

    def __init__(self) -> None:
        self.start: float | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.start is not None and not trainer.sanity_checking:
            pl_module.log("time/minutes", (time.perf_counter() - self.start) / 60.0)


class VSACLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--test_after_fit", type=bool, default=True,
                            help="after fit, test the best checkpoint with every head and print the report")
        parser.add_argument("--report", type=str, default=None,
                            help="where to write the test report JSON (default: <log dir>/test_report.json)")
        parser.add_argument("--export", type=str, default=None,
                            help="after fit, write the best model as safetensors here "
                                 "(default: model.safetensors beside the checkpoints)")
        parser.link_arguments("model.schema", "data.schema")

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
            model = VSAModel.load_from_checkpoint(best, map_location="cpu", weights_only=True)
            print(f"best model ({os.path.basename(best)}): {export_model(model, out)}")
        if self.config["fit"].get("test_after_fit", True):
            if best:
                self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best, weights_only=True)
            else:
                self.trainer.test(self.model, datamodule=self.datamodule)
            self._write_report()

    def after_test(self) -> None:
        self._write_report()


def cli_main(args: Any = None) -> VSACLI:
    return VSACLI(VSAModel, SceneDataModule, args=args, save_config_kwargs={"overwrite": True})
