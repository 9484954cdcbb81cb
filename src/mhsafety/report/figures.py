"""Every figure in one place: the matplotlib plots (confusion matrix, per-class F1, score
distributions, reliability diagram, intervals) shared by ``benchmark``, ``analyze`` and
``report``, and the report's set of them, saved as PNG and SVG and kept in memory for the
HTML page. Headless (the Agg backend): nothing here needs a display.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..analysis.core import Analysis
from ..analysis.stats import confusions, scores_from_confusion
from ..metrics import METRICS
from ..taxonomy import LABEL_NAMES

FORMATS = ("png", "svg")
DISTRIBUTION_METRICS = tuple((name, METRICS[name].label)
                             for name in ("accuracy", "f1", "macro_f1", "unsafe_recall"))


# --------------------------------------------------------------------------- plots

# Fonts tried in order for every glyph (matplotlib falls back glyph by glyph), so Chinese
# target, persona and category names draw where a CJK font is installed; the report page's
# style sheet names the same families.
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei",
             "WenQuanYi Zen Hei", "PingFang SC", "Microsoft YaHei", "SimHei",
             "Arial Unicode MS")


def font_stack() -> list[str]:
    """The installed CJK fonts of :data:`CJK_FONTS`, then matplotlib's default sans-serif
    (naming only installed families keeps matplotlib from warning about the others)."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return [name for name in CJK_FONTS if name in installed] + ["DejaVu Sans"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # never needs a display
    import matplotlib.pyplot as plt

    plt.rcParams["font.sans-serif"] = [*font_stack(), *(
        f for f in plt.rcParams["font.sans-serif"] if f not in CJK_FONTS)]
    plt.rcParams["font.family"] = "sans-serif"
    return plt


def save_figure(fig, path: str | os.PathLike[str], formats: Sequence[str] = ("png",)) -> list[Path]:
    """Save ``fig`` under ``path`` (suffix replaced per format), atomically; close it."""
    from ..io import atomic_write

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
    from ..analysis.stats import reliability_bins

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


def plot_grouped_rates(groups: Sequence[str], series: Sequence[str],
                       values: Sequence[Sequence[float | None]],
                       intervals: Sequence[Sequence[tuple[float | None, float | None] | None]]
                       | None = None, title: str = "", xlabel: str = "%"):
    """Horizontal grouped bars: one group per entry of ``groups`` (categories, risk levels),
    one bar per entry of ``series`` (targets). ``values[i][g]`` is series i's fraction in
    group g (None: no bar, and "n/a" written); ``intervals[i][g]`` its (low, high), drawn as
    an error bar."""
    plt = _pyplot()
    k, m = len(series), len(groups)
    height = 0.8 / max(k, 1)
    fig, ax = plt.subplots(figsize=(8.0, max(2.2, 0.32 * k * m + 1.2)))
    y = np.arange(m)[::-1]
    for i, (name, color) in enumerate(zip(series, _system_colors(k))):
        pos = y + 0.4 - height * (i + 0.5)
        shown = np.array([np.nan if v is None else 100 * v for v in values[i]], dtype=float)
        err = None
        if intervals is not None:
            err = np.zeros((2, m))
            for g, iv in enumerate(intervals[i]):
                if iv is not None and iv[0] is not None and not np.isnan(shown[g]):
                    err[:, g] = [shown[g] - 100 * iv[0], 100 * iv[1] - shown[g]]
            err = np.clip(err, 0, None)
        ax.barh(pos, np.nan_to_num(shown), height, label=name, color=color, xerr=err,
                capsize=2, error_kw={"elinewidth": 0.8})
        for g in np.flatnonzero(np.isnan(shown)):
            ax.text(0.5, pos[g], "n/a", va="center", fontsize=7, color="grey")
    ax.set_yticks(y, list(groups), fontsize=9)
    ax.set_xlabel(xlabel)
    # Up to the largest bar or interval end, so small shares stay readable.
    ends = [100 * v for row in values for v in row if v is not None] + [
        100 * iv[1] for row in (intervals or []) for iv in row
        if iv is not None and iv[1] is not None]
    ax.set_xlim(0, min(100.0, max(5.0, 1.1 * max(ends, default=100.0))))
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_rate_pairs(names: Sequence[str],
                    observed: Sequence[tuple[float, float | None, float | None] | None],
                    corrected: Sequence[tuple[float, float | None, float | None] | None],
                    title: str = ""):
    """Each target's observed rate and, where there is one, its corrected rate, with their
    intervals ((estimate, low, high) fractions; None: not drawn)."""
    plt = _pyplot()
    k = len(names)
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * k + 1.6))
    for offset, rows, color, label in ((0.12, observed, "#333333", "observed (grader's own)"),
                                       (-0.12, corrected, "#c44e52",
                                        "corrected for the grader's errors")):
        drawn = False
        for i, row in enumerate(rows):
            if row is None or row[0] is None:
                continue
            est, low, high = (100 * (v if v is not None else row[0]) for v in row)
            ax.errorbar(est, k - 1 - i + offset, xerr=[[est - low], [high - est]], fmt="o",
                        color=color, capsize=3, label=None if drawn else label)
            drawn = True
    ax.set_yticks(range(k), list(reversed(list(names))), fontsize=9)
    ax.set_ylim(-0.6, k - 0.4)
    ax.set_xlabel("unsafe replies (%)")
    ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- the report's figures


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


# --------------------------------------------------------------------------- a chatbot audit's figures


def _triple(rate: dict, key: str, ci_key: str) -> tuple[float, float | None, float | None] | None:
    if rate.get(key) is None:
        return None
    ci = rate.get(ci_key) or [None, None]
    return (rate[key], ci[0], ci[1])


def render_probe_figures(summary: dict, out_dir: str | os.PathLike[str] | None = None
                         ) -> list[RenderedFigure]:
    """The figures of a chatbot audit's report from its ``summary.json`` object
    (:func:`mhsafety.probe.summary.build_summary`): unsafe rates observed and corrected,
    unsafe categories, rates by risk level, crisis handling by risk level. With ``out_dir``
    each is also saved as PNG and SVG."""
    target = Path(out_dir) if out_dir is not None else None
    targets = summary["targets"]
    names = list(targets)
    level = f"{100 * summary.get('protocol', {}).get('level', 0.95):g} %"
    out: list[RenderedFigure] = []
    rates = [t["unsafe_rate"] for t in targets.values()]
    fig = plot_rate_pairs(names, [_triple(r, "observed", "ci") for r in rates],
                          [_triple(r, "corrected", "corrected_ci") for r in rates])
    out.append(_render(fig, "unsafe-rates", "Unsafe replies per target",
                       f"Share of graded replies the grader found unsafe, with its {level} "
                       "interval (clusters resampled); beside it the rate corrected for the "
                       "grader's measured sensitivity and specificity, where a calibration "
                       "sample allowed it.", target))

    unsafe = [n for n in LABEL_NAMES if n != LABEL_NAMES[-1]]
    shares = []
    for t in targets.values():
        graded = t["n"] - t["ungraded"]
        shares.append([t["categories"].get(n, 0) / graded if graded else None for n in unsafe])
    fig = plot_grouped_rates(unsafe, names, shares, xlabel="share of graded replies (%)")
    out.append(_render(fig, "categories", "Unsafe categories per target",
                       "Share of each target's graded replies given each unsafe label.",
                       target))

    # Risk levels in the summary's own order (it lists them from lowest to highest).
    risks = list(dict.fromkeys([*(r for t in targets.values() for r in t["by_risk"]), *(
        r for t in targets.values() for r in (t.get("crisis") or {}).get("by_risk", {}))]))
    rated = [r for r in risks if any(r in t["by_risk"] for t in targets.values())]
    if rated:
        blocks = [[t["by_risk"].get(r, {}).get("unsafe_rate") for r in rated]
                  for t in targets.values()]
        fig = plot_grouped_rates(
            rated, names, [[b["observed"] if b else None for b in row] for row in blocks],
            [[tuple(b["ci"]) if b and b.get("ci") else None for b in row] for row in blocks],
            xlabel="unsafe replies (%)")
        out.append(_render(fig, "by-risk", "Unsafe replies by the seeker's risk level",
                           f"Multi-turn replies, grouped by the persona's risk level; "
                           f"{level} intervals over conversations.", target))

    crisis_risks = [r for r in risks if any(
        (t.get("crisis") or {}).get("by_risk", {}).get(r, {}).get("conversations")
        for t in targets.values())]
    if crisis_risks:
        blocks = [[(t.get("crisis") or {}).get("by_risk", {}).get(r) for r in crisis_risks]
                  for t in targets.values()]
        fig = plot_grouped_rates(
            crisis_risks, names,
            [[b.get("pass_rate") if b else None for b in row] for row in blocks],
            [[tuple(b["ci"]) if b and b.get("ci") else None for b in row] for row in blocks],
            xlabel="conversations handled safely (%)")
        out.append(_render(fig, "crisis", "Crisis handling by risk level",
                           f"Share of graded conversations where, after the seeker disclosed "
                           f"a risk to their life, the target acknowledged it, asked about "
                           f"their safety and pointed to human help; {level} Wilson intervals.",
                           target))
    return out
