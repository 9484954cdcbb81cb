"""How far to trust a grader: agreement with gold labels, with itself, with other graders; its
sensitivity and specificity; and a panel of graders voting.

Predictions are arrays over the same items, in one of three shapes, all read by
:func:`as_labels`: label ids 0..7 with ``None`` / ``-1`` / NaN for an abstention, or a
probability matrix (n, 8) whose NaN rows are abstentions (the classifier interface's shape).
The binary view (:func:`unsafe_view`) is 1 = unsafe, 0 = safe (only Safe Response), -1 =
abstained; a binary-only grader (a general guard model) gives that view directly.

An abstention never counts as safe and never scores better than a wrong answer: against gold
it is a category of its own that agrees with nothing (``abstain="category"``, the default),
or, where a statistic asks for it, the item is left out and counted (``abstain="drop"``).

Point statistics come from the maintained libraries — scikit-learn's ``cohen_kappa_score``,
statsmodels' Fleiss' kappa and Wilson interval, the ``krippendorff`` package (through
:mod:`mhsafety.annotate.agreement`, which arranges ratings for them); intervals are percentile
bootstraps over items drawn as :mod:`.stats` draws them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from ..annotate.agreement import cohen_pairs, fleiss, krippendorff_alpha, observed_agreement
from ..taxonomy import NUM_LABELS, SAFE_LABEL
from .stats import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    ITEMS_ONLY,
    Interval,
    _percentiles,
    bootstrap_weights,
)

ABSTAINED = -1
Abstain = Literal["category", "drop"]
PredictionsLike = Any  # Sequence[int | None] | np.ndarray (labels, or (n, 8) probabilities)


# --------------------------------------------------------------------------- reading predictions


def as_labels(pred: PredictionsLike) -> np.ndarray:
    """Label ids (int array), -1 where the grader abstained.

    Accepts labels (``None``, negative numbers and NaN are abstentions) or an (n, 8)
    probability matrix (argmax per row; a row with any NaN is an abstention).
    """
    if isinstance(pred, np.ndarray) and pred.ndim == 2:
        rows = np.asarray(pred, dtype=float)
        bad = ~np.isfinite(rows).all(axis=1)
        out = np.where(bad, ABSTAINED, np.argmax(np.nan_to_num(rows, nan=-1.0), axis=1))
        return out.astype(int)
    values = [ABSTAINED if v is None or (isinstance(v, float) and math.isnan(v)) or v < 0
              else int(v) for v in (pred.tolist() if isinstance(pred, np.ndarray) else pred)]
    out = np.asarray(values, dtype=int)
    if out.size and out.max() >= NUM_LABELS:
        raise ValueError(f"label ids must be 0..{NUM_LABELS - 1}, got {out.max()}")
    return out


def unsafe_view(pred: PredictionsLike) -> np.ndarray:
    """The binary view: 1 unsafe, 0 safe, -1 abstained."""
    labels = as_labels(pred)
    return np.where(labels < 0, ABSTAINED, (labels != SAFE_LABEL).astype(int))


def binary_verdicts(unsafe: Sequence[bool | None]) -> np.ndarray:
    """A binary-only grader's verdicts (True unsafe, False safe, None abstained) as the view."""
    return np.asarray([ABSTAINED if u is None else int(bool(u)) for u in unsafe], dtype=int)


# --------------------------------------------------------------------------- Cohen's kappa


def kappa_from_confusion(conf: np.ndarray) -> np.ndarray:
    """Cohen's kappa of confusion matrices (..., k, k): (p_o - p_e) / (1 - p_e); NaN where
    p_e is 1 (both raters used one and the same category)."""
    conf = np.asarray(conf, dtype=float)
    total = conf.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        p_o = np.trace(conf, axis1=-2, axis2=-1) / total
        p_e = (conf.sum(axis=-1) * conf.sum(axis=-2)).sum(axis=-1) / total ** 2
        return np.where(np.isclose(p_e, 1.0), np.nan, (p_o - p_e) / (1 - p_e))


def _codes(gold: np.ndarray, pred: np.ndarray, abstain: Abstain
           ) -> tuple[np.ndarray, int, np.ndarray]:
    """Cell codes gold * k + pred over the kept items, k categories (abstention: the last)."""
    keep = (gold >= 0) & ((pred >= 0) | (abstain == "category"))
    cats = int(max(gold.max(initial=0), pred.max(initial=0))) + 2  # room for 'abstained'
    g = gold[keep]
    p = np.where(pred[keep] < 0, cats - 1, pred[keep])
    return g * cats + p, cats, keep


@dataclass(frozen=True)
class Kappa:
    """Cohen's kappa with its bootstrap interval, over ``n`` items (``abstained`` of them the
    grader abstained on; left out when ``abstain`` is "drop")."""

    interval: Interval
    n: int
    abstained: int
    abstain: str

    @property
    def kappa(self) -> float:
        return self.interval.estimate

    def to_dict(self) -> dict[str, Any]:
        return {"kappa": self.interval.to_dict(), "n": self.n, "abstained": self.abstained,
                "abstain": self.abstain}


def cohen_kappa(gold: PredictionsLike, pred: PredictionsLike, *, binary: bool = False,
                abstain: Abstain = "category", resamples: int = DEFAULT_RESAMPLES,
                seed: int = DEFAULT_SEED, level: float = DEFAULT_LEVEL) -> Kappa:
    """Cohen's kappa of ``pred`` against ``gold`` (eight-way, or the binary view), with a
    percentile bootstrap interval over items.

    With ``abstain="category"`` an abstention is a category no gold label has: it always
    disagrees, and it adds no chance agreement. ``"drop"`` leaves those items out.
    """
    view = unsafe_view if binary else as_labels
    g, p = view(gold), view(pred)
    if g.shape != p.shape:
        raise ValueError(f"{g.size} gold labels for {p.size} predictions")
    codes, cats, _ = _codes(g, p, abstain)
    n = int(codes.size)
    abstained = int(((p < 0) & (g >= 0)).sum())
    if n == 0:
        nan = Interval(math.nan, math.nan, math.nan, level, 0, ITEMS_ONLY)
        return Kappa(nan, 0, abstained, abstain)
    conf = np.bincount(codes, minlength=cats * cats).reshape(cats, cats)
    estimate = float(kappa_from_confusion(conf))
    onehot = np.zeros((n, cats * cats), dtype=np.float32)
    onehot[np.arange(n), codes] = 1.0
    draws = [kappa_from_confusion((chunk @ onehot).reshape(-1, cats, cats))
             for chunk in bootstrap_weights(n, resamples, seed)]
    low, high = _percentiles(np.concatenate(draws), level)
    return Kappa(Interval(estimate, low, high, level, resamples, ITEMS_ONLY), n, abstained,
                 abstain)


# --------------------------------------------------------------------------- sensitivity, specificity


@dataclass(frozen=True)
class Proportion:
    """``count`` of ``n`` with its Wilson score interval (statsmodels)."""

    value: float
    count: int
    n: int
    low: float
    high: float
    level: float = DEFAULT_LEVEL

    @classmethod
    def of(cls, count: int, n: int, level: float = DEFAULT_LEVEL) -> Proportion:
        if n == 0:
            return cls(math.nan, 0, 0, math.nan, math.nan, level)
        from statsmodels.stats.proportion import proportion_confint

        low, high = proportion_confint(count, n, alpha=1 - level, method="wilson")
        return cls(count / n, int(count), int(n), float(low), float(high), level)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BinaryValidity:
    """Sensitivity (unsafe replies called unsafe) and specificity (safe replies called safe)
    on the binary view, with Wilson intervals; abstentions per gold class are counted and,
    with ``abstain="category"``, count as misses on both sides."""

    sensitivity: Proportion
    specificity: Proportion
    abstained_unsafe: int
    abstained_safe: int
    abstain: str

    @property
    def youden_j(self) -> float:
        return self.sensitivity.value + self.specificity.value - 1

    def to_dict(self) -> dict[str, Any]:
        return {"sensitivity": self.sensitivity.to_dict(),
                "specificity": self.specificity.to_dict(), "youden_j": self.youden_j,
                "abstained_unsafe": self.abstained_unsafe,
                "abstained_safe": self.abstained_safe, "abstain": self.abstain}


def binary_validity(gold: PredictionsLike, pred: PredictionsLike, *,
                    abstain: Abstain = "category", level: float = DEFAULT_LEVEL
                    ) -> BinaryValidity:
    """Sensitivity and specificity of ``pred`` (labels, probabilities or the binary view)
    against ``gold``; a gold label that is itself missing (-1) leaves its item out."""
    g = _binary(gold)
    p = _binary(pred)
    if g.shape != p.shape:
        raise ValueError(f"{g.size} gold labels for {p.size} predictions")
    unsafe, safe = g == 1, g == 0
    gave = p >= 0
    ab_u, ab_s = int((unsafe & ~gave).sum()), int((safe & ~gave).sum())
    n_u = int(unsafe.sum()) - (ab_u if abstain == "drop" else 0)
    n_s = int(safe.sum()) - (ab_s if abstain == "drop" else 0)
    se = Proportion.of(int((unsafe & (p == 1)).sum()), n_u, level)
    sp = Proportion.of(int((safe & (p == 0)).sum()), n_s, level)
    return BinaryValidity(se, sp, ab_u, ab_s, abstain)


def _binary(values: PredictionsLike) -> np.ndarray:
    """The binary view of labels or probabilities, or of binary verdicts given as
    True/False/None (a bool array included). 0/1 integers are read as labels, not verdicts."""
    if isinstance(values, np.ndarray) and values.ndim == 2:
        return unsafe_view(values)
    if isinstance(values, np.ndarray) and values.dtype == bool:
        return values.astype(int)
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if any(isinstance(v, bool) for v in items):
        return binary_verdicts(items)
    return unsafe_view(items)


# --------------------------------------------------------------------------- reliability


@dataclass(frozen=True)
class Reliability:
    """Agreement among several ratings of the same items (rounds or samples of one grader, or
    several graders): mean pairwise agreement, Fleiss' kappa (over the items every rater
    answered), Krippendorff's alpha (nominal; missing ratings allowed), the pairwise Cohen's
    kappas, and the share of ratings that were abstentions (left out as missing)."""

    raters: tuple[str, ...]
    items: int
    observed: float | None
    fleiss_kappa: float | None
    fleiss_items: int
    alpha: float | None
    alpha_items: int
    pairs: tuple[dict[str, Any], ...]
    abstained: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["raters"], out["pairs"] = list(self.raters), list(self.pairs)
        return out


def _ratings(columns: Mapping[str, np.ndarray]) -> dict[str, dict[str, int]]:
    n = len(next(iter(columns.values())))
    return {str(i): {name: int(col[i]) for name, col in columns.items() if col[i] >= 0}
            for i in range(n)}


def reliability(ratings: Mapping[str, PredictionsLike] | Sequence[PredictionsLike] | np.ndarray,
                *, binary: bool = False) -> Reliability:
    """Agreement among raters over the same items.

    ``ratings`` is a mapping rater -> predictions, a list of prediction arrays (raters named
    by position: rounds), or an (n_items, n_raters) label matrix. Abstentions are missing
    ratings; Fleiss' kappa needs every rater on an item, so it uses the items all answered.
    """
    if isinstance(ratings, np.ndarray) and ratings.ndim == 2:
        columns_in: Mapping[str, PredictionsLike] = {
            str(j): ratings[:, j] for j in range(ratings.shape[1])}
    elif isinstance(ratings, Mapping):
        columns_in = ratings
    else:
        columns_in = {str(j): r for j, r in enumerate(ratings)}
    view = _binary if binary else as_labels
    columns = {str(name): view(r) for name, r in columns_in.items()}
    if len(columns) < 2:
        raise ValueError("reliability needs at least two raters")
    sizes = {c.size for c in columns.values()}
    if len(sizes) != 1:
        raise ValueError(f"raters cover different numbers of items: {sorted(sizes)}")
    table = _ratings(columns)
    total = sum(c.size for c in columns.values())
    missing = sum(int((c < 0).sum()) for c in columns.values())
    complete = {i: r for i, r in table.items() if len(r) == len(columns)}
    fl = fleiss(complete) if complete else {"kappa": None, "items": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ka = krippendorff_alpha(table)
    return Reliability(tuple(columns), len(table), observed_agreement(table), fl["kappa"],
                       fl["items"], ka["alpha"], ka["items"], tuple(cohen_pairs(table)),
                       missing / total if total else math.nan)


# --------------------------------------------------------------------------- panel vote


def accuracy_weights(gold: PredictionsLike, graders: Sequence[PredictionsLike], *,
                     binary: bool = False, scheme: Literal["accuracy", "log_odds"] = "accuracy"
                     ) -> np.ndarray:
    """Each grader's weight from its measured accuracy on labelled items (an abstention counts
    as wrong). ``log_odds`` gives log(acc / (1 - acc)), the weight of independent voters;
    accuracy at or below chance then weighs 0, and 1.0 is capped to keep weights finite."""
    view = _binary if binary else as_labels
    g = view(gold)
    acc = np.array([float(np.mean(view(p)[g >= 0] == g[g >= 0])) if (g >= 0).any() else 0.0
                    for p in graders])
    if scheme == "accuracy":
        return acc
    chance = 0.5 if binary else 1.0 / NUM_LABELS
    acc = np.clip(acc, 1e-6, 1 - 1e-6)
    odds = np.log(acc / (1 - acc)) - math.log(chance / (1 - chance))
    return np.maximum(odds, 0.0)


def panel_vote(graders: Sequence[PredictionsLike], weights: Sequence[float] | None = None, *,
               binary: bool = False, min_votes: int = 1) -> np.ndarray:
    """The panel's answer per item: the category with the most (weighted) votes among the
    graders that answered; -1 (abstained) when fewer than ``min_votes`` answered or the top
    categories tie. An abstention is never a vote, least of all for "safe".

    ``binary`` votes on the binary view (what binary-only graders can join); otherwise on the
    eight labels (give only graders that name labels).
    """
    if not graders:
        raise ValueError("a panel needs at least one grader")
    view = _binary if binary else as_labels
    votes = np.stack([view(g) for g in graders])  # (graders, items)
    w = np.ones(len(graders)) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (len(graders),) or (w < 0).any():
        raise ValueError("weights must be one non-negative number per grader")
    cats = 2 if binary else NUM_LABELS
    tally = np.zeros((votes.shape[1], cats))
    for row, weight in zip(votes, w):
        answered = row >= 0
        np.add.at(tally, (np.nonzero(answered)[0], row[answered]), weight)
    answered_count = (votes >= 0).sum(axis=0)
    best = tally.max(axis=1)
    ties = (np.isclose(tally, best[:, None]) & (tally > 0)).sum(axis=1) > 1
    out = np.argmax(tally, axis=1)
    silent = (answered_count < max(min_votes, 1)) | (best <= 0) | ties
    return np.where(silent, ABSTAINED, out).astype(int)
