"""Matplotlib figures for the benchmarks: headless, written atomically."""

from __future__ import annotations

from ..io import atomic_path


def new_axes(figsize: tuple[float, float] = (6.4, 4.2)):
    """``(fig, ax)`` on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)


def save_figure(fig, path: str, dpi: int = 110) -> None:
    """Write ``fig`` as PNG to ``path`` atomically and close it."""
    import matplotlib.pyplot as plt

    try:
        fig.tight_layout()
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
