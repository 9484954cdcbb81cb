"""Choosing the guard's threshold (and a cascade's band) on labelled data, honestly.

:func:`calibrate` picks the threshold that reaches a target recall of unsafe replies, and
reports what that promise is worth on items the choice did not see: the threshold is
cross-fitted (chosen on k-1 folds, applied to the k-th; folds keep items that share a context
together), and the pooled out-of-fold unsafe recall and false-alarm rate come with Wilson 95 %
intervals. The in-sample figures of the final threshold are reported beside them, labelled.

A calibration file that shares items with the checkpoint's training data is refused (the
figures would be those of memorised items), unless ``allow_overlap`` is given.

:func:`calibrate_cascade` reports, for a grid of bands, what a cascade would do on a labelled
file: unsafe recall, false-alarm rate, share escalated and mean latency per reply.

The guard's decision rule is followed exactly: rule hits are flagged whatever the threshold,
and items the model could not judge are never passed (they count as flagged: a caught unsafe
reply, or a false alarm on a safe one).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..classifiers.base import read_manifest
from ..data import DEFAULT_FOLDS, Example, context_groups, load_examples
from ..errors import DataError, UsageError
from ..taxonomy import SAFE_LABEL
from .core import Guard
from .results import THRESHOLD_KEY, validate_band, validate_threshold
from .tiers import ModelTier

DEFAULT_TARGET_RECALL = 0.9
# Interval level of every reported rate.
CONFIDENCE = 0.95
# The default grid of bands for calibrate_cascade: every (low, high) with low < high.
DEFAULT_BAND_LOWS = (0.1, 0.2, 0.3, 0.4)
DEFAULT_BAND_HIGHS = (0.5, 0.6, 0.7, 0.8, 0.9)
# Single-item calls timed per tier to estimate latency (the rest is scored in one batch).
LATENCY_SAMPLE = 30


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE
                    ) -> tuple[float, float]:
    """The Wilson score interval of a proportion (statsmodels' ``proportion_confint``)."""
    if n == 0:
        return (float("nan"), float("nan"))
    try:
        from statsmodels.stats.proportion import proportion_confint
    except ModuleNotFoundError as exc:
        from ..errors import missing_extra

        raise missing_extra(exc.name or "statsmodels", "analysis") from None

    low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    return float(low), float(high)


@dataclass(frozen=True)
class Rate:
    """A proportion with its count, denominator and interval."""

    value: float
    count: int
    n: int
    low: float
    high: float

    @classmethod
    def of(cls, count: int, n: int) -> Rate:
        low, high = wilson_interval(count, n)
        return cls(count / n if n else float("nan"), count, n, low, high)

    def text(self) -> str:
        return (f"{100 * self.value:.1f} % [{100 * self.low:.1f}, {100 * self.high:.1f}] "
                f"({self.count}/{self.n})")


@dataclass(frozen=True)
class Calibration:
    """A threshold chosen for a target recall of unsafe replies on a labelled file.

    ``oos_*`` are the out-of-sample estimates (cross-fitted over ``folds`` folds, pooled);
    ``in_sample_*`` are the final threshold's figures on the very items it was chosen on
    (optimistic by construction; shown for comparison only).
    """

    threshold: float
    target_recall: float
    oos_unsafe_recall: Rate
    oos_false_alarm_rate: Rate
    in_sample_unsafe_recall: float
    in_sample_false_alarm_rate: float
    unsafe_precision: float
    n_items: int
    n_unsafe: int
    n_safe: int
    flagged: int
    rule_hits: int
    unverified: int
    folds: int
    fold_thresholds: list[float]
    protocol: str
    data: str | None = None
    overlap_allowed: int = 0
    curve: list[dict[str, float]] = field(default_factory=list, repr=False)

    # Names kept from before the out-of-sample estimates: these are the honest figures.
    @property
    def unsafe_recall(self) -> float:
        return self.oos_unsafe_recall.value

    @property
    def false_alarm_rate(self) -> float:
        return self.oos_false_alarm_rate.value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        overlap = (f"; {self.overlap_allowed} items shared with the training data "
                   "(--allow-overlap): the estimates are optimistic") \
            if self.overlap_allowed else ""
        return (f"threshold {self.threshold:.4f} (flag unsafe when P(safe) < it), chosen for "
                f"unsafe recall {100 * self.target_recall:.1f} % on {self.n_items} items "
                f"({self.n_unsafe} unsafe, {self.n_safe} safe). Out of sample ({self.protocol}): "
                f"unsafe recall {self.oos_unsafe_recall.text()}, false-alarm rate "
                f"{self.oos_false_alarm_rate.text()}, {100 * CONFIDENCE:.0f} % Wilson "
                f"intervals. In sample (optimistic): recall "
                f"{100 * self.in_sample_unsafe_recall:.1f} %, false alarms "
                f"{100 * self.in_sample_false_alarm_rate:.1f} %{overlap}")


def _rates(p_safe: np.ndarray, forced: np.ndarray, unsafe: np.ndarray, threshold: float
           ) -> tuple[float, float, float, int]:
    flagged = forced | (p_safe < threshold)
    n_unsafe, n_safe = int(unsafe.sum()), int((~unsafe).sum())
    tp = int((flagged & unsafe).sum())
    fp = int((flagged & ~unsafe).sum())
    recall = tp / n_unsafe if n_unsafe else 0.0
    far = fp / n_safe if n_safe else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    return recall, far, precision, int(flagged.sum())


def pick_threshold(p_safe: Sequence[float], unsafe: Sequence[bool], target_recall: float,
                   forced: Sequence[bool] | None = None) -> float:
    """The smallest-false-alarm threshold whose unsafe recall (P(safe) < t) reaches the target.

    ``forced`` marks items flagged whatever the threshold (rule hits, unverified items): they
    count towards the recall. The threshold sits halfway between the P(safe) of the last
    unsafe item that must be caught and the next higher score, so small score jitter does not
    flip that item.
    """
    if not 0.0 < target_recall <= 1.0:
        raise UsageError(f"target recall must be in (0, 1], got {target_recall}")
    scores = np.asarray(p_safe, dtype=float)
    is_unsafe = np.asarray(unsafe, dtype=bool)
    always = np.zeros_like(is_unsafe) if forced is None else np.asarray(forced, dtype=bool)
    n_unsafe = int(is_unsafe.sum())
    if n_unsafe == 0:
        raise DataError("the calibration data has no unsafe items (labels 0..6)")
    needed = math.ceil(target_recall * n_unsafe - 1e-9) - int((is_unsafe & always).sum())
    candidates = np.sort(scores[is_unsafe & ~always])
    if needed <= 0 or candidates.size == 0:
        return 0.0
    kth = candidates[min(needed, candidates.size) - 1]
    higher = scores[~always & (scores > kth)]
    if higher.size:
        return float((kth + higher.min()) / 2.0)
    return float(min(1.0, np.nextafter(kth, np.inf)))


def cross_fitted_flags(p_safe: np.ndarray, forced: np.ndarray, unsafe: np.ndarray,
                       groups: np.ndarray, target_recall: float, folds: int, seed: int = 0
                       ) -> tuple[np.ndarray, list[float]]:
    """Out-of-fold flags: each fold's items judged under a threshold chosen on the others."""
    from sklearn.model_selection import StratifiedGroupKFold

    if folds < 2:
        raise UsageError(f"cross-fitting needs at least 2 folds, got {folds}")
    n_unsafe, n_safe = int(unsafe.sum()), int((~unsafe).sum())
    if min(n_unsafe, n_safe) < folds:
        raise DataError(f"cross-fitting over {folds} folds needs at least {folds} unsafe and "
                        f"{folds} safe items; the file has {n_unsafe} unsafe, {n_safe} safe")
    if len(set(groups.tolist())) < folds:
        raise DataError(f"cross-fitting over {folds} folds needs at least {folds} distinct "
                        f"contexts; the file has {len(set(groups.tolist()))}")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    flags = np.zeros(len(p_safe), dtype=bool)
    thresholds = []
    for train_idx, test_idx in splitter.split(p_safe, unsafe, groups):
        t = pick_threshold(p_safe[train_idx], unsafe[train_idx], target_recall,
                           forced[train_idx])
        thresholds.append(t)
        flags[test_idx] = forced[test_idx] | (p_safe[test_idx] < t)
    return flags, thresholds


# ---------------------------------------------------------------------- overlap

def training_overlap(manifest: Mapping[str, Any], examples: Sequence[Example]) -> list[str]:
    """Ids of ``examples`` that are in the checkpoint's training data (as far as the
    manifest tells: see :func:`mhsafety.data.checkpoint_overlap`)."""
    from ..data import checkpoint_overlap

    return checkpoint_overlap(manifest, examples).shared


def refuse_overlap(manifest: Mapping[str, Any], examples: Sequence[Example], source: str,
                   allow: bool) -> int:
    """Refuse (the data module's one sentence) a calibration file that shares items with the
    checkpoint's training data, unless ``allow``; the count of shared items."""
    from ..data import OverlapError, overlap_message

    shared = training_overlap(manifest, examples)
    if shared and not allow:
        raise OverlapError(overlap_message(shared, len(examples),
                                           "the checkpoint's training data", source))
    return len(shared)


# ---------------------------------------------------------------------- calibration

def _labelled(data: str | os.PathLike[str] | Sequence[Example]
              ) -> tuple[list[Example], str | None]:
    if isinstance(data, (str, os.PathLike)):
        return load_examples(data), str(data)
    examples = list(data)
    if any(ex.label is None for ex in examples):
        raise DataError("calibration needs a label on every item")
    return examples, None


def _first_tier_scores(guard: Guard, examples: Sequence[Example]
                       ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """P(safe) per item (NaN where not scored), items flagged whatever the threshold, and
    the counts of rule hits and unverified items."""
    screening = guard.before_model(examples)
    to_model, _ = screening.waiting()
    p_safe = np.full(len(examples), np.nan)
    forced = np.array([r is not None for r in screening.results], dtype=bool)
    rule_hits = sum(r is not None and r.tier == "rules" for r in screening.results)
    preds = guard.model.safe_predictions([examples[i] for i in to_model])
    probs = np.asarray(preds.probs, dtype=float)
    unverified = 0
    for j, i in enumerate(to_model):
        row = probs[j]
        if np.all(np.isfinite(row)):
            p_safe[i] = row[SAFE_LABEL]
        else:
            forced[i] = True
            unverified += 1
    return np.nan_to_num(p_safe, nan=0.0), forced, rule_hits, unverified


def calibrate(guard: Guard, data: str | os.PathLike[str] | Sequence[Example],
              target_recall: float = DEFAULT_TARGET_RECALL, *, folds: int = DEFAULT_FOLDS,
              allow_overlap: bool = False, seed: int = 0) -> Calibration:
    """Pick the threshold for ``target_recall`` of unsafe replies on a labelled dataset, with
    cross-fitted out-of-sample estimates of the recall and false-alarm rate it gives."""
    examples, source = _labelled(data)
    overlap = refuse_overlap(guard.manifest, examples, source or "the calibration data",
                             allow_overlap)
    p_safe, forced, rule_hits, unverified = _first_tier_scores(guard, examples)
    unsafe = np.array([ex.label != SAFE_LABEL for ex in examples])
    if unsafe.all():
        raise DataError("the calibration data has no safe items (label 7); the false-alarm "
                        "rate cannot be measured")
    threshold = pick_threshold(p_safe, unsafe, target_recall, forced)
    recall, far, precision, flagged = _rates(p_safe, forced, unsafe, threshold)
    oos, fold_thresholds = cross_fitted_flags(p_safe, forced, unsafe, context_groups(examples),
                                              target_recall, folds, seed)
    curve = []
    for t in np.linspace(0.05, 0.95, 19):
        r, f, p, _ = _rates(p_safe, forced, unsafe, float(t))
        curve.append({"threshold": round(float(t), 2), "unsafe_recall": r,
                      "false_alarm_rate": f, "unsafe_precision": p})
    n_unsafe, n_safe = int(unsafe.sum()), int((~unsafe).sum())
    return Calibration(
        threshold=threshold, target_recall=target_recall,
        oos_unsafe_recall=Rate.of(int((oos & unsafe).sum()), n_unsafe),
        oos_false_alarm_rate=Rate.of(int((oos & ~unsafe).sum()), n_safe),
        in_sample_unsafe_recall=recall, in_sample_false_alarm_rate=far,
        unsafe_precision=precision, n_items=len(examples), n_unsafe=n_unsafe, n_safe=n_safe,
        flagged=flagged, rule_hits=rule_hits, unverified=unverified, folds=folds,
        fold_thresholds=fold_thresholds,
        protocol=f"threshold cross-fitted over {folds} context-grouped stratified folds, "
                 f"seed {seed}; pooled out-of-fold decisions",
        data=source, overlap_allowed=overlap, curve=curve)


def save_threshold(checkpoint_dir: str | os.PathLike[str], threshold: float,
                   calibration: Calibration | None = None) -> Path:
    """Store ``threshold`` as the checkpoint's default (manifest extra), atomically."""
    from ..io import write_json

    manifest = read_manifest(checkpoint_dir)
    extra = dict(manifest.get("extra") or {})
    extra[THRESHOLD_KEY] = validate_threshold(threshold)
    if calibration is not None:
        extra["guard_calibration"] = {k: v for k, v in calibration.to_dict().items()
                                      if k != "curve"}
    manifest["extra"] = extra
    path = Path(checkpoint_dir) / "manifest.json"
    write_json(path, manifest)
    return path


# ---------------------------------------------------------------------- cascades

@dataclass(frozen=True)
class BandRow:
    low: float
    high: float
    unsafe_recall: Rate
    false_alarm_rate: Rate
    escalated: Rate
    mean_latency_ms: float
    unverified: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CascadeReport:
    rows: list[BandRow]
    n_items: int
    n_unsafe: int
    n_safe: int
    rule_hits: int
    first_latency_ms: float
    second_latency_ms: float
    first_threshold: float
    second_threshold: float
    protocol: str
    data: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        lines = ["| band | unsafe recall | false-alarm rate | escalated | mean latency |",
                 "|---|---|---|---|---|"]
        for row in self.rows:
            lines.append(f"| {row.low:g},{row.high:g} | {row.unsafe_recall.text()} | "
                         f"{row.false_alarm_rate.text()} | {row.escalated.text()} | "
                         f"{row.mean_latency_ms:.1f} ms |")
        return "\n".join(lines)


def default_bands() -> list[tuple[float, float]]:
    return [(low, high) for low in DEFAULT_BAND_LOWS for high in DEFAULT_BAND_HIGHS
            if low < high]


def _single_item_ms(tier: ModelTier, examples: Sequence[Example]) -> float:
    sample = list(examples[:LATENCY_SAMPLE])
    if not sample:
        return 0.0
    started = time.perf_counter()
    for ex in sample:
        tier.safe_predictions([ex])
    return 1000 * (time.perf_counter() - started) / len(sample)


def _verdicts(tier: ModelTier, examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
    """(P(safe), flagged-at-the-tier's-threshold) per item; unverified items are flagged."""
    probs = np.asarray(tier.safe_predictions(examples).probs, dtype=float)
    p_safe = probs[:, SAFE_LABEL] if len(examples) else np.zeros(0)
    valid = np.all(np.isfinite(probs), axis=1) if len(examples) else np.zeros(0, bool)
    flagged = ~valid | (np.nan_to_num(p_safe, nan=0.0) < tier.threshold)
    return np.where(valid, p_safe, np.nan), flagged


def calibrate_cascade(guard: Guard, second: ModelTier,
                      data: str | os.PathLike[str] | Sequence[Example],
                      bands: Sequence[Sequence[float] | str] | None = None,
                      *, allow_overlap: bool = False) -> CascadeReport:
    """What a cascade of ``guard``'s first tier and ``second`` does for each band.

    Both tiers score every item once (in one batch each); each band's figures follow from
    those scores. Mean latency per reply = the first tier's single-item latency + the share
    escalated x the second tier's single-item latency (each timed on up to
    ``LATENCY_SAMPLE`` single-item calls).
    """
    examples, source = _labelled(data)
    refuse_overlap(guard.manifest, examples, source or "the calibration data", allow_overlap)
    refuse_overlap(second.manifest, examples, source or "the calibration data", allow_overlap)
    chosen = [validate_band(b) for b in (bands or default_bands())]
    screening = guard.before_model(examples)
    to_model, _ = screening.waiting()
    ruled = np.array([r is not None for r in screening.results], dtype=bool)
    modelled = [examples[i] for i in to_model]
    idx = np.array(to_model, dtype=int)
    p1, f1 = _verdicts(guard.model, modelled)
    _, f2 = _verdicts(second, modelled)
    first_ms = _single_item_ms(guard.model, modelled)
    second_ms = _single_item_ms(second, modelled)
    unsafe = np.array([ex.label != SAFE_LABEL for ex in examples])
    n_unsafe, n_safe = int(unsafe.sum()), int((~unsafe).sum())
    rows = []
    for low, high in chosen:
        up = np.isnan(p1) | ((p1 >= low) & (p1 <= high))
        flagged = ruled.copy()
        flagged[idx] = np.where(up, f2, f1)
        rows.append(BandRow(
            low, high, Rate.of(int((flagged & unsafe).sum()), n_unsafe),
            Rate.of(int((flagged & ~unsafe).sum()), n_safe),
            Rate.of(int(up.sum()), len(examples)),
            first_ms * len(modelled) / max(len(examples), 1)
            + second_ms * float(up.sum()) / max(len(examples), 1),
            int(np.isnan(p1).sum())))
    rule_hits = sum(r is not None and r.tier == "rules" for r in screening.results)
    return CascadeReport(rows, len(examples), n_unsafe, n_safe, rule_hits, first_ms,
                         second_ms, guard.model.threshold, second.threshold,
                         "every tier at its own threshold; bands applied to the first tier's "
                         "P(safe); figures on the given file (not cross-fitted: nothing is "
                         "tuned, each band is a row to choose from)", source)
