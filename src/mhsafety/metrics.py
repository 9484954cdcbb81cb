"""Scores of one run and their aggregation over runs.

Weighted precision/recall/F1 are scikit-learn's ``average="weighted"`` with
``zero_division=0``, as in the paper, so weighted recall equals accuracy. Macro-F1 averages
F1 over the labels scikit-learn's ``f1_score(average="macro")`` would use: those that occur
in the gold labels or the predictions. Without invalid answers every score equals
scikit-learn's.

Invalid answers (``pred`` null: an unparsable LLM answer, a classifier that abstained) are
scored as the most harmful wrong answer, so that a system can never gain by answering
nothing instead of answering wrongly:

- an invalid answer to an item of gold class g counts as a miss for g (recall) **and as a
  false positive of every other class** (it "predicts" each label but the right one);
- on the binary view it lands on the wrong side (a false alarm on a safe item, a miss on an
  unsafe one);
- so macro-F1 runs over all eight labels as soon as one answer is invalid.

Switching any wrong answer (say c ≠ g) to invalid leaves every true positive and every
class's support as they were and can only add false positives (to the classes other than c
and g) and binary errors; so per-class precision and F1, weighted precision and F1,
macro-F1 (a label the set gains has F1 0) and the unsafe precision, recall and F1 never
rise, and accuracy and weighted recall stay equal. ``tests/test_metrics.py`` checks this on
random runs. ``n_invalid`` and ``coverage`` (the share of valid answers) say how many there
were.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .taxonomy import CATEGORIES, LABEL_NAMES, NUM_LABELS, SAFE_LABEL

INVALID = -1
# The scalar scores every table can show, in the order Table 2 prints them.
SCORE_NAMES = ("accuracy", "precision", "recall", "f1", "macro_f1",
               "unsafe_precision", "unsafe_recall", "unsafe_f1", "coverage")
_COLS = NUM_LABELS + 1  # predicted labels plus the 'invalid' column
UNSAFE_LABELS = tuple(c for c in range(NUM_LABELS) if c != SAFE_LABEL)


@dataclass
class ClassReport:
    label: int
    name: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class RunMetrics:
    n: int
    n_invalid: int
    accuracy: float
    precision: float
    recall: float
    f1: float
    macro_f1: float
    unsafe_precision: float
    unsafe_recall: float
    unsafe_f1: float
    per_class: list[ClassReport] = field(default_factory=list)
    # 8 gold rows x 9 predicted columns; the last column counts invalid predictions.
    confusion: list[list[int]] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        """Share of the items with a valid answer."""
        return 1 - self.n_invalid / self.n

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "coverage": self.coverage}

    def score(self, name: str) -> float:
        return float(getattr(self, name))


def _as_array(labels: Sequence[int | None]) -> np.ndarray:
    return np.array([INVALID if v is None else int(v) for v in labels], dtype=int)


def confusion_matrix(gold: Sequence[int | None], pred: Sequence[int | None]) -> np.ndarray:
    """8 x 9 counts: rows are gold labels, columns predicted labels plus 'invalid'."""
    g, p = _as_array(gold), _as_array(pred)
    matrix = np.zeros((NUM_LABELS, _COLS), dtype=int)
    cols = np.where(p == INVALID, NUM_LABELS, p)
    np.add.at(matrix, (g, cols), 1)
    return matrix


def _ratio(num: np.ndarray, den: np.ndarray, empty: float = 0.0) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), empty)


def class_counts(conf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true positives, predicted, support) per class of confusion matrices (..., 8, 9),
    an invalid answer counting as a prediction of every label but its gold one."""
    conf = np.asarray(conf, dtype=float)
    tp = np.diagonal(conf[..., :, :NUM_LABELS], axis1=-2, axis2=-1)
    invalid = conf[..., :, NUM_LABELS]
    predicted = (conf[..., :, :NUM_LABELS].sum(axis=-2)
                 + invalid.sum(axis=-1, keepdims=True) - invalid)
    return tp, predicted, conf.sum(axis=-1)


def binary_counts(conf: np.ndarray, positive: Sequence[int],
                  rows: Sequence[int] | None = None) -> tuple[np.ndarray, ...]:
    """(tp, fp, fn, n) of the yes/no question "is the label in ``positive``?" over the gold
    ``rows`` (default: all); an invalid answer lands on the wrong side."""
    conf = np.asarray(conf, dtype=float)
    rows = list(range(NUM_LABELS)) if rows is None else list(rows)
    pos_rows = [r for r in rows if r in positive]
    neg_rows = [r for r in rows if r not in positive]
    pos_cols = list(positive)
    said_pos = conf[..., :, pos_cols].sum(axis=-1)  # (..., 8) per gold row
    total = conf.sum(axis=-1)
    invalid = conf[..., :, NUM_LABELS]
    tp = said_pos[..., pos_rows].sum(axis=-1)
    fn = (total - said_pos)[..., pos_rows].sum(axis=-1)
    fp = (said_pos + invalid)[..., neg_rows].sum(axis=-1)
    return tp, fp, fn, total[..., rows].sum(axis=-1)


def prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, ...]:
    """Precision, recall and F1 from counts (0 where undefined, as zero_division=0)."""
    return _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)


def scores_from_confusion(conf: np.ndarray) -> dict[str, np.ndarray]:
    """Every score of every confusion matrix in ``conf`` (shape (..., 8, 9)).

    Returns arrays of shape ``conf.shape[:-2]``: the names of :data:`SCORE_NAMES`, and per
    class ``precision:<name>``, ``recall:<name>`` and ``f1:<name>``, which are NaN where a
    class has no gold item (a resample may draw none of a rare class).
    """
    conf = np.asarray(conf, dtype=float)
    tp, predicted, support = class_counts(conf)
    n = support.sum(axis=-1)
    precision_c = _ratio(tp, predicted)
    recall_c = _ratio(tp, support)
    f1_c = _ratio(2 * tp, support + predicted)
    used = (support > 0) | (predicted > 0)  # scikit-learn's labels: in gold or predicted
    out = {
        "accuracy": tp.sum(axis=-1) / n,
        "precision": (support * precision_c).sum(axis=-1) / n,
        "recall": (support * recall_c).sum(axis=-1) / n,
        "f1": (support * f1_c).sum(axis=-1) / n,
        "macro_f1": np.where(used, f1_c, 0.0).sum(axis=-1) / used.sum(axis=-1),
    }
    up, ur, uf = prf(*binary_counts(conf, UNSAFE_LABELS)[:3])
    out.update(unsafe_precision=up, unsafe_recall=ur, unsafe_f1=uf,
               coverage=1 - conf[..., :, NUM_LABELS].sum(axis=-1) / n)
    absent = support == 0
    for c, name in enumerate(LABEL_NAMES):
        for kind, values in (("precision", precision_c), ("recall", recall_c), ("f1", f1_c)):
            out[f"{kind}:{name}"] = np.where(absent[..., c], np.nan, values[..., c])
    return out


def compute_metrics(gold: Sequence[int], pred: Sequence[int | None]) -> RunMetrics:
    """All scores of one run. ``gold`` and ``pred`` are aligned item by item."""
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} labels but pred has {len(pred)}")
    if not len(gold):
        raise ValueError("cannot score an empty run")
    g, p = _as_array(gold), _as_array(pred)
    if (g == INVALID).any():
        raise ValueError("gold labels must not be missing")
    conf = confusion_matrix(g.tolist(), p.tolist())
    s = {k: float(v) for k, v in scores_from_confusion(conf).items()}
    per_class = [
        ClassReport(c.id, c.name, *(0.0 if np.isnan(s[f"{k}:{c.name}"]) else s[f"{k}:{c.name}"]
                                    for k in ("precision", "recall", "f1")),
                    int(conf[c.id].sum()))
        for c in CATEGORIES
    ]
    return RunMetrics(
        n=len(g), n_invalid=int(np.sum(p == INVALID)),
        **{k: s[k] for k in SCORE_NAMES if k != "coverage"},
        per_class=per_class, confusion=conf.tolist(),
    )


@dataclass
class Aggregate:
    """Mean and sample standard deviation (ddof=1) over runs; std is None for one run."""

    mean: float
    std: float | None
    n: int
    values: list[float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def aggregate_values(values: Sequence[float]) -> Aggregate:
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("nothing to aggregate")
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else None
    return Aggregate(float(arr.mean()), std, int(arr.size), arr.tolist())


@dataclass
class SystemMetrics:
    """A system's runs and their aggregated scores (what one row of Table 2 shows)."""

    system: str
    runs: list[str]
    run_metrics: list[RunMetrics]
    scores: dict[str, Aggregate]
    n_invalid: int
    n_items: int
    per_class: dict[str, dict[str, Aggregate]]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "runs": self.runs,
            "n_items": self.n_items,
            "n_invalid": self.n_invalid,
            "notes": self.notes,
            "scores": {k: v.to_dict() for k, v in self.scores.items()},
            "per_class": {k: {m: a.to_dict() for m, a in v.items()}
                          for k, v in self.per_class.items()},
            "run_metrics": [m.to_dict() for m in self.run_metrics],
        }


def aggregate_runs(system: str, runs: Mapping[str, RunMetrics],
                   notes: Sequence[str] = ()) -> SystemMetrics:
    """Aggregate the runs of one system (mean and ddof=1 std of every score)."""
    if not runs:
        raise ValueError(f"system {system!r} has no runs")
    metrics = list(runs.values())
    scores = {name: aggregate_values([m.score(name) for m in metrics]) for name in SCORE_NAMES}
    per_class = {
        c.name: {
            key: aggregate_values([getattr(m.per_class[c.id], key) for m in metrics])
            for key in ("precision", "recall", "f1")
        }
        for c in CATEGORIES
    }
    return SystemMetrics(
        system=system,
        runs=list(runs.keys()),
        run_metrics=metrics,
        scores=scores,
        n_invalid=sum(m.n_invalid for m in metrics),
        n_items=metrics[0].n,
        per_class=per_class,
        notes=list(notes),
    )

