"""Bootstrap confidence intervals and paired significance tests, aware of runs.

All scores are computed from confusion matrices, so that thousands of bootstrap resamples
cost one matrix product: a resample is a count vector over items (how often each item was
drawn), and its confusion matrix is that vector times the one-hot (gold, pred) codes of the
items. Scores are :func:`mhsafety.metrics.scores_from_confusion` (the same treatment of
invalid answers as every table) plus the per-node scores of :mod:`.nodes`, so they match
:func:`mhsafety.metrics.compute_metrics` exactly on the original items.

A system with several runs is scored as the mean over its runs, as Table 2 does. Its
bootstrap has two levels: each resample draws the items (the same items for every system,
which pairs the comparisons) and then, independently per system, draws its runs with
replacement; the resample's score is the mean over the drawn runs on the drawn items. So
the interval widens with run-to-run variance (a seed that collapsed) and not only with the
size of the test set. A system with one run is resampled over items only.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..metrics import UNSAFE_LABELS, binary_counts, class_counts
from ..metrics import scores_from_confusion as _table_scores
from ..settings import DEFAULT_SEED
from ..taxonomy import LABEL_NAMES, NUM_LABELS
from .nodes import DECISIONS, node_scores
from .predictions import INVALID, SystemPredictions

DEFAULT_RESAMPLES = 10_000
DEFAULT_LEVEL = 0.95
_COLS = NUM_LABELS + 1  # predicted labels plus the 'invalid' column
_CHUNK = 2_000  # resamples per matrix product, bounds memory at ~25 MB
ITEMS_ONLY = "items"
RUNS_AND_ITEMS = "runs and items"
# A class or node with fewer items than this gets exact (Clopper–Pearson) intervals for its
# precision and recall: a bootstrap of a handful of items gives degenerate ones ([0, 0]).
EXACT_BELOW = 20
EXACT = "exact (Clopper–Pearson)"
TOO_FEW = "none: too few items"


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
    """Every score of every confusion matrix in ``conf`` (shape (..., 8, 9)): the table's
    scores, per-class precision/recall/F1 (NaN for a class with no gold item) and the
    per-node scores (``node1:f1``, ...)."""
    return {**_table_scores(conf), **node_scores(conf)}


def resample_scores(conf: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`scores_from_confusion` for bootstrap resamples: a precision whose resample has
    no prediction of the class (or no "yes" at a node) is undefined (NaN, the interval skips
    that resample), not 0 as scikit-learn's zero_division=0 makes it for a table cell."""
    out = scores_from_confusion(conf)
    for name, (_, trials) in rate_counts(conf).items():
        if name in out and _is_precision(name):
            out[name] = np.where(trials > 0, out[name], np.nan)
    return out


def _is_precision(name: str) -> bool:
    return name.startswith("precision:") or name.endswith(":precision") or \
        name == "unsafe_precision"


def rate_counts(conf: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(successes, trials) behind each score that is one proportion: per-class precision and
    recall, each yes/no node's and the unsafe side's precision and recall, and the recall of
    "which unsafe kind" (its items labelled right). Trials of a precision are the predictions
    of "yes" (an invalid answer counting as in the tables), of a recall the gold "yes" items."""
    conf = np.asarray(conf, dtype=float)
    tp, predicted, support = class_counts(conf)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for c, name in enumerate(LABEL_NAMES):
        out[f"precision:{name}"] = (tp[..., c], predicted[..., c])
        out[f"recall:{name}"] = (tp[..., c], support[..., c])
    for key, positive, rows in [("unsafe", UNSAFE_LABELS, None),
                                *((d.key, d.positive, d.rows) for d in DECISIONS
                                  if not d.kinds)]:
        t, fp, fn, _ = binary_counts(conf, positive, rows)
        sep = "_" if key == "unsafe" else ":"
        out[f"{key}{sep}precision"] = (t, t + fp)
        out[f"{key}{sep}recall"] = (t, t + fn)
    for d in DECISIONS:
        if d.kinds:
            kinds = list(d.kinds)
            out[f"{d.key}:recall"] = (tp[..., kinds].sum(axis=-1),
                                      support[..., kinds].sum(axis=-1))
    return out


def group_sizes(gold: np.ndarray) -> dict[str, int]:
    """Items each per-class and per-node score is about, for :data:`EXACT_BELOW`: a class's
    items; a yes/no node's "yes" items (node 2: the Mimicry items, however many items reach
    it); the items of "which unsafe kind"."""
    counts = np.bincount(np.asarray(gold), minlength=NUM_LABELS)
    out = {}
    for c, name in enumerate(LABEL_NAMES):
        for kind in ("precision", "recall", "f1"):
            out[f"{kind}:{name}"] = int(counts[c])
    for d in DECISIONS:
        labels = d.kinds or [r for r in d.rows if r in d.positive]
        for kind in ("precision", "recall", "f1"):
            out[f"{d.key}:{kind}"] = int(counts[list(labels)].sum())
    return out


def exact_interval(successes: float, trials: float, level: float = DEFAULT_LEVEL
                   ) -> tuple[float, float]:
    """Clopper–Pearson interval of a proportion (NaN, NaN with no trials). With several runs
    the counts are the mean over runs, so the interval is that of one run's worth of items."""
    from scipy.stats import beta

    if trials <= 0:
        return math.nan, math.nan
    alpha = 1 - level
    low = 0.0 if successes <= 0 else float(beta.ppf(alpha / 2, successes,
                                                    trials - successes + 1))
    high = 1.0 if successes >= trials else float(beta.ppf(1 - alpha / 2, successes + 1,
                                                          trials - successes))
    return low, high


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


def run_counts(system: str, runs: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, runs) how often each run is drawn in each resample (with replacement).

    Seeded by ``seed`` and the system's name: reproducible, and independent between
    systems (runs of different systems are not paired, the items are).
    """
    rng = np.random.default_rng([seed, zlib.crc32(system.encode("utf-8")), 1])
    drawn = rng.integers(0, runs, size=(resamples, runs))
    flat = (drawn + (np.arange(resamples) * runs)[:, None]).ravel()
    return np.bincount(flat, minlength=resamples * runs).reshape(resamples, runs)


def bootstrap_method(system: SystemPredictions, resample_runs: bool = True) -> str:
    """What the bootstrap of ``system`` resamples: runs and items, or items alone."""
    return RUNS_AND_ITEMS if resample_runs and system.n_runs > 1 else ITEMS_ONLY


def bootstrap_distribution(system: SystemPredictions, resamples: int = DEFAULT_RESAMPLES,
                           seed: int = DEFAULT_SEED,
                           weights: Sequence[np.ndarray] | None = None,
                           resample_runs: bool = True) -> dict[str, np.ndarray]:
    """Every score on each of ``resamples`` resamples: arrays (B,).

    Items are drawn from ``weights`` (or from ``seed``): two systems over the same items get
    the same item draws, which is what the paired bootstrap needs. With several runs and
    ``resample_runs``, each resample also draws the runs (see :func:`run_counts`) and
    averages the drawn ones; otherwise it averages all runs.
    """
    n, runs = system.n_items, system.n_runs
    if weights is None:
        weights = bootstrap_weights(n, resamples, seed)
    total = sum(chunk.shape[0] for chunk in weights)
    drawn = (run_counts(system.system, runs, total, seed) / runs
             if bootstrap_method(system, resample_runs) == RUNS_AND_ITEMS
             else np.full((total, runs), 1 / runs))
    codes = _codes(system.gold, system.pred)  # (runs, n)
    cells = NUM_LABELS * _COLS
    # One-hot of each item's cell in each run: (n, runs * 72); float32 is exact for counts.
    onehot = np.zeros((n, runs * cells), dtype=np.float32)
    onehot[np.arange(n)[None, :], codes + (np.arange(runs) * cells)[:, None]] = 1.0
    parts: dict[str, list[np.ndarray]] = {}
    done = 0
    for chunk in weights:
        if chunk.shape[1] != n:
            raise ValueError(f"weights cover {chunk.shape[1]} items, the system {n}")
        b = chunk.shape[0]
        conf = (chunk @ onehot).reshape(b, runs, NUM_LABELS, _COLS)
        share = drawn[done:done + b]
        done += b
        for name, values in resample_scores(conf).items():
            # Runs share the gold labels, so a class absent from a resample is NaN in every
            # run alike; the weighted mean keeps it NaN and the interval skips that resample.
            parts.setdefault(name, []).append((values * share).sum(axis=1))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


@dataclass
class Interval:
    """A score with its percentile bootstrap interval (fractions, not percent)."""

    estimate: float
    low: float
    high: float
    level: float = DEFAULT_LEVEL
    resamples: int = DEFAULT_RESAMPLES
    # What was resampled ("items", "runs and items"); or EXACT, a Clopper–Pearson interval
    # (a proportion over fewer than EXACT_BELOW items or trials); or TOO_FEW, no interval (an
    # F1 of a class or node with fewer than EXACT_BELOW items). Resamples is 0 for both.
    method: str = ITEMS_ONLY

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
                         seed: int = DEFAULT_SEED, level: float = DEFAULT_LEVEL,
                         distribution: dict[str, np.ndarray] | None = None,
                         resample_runs: bool = True) -> dict[str, Interval]:
    """Percentile bootstrap interval of every score (overall, binary, per class, per node).

    ``distribution`` must come from :func:`bootstrap_distribution` with the same
    ``resample_runs``.
    """
    if distribution is None:
        distribution = bootstrap_distribution(system, resamples, seed,
                                              resample_runs=resample_runs)
    method = bootstrap_method(system, resample_runs)
    point = point_scores(system)
    sizes = group_sizes(system.gold)
    counts = {name: (float(np.mean(k)), float(np.mean(n))) for name, (k, n)
              in rate_counts(confusions(system.gold, system.pred)).items()}
    out = {}
    for name, estimate in point.items():
        small = sizes.get(name, EXACT_BELOW) < EXACT_BELOW
        if name in counts and (small or counts[name][1] < EXACT_BELOW):
            low, high = exact_interval(*counts[name], level)
            out[name] = Interval(estimate, low, high, level, 0, EXACT)
            continue
        if small:  # an F1 (or a weighted mean) of a handful of items: no honest interval
            out[name] = Interval(estimate, math.nan, math.nan, level, 0, TOO_FEW)
            continue
        low, high = _percentiles(distribution[name], level)
        out[name] = Interval(estimate, low, high, level, len(distribution[name]), method)
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
    # True when no resample fell on the far side of zero: the p-value is then only an upper
    # bound (the resampling floor 2 / (B + 1)) and is printed as "< floor".
    at_floor: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def p_floor(resamples: int) -> float:
    """The smallest two-sided bootstrap p-value ``resamples`` resamples can give."""
    return min(1.0, 2 / (resamples + 1))


def paired_bootstrap(a: SystemPredictions, b: SystemPredictions, metric: str = "accuracy",
                     resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                     level: float = DEFAULT_LEVEL,
                     distributions: tuple[dict[str, np.ndarray], dict[str, np.ndarray]]
                     | None = None) -> PairedBootstrap:
    """Paired bootstrap over items shared by ``a`` and ``b`` (aligned, same order).

    The p-value is twice the share of resamples on the far side of zero (plus one, so it
    is never exactly 0): the smallest two-sided level at which the interval of the
    difference excludes zero. When no resample is on the far side it is the floor
    :func:`p_floor` and ``at_floor`` is set.
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
    return PairedBootstrap(metric, a.system, b.system, observed, low, high, p, count,
                           min(below, above) == 0 and p < 1.0)


MAJORITY_VOTE = "majority vote over runs"


@dataclass
class McNemar:
    """McNemar's test on per-item correctness of systems A and B, an item counting as right
    for a system when the **majority of its runs** get it right (``basis``): a test of the
    majority votes, not of the run-averaged scores the tables show (the paired bootstrap
    tests those).

    ``a_only``: items A gets right and B wrong; ``b_only`` the reverse. The p-value is the
    exact two-sided binomial test on the discordant items (statsmodels); ``chi2`` is the
    continuity-corrected statistic for reference. Effect sizes: ``odds_ratio`` = a_only /
    b_only and ``accuracy_difference`` = (a_only - b_only) / n.
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
    basis: str = MAJORITY_VOTE

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if math.isinf(self.odds_ratio):
            out["odds_ratio"] = None  # JSON has no infinity
        return out


def majority_correct(system: SystemPredictions) -> np.ndarray:
    """(n,) booleans: right in more than half of the runs (one run: right in it)."""
    return system.correct.mean(axis=0) > 0.5


def mcnemar(a: SystemPredictions, b: SystemPredictions) -> McNemar:
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    if a.ids != b.ids:
        raise ValueError("paired tests need both systems aligned on the same items "
                         "(use mhsafety.analysis.align)")
    ca, cb = majority_correct(a), majority_correct(b)
    a_only = int(np.sum(ca & ~cb))
    b_only = int(np.sum(~ca & cb))
    table = [[int(np.sum(ca & cb)), a_only], [b_only, int(np.sum(~ca & ~cb))]]
    if a_only + b_only:
        p = float(sm_mcnemar(table, exact=True).pvalue)
        chi2 = float(sm_mcnemar(table, exact=False, correction=True).statistic)
    else:
        p, chi2 = 1.0, 0.0
    odds = a_only / b_only if b_only else (math.inf if a_only else 1.0)
    return McNemar(a.system, b.system, a.n_items, a_only, b_only, chi2, min(1.0, p),
                   float(odds), (a_only - b_only) / a.n_items)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given), from statsmodels."""
    if not len(p_values):
        return []
    from statsmodels.stats.multitest import multipletests

    return [float(p) for p in multipletests(list(p_values), method="holm")[1]]


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
    # tests whose Holm-adjusted p-value is an upper bound (its bootstrap p was at the floor)
    bounded: set[str] = field(default_factory=set)

    def significant(self, metric: str = "accuracy", alpha: float = 0.05) -> bool:
        return self.holm.get(metric, 1.0) < alpha

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "n": self.n,
                "bootstrap": {k: v.to_dict() for k, v in self.bootstrap.items()},
                "mcnemar": self.mcnemar.to_dict(), "holm": self.holm,
                "holm_is_upper_bound": sorted(self.bounded)}


def compare_all(systems: Sequence[SystemPredictions],
                distributions: Sequence[dict[str, np.ndarray]],
                metrics: Sequence[str] = ("accuracy", "f1", "macro_f1", "unsafe_recall"),
                level: float = DEFAULT_LEVEL) -> list[Comparison]:
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
            if test != "mcnemar" and c.bootstrap[test].at_floor and adj < 1.0:
                c.bounded.add(test)
    return out


def format_p(p: float, bound: bool = False) -> str:
    """A p-value as every table prints it; a bound (at the resampling floor) as "< x"."""
    if bound:
        return f"< {p:.2g}"
    if p < 1e-4:
        return f"{p:.1e}"
    return f"{p:.4f}"


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
