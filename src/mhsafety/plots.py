"""Matplotlib figures shared by benchmark, analyze and report (headless Agg backend)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .taxonomy import LABEL_NAMES


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # never needs a display
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike[str], formats: Sequence[str] = ("png",)) -> list[Path]:
    """Save ``fig`` under ``path`` (suffix replaced per format), atomically; close it."""
    from .io import atomic_write

    plt = _pyplot()
    written = []
    for fmt in formats:
        target = Path(path).with_suffix(f".{fmt}")
        with atomic_write(target, "wb") as handle:
            fig.savefig(handle, format=fmt, bbox_inches="tight", dpi=120)
        written.append(target)
    plt.close(fig)
    return written


def plot_confusion_matrix(matrix: np.ndarray | Sequence[Sequence[float]], title: str = "",
                          normalize: bool = True):
    """A confusion-matrix figure with the category names on both axes.

    ``matrix`` is 8 x 8, or 8 x 9 with a last 'invalid' column (as metrics produce).
    With ``normalize``, each gold row is shown as shares (counts in the cells' text).
    """
    plt = _pyplot()
    counts = np.asarray(matrix, dtype=float)
    cols = list(LABEL_NAMES) + (["(invalid)"] if counts.shape[1] > len(LABEL_NAMES) else [])
    if counts.shape[1] > len(LABEL_NAMES) and counts[:, -1].sum() == 0:
        counts, cols = counts[:, :-1], cols[:-1]
    rows = counts.sum(axis=1, keepdims=True)
    shown = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0) if normalize \
        else counts
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(cols), 1.0 + 0.8 * len(LABEL_NAMES)))
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(len(cols)), cols, rotation=40, ha="right")
    ax.set_yticks(range(len(LABEL_NAMES)), LABEL_NAMES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            if counts[i, j]:
                dark = shown[i, j] > (0.6 if normalize else shown.max() * 0.6)
                ax.text(j, i, f"{counts[i, j]:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    fig.colorbar(image, ax=ax, fraction=0.04, label="share of gold row" if normalize else "count")
    if title:
        ax.set_title(title)
    return fig
