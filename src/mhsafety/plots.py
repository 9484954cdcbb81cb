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


def _system_colors(n: int):
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def plot_per_class_f1(systems: Sequence[str], means: np.ndarray | Sequence[Sequence[float]],
                      stds: np.ndarray | Sequence[Sequence[float]] | None = None,
                      supports: Sequence[int] | None = None, title: str = "",
                      ylabel: str = "F1 (%)"):
    """Grouped bars: one group per category, one bar per system (values are fractions).

    ``means`` and ``stds`` have shape (systems, 8); error bars show the std over runs.
    A NaN (class absent from the data) draws no bar.
    """
    plt = _pyplot()
    values = 100 * np.asarray(means, dtype=float)
    errors = None if stds is None else 100 * np.nan_to_num(np.asarray(stds, dtype=float))
    k = len(systems)
    width = 0.8 / max(k, 1)
    fig, ax = plt.subplots(figsize=(min(16.0, max(9.0, 1.2 * len(LABEL_NAMES) + 0.2 * k * 8)),
                                    5.0))
    x = np.arange(len(LABEL_NAMES))
    for i, (name, color) in enumerate(zip(systems, _system_colors(k))):
        ax.bar(x - 0.4 + width * (i + 0.5), values[i], width, label=name, color=color,
               yerr=None if errors is None else errors[i], capsize=2,
               error_kw={"elinewidth": 0.8})
    labels = [f"{n}\n(n={s})" for n, s in zip(LABEL_NAMES, supports)] if supports is not None \
        else list(LABEL_NAMES)
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=9)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(k, 3), loc="upper center", bbox_to_anchor=(0.5, -0.28))
    if title:
        ax.set_title(title)
    return fig


def plot_score_distributions(systems: Sequence[str],
                             run_scores: Sequence[dict[str, Sequence[float]]],
                             metrics: Sequence[tuple[str, str]],
                             intervals: Sequence[dict[str, tuple[float, float]]] | None = None,
                             title: str = ""):
    """One panel per metric: each run of each system as a dot, the mean as a bar.

    ``run_scores[i][metric]`` are system i's per-run values (fractions); ``metrics`` are
    (key, title) pairs; ``intervals[i][metric]`` (low, high), if given, are drawn as a
    bootstrap interval beside the dots.
    """
    plt = _pyplot()
    k = len(systems)
    ncols = min(len(metrics), 2)
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(4.0, 0.8 * k + 1.5) * ncols,
                                                    4.8 * nrows), squeeze=False)
    for ax in axes.ravel()[len(metrics):]:
        ax.set_visible(False)
    rng = np.random.default_rng(0)  # jitter only, for readability
    colors = _system_colors(k)
    for ax, (key, heading) in zip(axes.ravel(), metrics):
        for i in range(k):
            vals = 100 * np.asarray(run_scores[i][key], dtype=float)
            jitter = rng.uniform(-0.12, 0.12, size=vals.size)
            ax.scatter(np.full(vals.size, i) + jitter, vals, s=18, color=colors[i], zorder=3)
            ax.hlines(vals.mean(), i - 0.25, i + 0.25, color="black", lw=1.5, zorder=4)
            if intervals is not None and key in intervals[i]:
                low, high = intervals[i][key]
                ax.vlines(i + 0.32, 100 * low, 100 * high, color="grey", lw=2.5, zorder=2)
        ax.set_xticks(range(k), systems, rotation=35, ha="right", fontsize=8)
        ax.set_title(heading)
        ax.set_ylabel("%")
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_reliability(probs: np.ndarray, gold: np.ndarray, bins: int = 10, title: str = ""):
    """Reliability diagram of a system that outputs probabilities (all runs pooled)."""
    plt = _pyplot()
    from .analysis.stats import reliability_bins

    _, accuracy, counts, ece = reliability_bins(probs, gold, bins)
    edges = np.linspace(0, 1, bins + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.2, 6.0), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    ax.bar(centers, np.nan_to_num(accuracy), width=1 / bins, edgecolor="black",
           color="#4c72b0", alpha=0.85, label="accuracy of the top label")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title((title + "\n" if title else "") + f"ECE = {100 * ece:.1f} %")
    hist.bar(centers, counts, width=1 / bins, edgecolor="black", color="#999999")
    hist.set_xlabel("confidence (top probability)")
    hist.set_ylabel("items")
    hist.set_xlim(0, 1)
    return fig


def plot_intervals(systems: Sequence[str], intervals: Sequence[dict[str, tuple[float, float,
                                                                               float]]],
                   metrics: Sequence[tuple[str, str]], title: str = ""):
    """Forest plot: each system's estimate and bootstrap interval, one panel per metric.

    ``intervals[i][metric]`` is (estimate, low, high) as fractions.
    """
    plt = _pyplot()
    k = len(systems)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) + 2.5,
                                                       0.45 * k + 1.6),
                             sharey=True, squeeze=False)
    colors = _system_colors(k)
    for ax, (key, heading) in zip(axes[0], metrics):
        for i in range(k):
            est, low, high = (100 * v for v in intervals[i][key])
            ax.errorbar(est, k - 1 - i, xerr=[[est - low], [high - est]], fmt="o",
                        color=colors[i], capsize=3)
        ax.set_title(heading, fontsize=10)
        ax.set_xlabel("%")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(k), list(reversed(list(systems))), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
