"""The figures of an analysis, saved as PNG and SVG and kept in memory for the HTML page."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..analysis.core import Analysis
from ..analysis.stats import confusions, scores_from_confusion
from ..taxonomy import LABEL_NAMES

FORMATS = ("png", "svg")
DISTRIBUTION_METRICS = (("accuracy", "Accuracy"), ("f1", "Weighted F1"),
                        ("macro_f1", "Macro-F1"), ("unsafe_recall", "Unsafe recall"))


@dataclass
class RenderedFigure:
    slug: str
    title: str
    caption: str
    png: bytes
    files: list[Path] = field(default_factory=list)


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "system"


def _render(fig, slug: str, title: str, caption: str,
            out_dir: Path | None) -> RenderedFigure:
    import io as _io

    from ..io import atomic_write
    from ..plots import _pyplot, save_figure

    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", dpi=110)
    files: list[Path] = []
    if out_dir is not None:
        # the PNG is rendered once and reused; only the SVG needs a second pass
        with atomic_write(out_dir / f"{slug}.png", "wb") as handle:
            handle.write(buffer.getvalue())
        files = [out_dir / f"{slug}.png", *save_figure(fig, out_dir / slug, ("svg",))]
    else:
        _pyplot().close(fig)
    return RenderedFigure(slug, title, caption, buffer.getvalue(), files)


def render_figures(analysis: Analysis, out_dir: str | os.PathLike[str] | None = None
                   ) -> list[RenderedFigure]:
    """Every figure of the report; with ``out_dir``, each is also saved as PNG and SVG."""
    from ..plots import (
        plot_confusion_matrix,
        plot_intervals,
        plot_per_class_f1,
        plot_reliability,
        plot_score_distributions,
    )

    target = Path(out_dir) if out_dir is not None else None
    systems = analysis.predictions
    names = [s.system for s in systems]
    per_run = [scores_from_confusion(confusions(s.gold, s.pred)) for s in systems]
    out: list[RenderedFigure] = []

    intervals = [{k: (iv.estimate, iv.low, iv.high) for k, iv in summary.intervals.items()}
                 for summary in analysis.systems]
    fig = plot_intervals(names, intervals, DISTRIBUTION_METRICS)
    out.append(_render(fig, "intervals", "Scores with bootstrap intervals",
                       f"Mean over runs and its {100 * analysis.level:g} % bootstrap interval "
                       f"({analysis.resamples} item resamples).", target))

    fig = plot_score_distributions(
        names, [{k: v[k] for k, _ in DISTRIBUTION_METRICS} for v in per_run],
        DISTRIBUTION_METRICS,
        [{k: (iv[1], iv[2]) for k, iv in ints.items()} for ints in intervals])
    out.append(_render(fig, "score-distributions", "Scores of every run",
                       "Dots: runs; black line: mean over runs; grey bar: bootstrap interval "
                       "over items.", target))

    supports = [int(np.sum(systems[0].gold == c)) for c in range(len(LABEL_NAMES))] \
        if len({s.n_items for s in systems}) == 1 else None
    # Systems may have different numbers of runs; a class with no items is NaN in every run.
    means = np.array([[np.mean(v[f"f1:{name}"]) for name in LABEL_NAMES] for v in per_run])
    stds = np.array([[np.std(v[f"f1:{name}"], ddof=1) if len(v[f"f1:{name}"]) > 1 else 0.0
                      for name in LABEL_NAMES] for v in per_run])
    fig = plot_per_class_f1(names, means, stds, supports)
    out.append(_render(fig, "per-class-f1", "F1 per class",
                       "Mean over runs; error bars: standard deviation over runs. n = gold "
                       "items of the class.", target))

    for s in systems:
        matrix = confusions(s.gold, s.pred).sum(axis=0)
        runs = f"{s.n_runs} runs summed" if s.n_runs > 1 else "1 run"
        fig = plot_confusion_matrix(matrix, title=f"{s.system} ({runs})")
        out.append(_render(fig, f"confusion-{slugify(s.system)}", f"Confusion matrix: "
                           f"{s.system}", "Rows: gold label, shares of the row; cell text: "
                           "counts over all runs.", target))

    for s in systems:
        if s.probs is None:
            continue
        gold = np.broadcast_to(s.gold, s.probs.shape[:2])
        fig = plot_reliability(s.probs, gold, title=s.system)
        out.append(_render(fig, f"reliability-{slugify(s.system)}",
                           f"Reliability diagram: {s.system}",
                           "Items binned by the probability of the top label; bars: how often "
                           "that label is right; all runs pooled.", target))
    return out


def save_all_figures(analysis: Analysis, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Save every figure as PNG and SVG under ``out_dir``; returns the files written."""
    return [path for fig in render_figures(analysis, out_dir) for path in fig.files]
