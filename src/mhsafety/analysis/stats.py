"""Bootstrap confidence intervals and paired significance tests over items.

All scores are computed from confusion matrices, so that thousands of bootstrap resamples
cost one integer matrix product: a resample is a count vector over items (how often each item
was drawn), and its confusion matrix is that vector times the one-hot (gold, pred) codes of
the items. Scores match :func:`mhsafety.metrics.compute_metrics` exactly on the original
items (weighted P/R/F1 over present labels, macro-F1 over gold classes, invalid = wrong).

A system with several runs is scored as the mean over its runs, as Table 2 does; the
bootstrap resamples items (the same items for every run and every system), so its interval
reflects the uncertainty of a test set of this size, not run-to-run noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..taxonomy import LABEL_NAMES, NUM_LABELS, SAFE_LABEL
from .predictions import INVALID, SystemPredictions

SCORES = ("accuracy", "precision", "recall", "f1", "macro_f1",
          "unsafe_precision", "unsafe_recall", "unsafe_f1")
# Per-class scores are named "recall:<label name>" and "f1:<label name>".
PER_CLASS = tuple(f"{kind}:{name}" for kind in ("recall", "f1") for name in LABEL_NAMES)
DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0
_COLS = NUM_LABELS + 1  # predicted labels plus the 'invalid' column
_CHUNK = 2_000  # resamples per matrix product, bounds memory at ~25 MB


def _codes(gold: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(runs, n) cell index gold * 9 + predicted column of each item in each run."""
    cols = np.where(pred == INVALID, NUM_LABELS, pred)
    return gold[None, :] * _COLS + cols


def confusions(gold: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(runs, 8, 9) confusion counts of every run (last column: invalid predictions)."""
    codes = _codes(gold, np.atleast_2d(pred))
    runs = codes.shape[0]
    flat = codes + (np.arange(runs) * NUM_LABELS * _COLS)[:, None]
    counts = np.bincount(flat.ravel(), minlength=runs * NUM_LABELS * _COLS)
    return counts.reshape(runs, NUM_LABELS, _COLS)


def scores_from_confusion(conf: np.ndarray) -> dict[str, np.ndarray]:
    """Every score of every confusion matrix in ``conf`` (shape (..., 8, 9)).

    Returns arrays of shape ``conf.shape[:-2]``. Per-class recall is NaN where a class has
    no gold item (a resample may draw none of a rare class).
    """
    conf = np.asarray(conf, dtype=float)
    square = conf[..., :, :NUM_LABELS]
    tp = np.diagonal(square, axis1=-2, axis2=-1)
    support = conf.sum(axis=-1)
    predicted = square.sum(axis=-2)
    n = support.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision_c = np.where(predicted > 0, tp / predicted, 0.0)
        recall_c = np.where(support > 0, tp / support, np.nan)
        f1_c = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
        present = support > 0
        out = {
            "accuracy": tp.sum(axis=-1) / n,
            "precision": (support * precision_c).sum(axis=-1) / n,
            "recall": (support * np.nan_to_num(recall_c)).sum(axis=-1) / n,
            "f1": (support * f1_c).sum(axis=-1) / n,
            "macro_f1": np.where(present, f1_c, 0.0).sum(axis=-1) / present.sum(axis=-1),
        }
        # Binary view: gold rows 0..6 are unsafe; an invalid answer lands on the wrong side.
        unsafe = [c for c in range(NUM_LABELS) if c != SAFE_LABEL]
        tp_u = conf[..., unsafe, :][..., :, unsafe].sum(axis=(-2, -1))
        fp_u = conf[..., SAFE_LABEL, unsafe].sum(axis=-1) + conf[..., SAFE_LABEL, NUM_LABELS]
        fn_u = conf[..., unsafe, SAFE_LABEL].sum(axis=-1) + conf[..., unsafe, NUM_LABELS].sum(
            axis=-1)
        up = np.where(tp_u + fp_u > 0, tp_u / (tp_u + fp_u), 0.0)
        ur = np.where(tp_u + fn_u > 0, tp_u / (tp_u + fn_u), 0.0)
        out["unsafe_precision"] = up
        out["unsafe_recall"] = ur
        out["unsafe_f1"] = np.where(up + ur > 0, 2 * up * ur / (up + ur), 0.0)
    for c, name in enumerate(LABEL_NAMES):
        out[f"recall:{name}"] = recall_c[..., c]
        out[f"f1:{name}"] = np.where(support[..., c] > 0, f1_c[..., c], np.nan)
    return out


def point_scores(system: SystemPredictions) -> dict[str, float]:
    """Each score as the mean over the system's runs (NaN only for a class with no items)."""
    per_run = scores_from_confusion(confusions(system.gold, system.pred))
    return {name: float(np.mean(values)) for name, values in per_run.items()}


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) item indices drawn with replacement, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(resamples, n))


def bootstrap_weights(n: int, resamples: int = DEFAULT_RESAMPLES,
                      seed: int = DEFAULT_SEED) -> list[np.ndarray]:
    """How often each item is drawn in each resample: float32 chunks of shape (b, n).

    Row for row the same draws as :func:`bootstrap_indices`; computed once, they can be
    shared by every system over the same ``n`` items.
    """
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    rng = np.random.default_rng(seed)
    chunks, done = [], 0
    while done < resamples:
        b = min(_CHUNK, resamples - done)
        idx = rng.integers(0, n, size=(b, n))
        flat = (idx + (np.arange(b) * n)[:, None]).ravel()
        chunks.append(np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float32))
        done += b
    return chunks


def bootstrap_distribution(system: SystemPredictions, resamples: int = DEFAULT_RESAMPLES,
                           seed: int = DEFAULT_SEED,
                           weights: Sequence[np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Every score (mean over runs) on each of ``resamples`` item resamples: arrays (B,).

    Two systems over the same items get the same resamples for the same ``seed`` (or the
    same ``weights``), which is what the paired bootstrap needs.
    """
    n, runs = system.n_items, system.n_runs
    if weights is None:
        weights = bootstrap_weights(n, resamples, seed)
    codes = _codes(system.gold, system.pred)  # (runs, n)
    cells = NUM_LABELS * _COLS
    # One-hot of each item's cell in each run: (n, runs * 72); float32 is exact for counts.
    onehot = np.zeros((n, runs * cells), dtype=np.float32)
    onehot[np.arange(n)[None, :], codes + (np.arange(runs) * cells)[:, None]] = 1.0
    parts: dict[str, list[np.ndarray]] = {}
    for chunk in weights:
        if chunk.shape[1] != n:
            raise ValueError(f"weights cover {chunk.shape[1]} items, the system {n}")
        conf = (chunk @ onehot).reshape(chunk.shape[0], runs, NUM_LABELS, _COLS)
        for name, values in scores_from_confusion(conf).items():
            # Runs share the gold labels, so a class absent from a resample is NaN in every
            # run alike; a plain mean keeps it NaN and the interval skips that resample.
            parts.setdefault(name, []).append(values.mean(axis=1))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


@dataclass
class Interval:
    """A score with its percentile bootstrap interval (fractions, not percent)."""

    estimate: float
    low: float
    high: float
    level: float = 0.95
    resamples: int = DEFAULT_RESAMPLES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    alpha = (1 - level) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return float(low), float(high)


def confidence_intervals(system: SystemPredictions, resamples: int = DEFAULT_RESAMPLES,
                         seed: int = DEFAULT_SEED, level: float = 0.95,
                         distribution: dict[str, np.ndarray] | None = None
                         ) -> dict[str, Interval]:
    """Percentile bootstrap interval of every score (overall, binary and per class)."""
    if distribution is None:
        distribution = bootstrap_distribution(system, resamples, seed)
    point = point_scores(system)
    out = {}
    for name, estimate in point.items():
        low, high = _percentiles(distribution[name], level)
        out[name] = Interval(estimate, low, high, level, len(distribution[name]))
    return out


@dataclass
class PairedBootstrap:
    """Difference A - B of one score, with its interval and a two-sided p-value."""

    metric: str
    a: str
    b: str
    difference: float
    low: float
    high: float
    p_value: float
    resamples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_bootstrap(a: SystemPredictions, b: SystemPredictions, metric: str = "accuracy",
                     resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                     level: float = 0.95,
                     distributions: tuple[dict[str, np.ndarray], dict[str, np.ndarray]]
                     | None = None) -> PairedBootstrap:
    """Paired bootstrap over items shared by ``a`` and ``b`` (aligned, same order).

    The p-value is twice the share of resamples on the far side of zero (plus one, so it
    is never exactly 0): the smallest two-sided level at which the interval of the
    difference excludes zero.
    """
    if a.ids != b.ids:
        raise ValueError("paired tests need both systems aligned on the same items "
                         "(use mhsafety.analysis.align)")
    if distributions is None:
        distributions = (bootstrap_distribution(a, resamples, seed),
                         bootstrap_distribution(b, resamples, seed))
    diff = distributions[0][metric] - distributions[1][metric]
    diff = diff[np.isfinite(diff)]
    observed = point_scores(a)[metric] - point_scores(b)[metric]
    low, high = _percentiles(diff, level)
    count = diff.size
    below = int(np.sum(diff <= 0))
    above = int(np.sum(diff >= 0))
    p = min(1.0, 2 * (min(below, above) + 1) / (count + 1))
    return PairedBootstrap(metric, a.system, b.system, observed, low, high, p, count)


@dataclass
class McNemar:
    """McNemar's test on per-item correctness (majority over runs) of systems A and B.

    ``a_only``: items A gets right and B wrong; ``b_only`` the reverse. The p-value is the
    exact two-sided binomial test on the discordant items; ``chi2`` is the continuity-corrected
    statistic for reference. Effect sizes: ``odds_ratio`` = a_only / b_only and
    ``accuracy_difference`` = (a_only - b_only) / n.
    """

    a: str
    b: str
    n: int
    a_only: int
    b_only: int
    chi2: float
    p_value: float
    odds_ratio: float
    accuracy_difference: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if math.isinf(self.odds_ratio):
            out["odds_ratio"] = None  # JSON has no infinity
        return out


def majority_correct(system: SystemPredictions) -> np.ndarray:
    """(n,) booleans: right in more than half of the runs (one run: right in it)."""
    return system.correct.mean(axis=0) > 0.5


def mcnemar(a: SystemPredictions, b: SystemPredictions) -> McNemar:
    from scipy.stats import binom

    if a.ids != b.ids:
        raise ValueError("paired tests need both systems aligned on the same items "
                         "(use mhsafety.analysis.align)")
    ca, cb = majority_correct(a), majority_correct(b)
    a_only = int(np.sum(ca & ~cb))
    b_only = int(np.sum(~ca & cb))
    discordant = a_only + b_only
    if discordant:
        p = float(min(1.0, 2 * binom.cdf(min(a_only, b_only), discordant, 0.5)))
        chi2 = (abs(a_only - b_only) - 1) ** 2 / discordant
    else:
        p, chi2 = 1.0, 0.0
    odds = a_only / b_only if b_only else (math.inf if a_only else 1.0)
    return McNemar(a.system, b.system, a.n_items, a_only, b_only, float(chi2), p, float(odds),
                   (a_only - b_only) / a.n_items)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class Comparison:
    """System A against system B on the same items: bootstrap per score and McNemar."""

    a: str
    b: str
    n: int
    bootstrap: dict[str, PairedBootstrap]
    mcnemar: McNemar
    # Holm-adjusted p-values over all pairs compared together, per test
    holm: dict[str, float]

    def significant(self, metric: str = "accuracy", alpha: float = 0.05) -> bool:
        return self.holm.get(metric, 1.0) < alpha

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "n": self.n,
                "bootstrap": {k: v.to_dict() for k, v in self.bootstrap.items()},
                "mcnemar": self.mcnemar.to_dict(), "holm": self.holm}


def compare_all(systems: Sequence[SystemPredictions],
                distributions: Sequence[dict[str, np.ndarray]],
                metrics: Sequence[str] = ("accuracy", "f1", "macro_f1", "unsafe_recall"),
                level: float = 0.95) -> list[Comparison]:
    """Every pair of aligned systems; p-values Holm-adjusted over the pairs, per test."""
    out = []
    for i in range(len(systems)):
        for j in range(i + 1, len(systems)):
            a, b = systems[i], systems[j]
            boot = {m: paired_bootstrap(a, b, m, level=level,
                                        distributions=(distributions[i], distributions[j]))
                    for m in metrics}
            out.append(Comparison(a.system, b.system, a.n_items, boot, mcnemar(a, b), {}))
    tests = [*metrics, "mcnemar"]
    for test in tests:
        raw = [c.mcnemar.p_value if test == "mcnemar" else c.bootstrap[test].p_value
               for c in out]
        for c, adj in zip(out, holm(raw)):
            c.holm[test] = adj
    return out


def reliability_bins(probs: np.ndarray, gold: np.ndarray, bins: int = 10
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Confidence (top probability) against accuracy of the top label, in equal-width bins.

    ``probs`` is (..., 8) and ``gold`` broadcasts to its leading shape (runs are pooled).
    Returns per-bin mean confidence and accuracy (NaN for empty bins), counts, and the
    expected calibration error (count-weighted mean |accuracy - confidence|).
    """
    probs = np.asarray(probs, dtype=float)
    gold = np.broadcast_to(np.asarray(gold), probs.shape[:-1]).reshape(-1)
    probs = probs.reshape(-1, NUM_LABELS)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == gold
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, confidence, bins) / counts
        accuracy = np.bincount(which, correct.astype(float), bins) / counts
    ece = float(np.nansum(counts * np.abs(accuracy - mean_conf)) / max(counts.sum(), 1))
    return mean_conf, accuracy, counts, ece
