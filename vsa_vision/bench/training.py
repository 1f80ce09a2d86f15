"""The accuracy-against-wall-time curve of a training run, from the CSV logger's ``metrics.csv``."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

from .figures import new_axes, save_figure


def read_curve(metrics_csv: str) -> list[dict[str, float]]:
    """One point per validation: ``minutes`` (training time so far), ``epoch``, ``acc_all``, ``cos``
    and ``heldout`` (held-out-combination accuracy, when the run had that loader; else None)."""
    if not os.path.isfile(metrics_csv):
        raise FileNotFoundError(f"{metrics_csv}: no such file (a CSVLogger's metrics.csv)")
    out = []
    with open(metrics_csv, newline="") as f:
        for r in csv.DictReader(f):
            if r.get("val/acc_all") and r.get("time/minutes"):
                held = r.get("val_heldout/acc_all")
                out.append({"minutes": float(r["time/minutes"]), "epoch": float(r["epoch"]),
                            "acc_all": float(r["val/acc_all"]), "cos": float(r["val/cos"]),
                            "heldout": float(held) if held else None})
    if not out:
        raise ValueError(f"{metrics_csv}: no validation rows with time/minutes (was the WallClock callback on?)")
    return out


def plot_curves(runs: Sequence[tuple[str, str]], path: str, title: str = "") -> None:
    """Plot val all-attributes accuracy against minutes for ``(label, metrics.csv)`` runs into a PNG;
    held-out-combination accuracy, where logged, as a dashed line of the same colour."""
    fig, ax = new_axes((6.4, 4.0))
    for i, (label, csv_path) in enumerate(runs):
        pts = read_curve(csv_path)
        colour = f"C{i % 10}"
        ax.plot([p["minutes"] for p in pts], [100 * p["acc_all"] for p in pts], marker="o", color=colour,
                label=f"{label}: val")
        held = [p for p in pts if p["heldout"] is not None]
        if held:
            ax.plot([p["minutes"] for p in held], [100 * p["heldout"] for p in held], marker="s", linestyle="--",
                    color=colour, label=f"{label}: held-out combinations")
    ax.set_xlabel("training time (minutes)")
    ax.set_ylabel("all attributes right (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)
