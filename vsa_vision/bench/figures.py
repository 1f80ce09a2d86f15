"""Matplotlib figures for the benchmarks: headless, written atomically."""

from __future__ import annotations

from ..io import atomic_path


def new_axes(figsize: tuple[float, float] = (6.4, 4.2), ncols: int | None = None):
    """``(fig, ax)`` on the headless Agg backend; with ``ncols``, ``(fig, [ax, ...])`` side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if ncols is None:
        return plt.subplots(figsize=figsize)
    fig, axes = plt.subplots(1, ncols, figsize=figsize, squeeze=False)
    return fig, list(axes[0])


def save_figure(fig, path: str, dpi: int = 110) -> None:
    """Write ``fig`` as PNG to ``path`` atomically and close it."""
    import matplotlib.pyplot as plt

    try:
        fig.tight_layout()
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
