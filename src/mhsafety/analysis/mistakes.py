"""Error analysis: which items and classes systems get right, across runs and systems.

These answer the questions the paper answered by hand: how many items of each class a system
finds at least once, every time, or never; which items no system finds; which confusions
make up most errors; how stable a system is from run to run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..taxonomy import LABEL_NAMES, NUM_LABELS
from .predictions import INVALID, SystemPredictions


@dataclass
class ClassCoverage:
    """For one class and one system: of its ``n_items`` gold items, how many are right in
    at least one run, in every run, in no run; and the mean recall over runs."""

    label: int
    name: str
    n_items: int
    right_any: int
    right_all: int
    right_none: int
    mean_recall: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def class_coverage(system: SystemPredictions) -> list[ClassCoverage]:
    correct = system.correct
    any_run, all_runs = correct.any(axis=0), correct.all(axis=0)
    out = []
    for label, name in enumerate(LABEL_NAMES):
        mask = system.gold == label
        n = int(mask.sum())
        out.append(ClassCoverage(
            label, name, n, int(any_run[mask].sum()), int(all_runs[mask].sum()),
            int((~any_run[mask]).sum()), float(correct[:, mask].mean()) if n else None))
    return out


@dataclass
class MissedItem:
    """An item no run of any system got right, with what each system said instead."""

    id: str
    gold: int
    gold_name: str
    predictions: dict[str, dict[str, int]]  # system -> {label name: runs}
    context: str | None = None
    response: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _label_text(label: int) -> str:
    return "(invalid)" if label == INVALID else LABEL_NAMES[label]


def missed_by_all(systems: Sequence[SystemPredictions]) -> list[MissedItem]:
    """Items every run of every system gets wrong. ``systems`` must be aligned."""
    if not systems:
        return []
    right = np.zeros(systems[0].n_items, dtype=bool)
    for s in systems:
        right |= s.correct.any(axis=0)
    out = []
    for i in np.nonzero(~right)[0]:
        preds = {s.system: dict(Counter(_label_text(int(p)) for p in s.pred[:, i]).most_common())
                 for s in systems}
        gold = int(systems[0].gold[i])
        out.append(MissedItem(systems[0].ids[i], gold, LABEL_NAMES[gold], preds))
    return out


def attach_text(items: Sequence[MissedItem], examples: Mapping[str, Any]) -> int:
    """Fill in context and response from ``examples`` (id -> Example); returns how many
    ids were found."""
    found = 0
    for item in items:
        example = examples.get(item.id)
        if example is not None:
            item.context, item.response = example.context, example.response
            found += 1
    return found


@dataclass
class ConfusionPair:
    gold: int
    pred: int  # -1 for invalid answers
    gold_name: str
    pred_name: str
    count: int  # summed over runs (and systems, for the pooled view)
    share_of_errors: float
    cumulative_share: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def top_confusions(systems: Sequence[SystemPredictions], k: int = 10) -> list[ConfusionPair]:
    """The (gold, predicted) pairs with the most errors, pooled over the given systems' runs.

    ``cumulative_share`` says how much of all errors the pairs up to this one account for.
    """
    counts: Counter[tuple[int, int]] = Counter()
    for s in systems:
        wrong = ~s.correct
        gold = np.broadcast_to(s.gold, s.pred.shape)[wrong]
        for g, p in zip(gold.tolist(), s.pred[wrong].tolist()):
            counts[(g, p)] += 1
    total = sum(counts.values())
    out, running = [], 0
    for (g, p), count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]:
        running += count
        out.append(ConfusionPair(g, p, LABEL_NAMES[g], _label_text(p), count, count / total,
                                 running / total))
    return out


@dataclass
class RunAgreement:
    """How much a system's runs agree item by item."""

    system: str
    n_runs: int
    n_items: int
    items_all_agree: int  # every run predicts the same label
    items_disagree: int
    share_disagree: float
    mean_pairwise_agreement: float | None  # None with one run
    fleiss_kappa: float | None  # runs as raters; None with one run or no variation
    items_flipping_correctness: int  # right in some runs, wrong in others

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_agreement(system: SystemPredictions) -> RunAgreement:
    pred = system.pred
    runs, n = pred.shape
    agree = (pred == pred[0]).all(axis=0)
    correct = system.correct
    flips = int((correct.any(axis=0) & ~correct.all(axis=0)).sum())
    pairwise = kappa = None
    if runs > 1:
        pairs = [(pred[i] == pred[j]).mean() for i in range(runs) for j in range(i + 1, runs)]
        pairwise = float(np.mean(pairs))
        # Fleiss' kappa with runs as raters and the 8 labels plus 'invalid' as categories.
        cols = np.where(pred == INVALID, NUM_LABELS, pred)
        table = np.zeros((n, NUM_LABELS + 1))
        np.add.at(table, (np.broadcast_to(np.arange(n), cols.shape), cols), 1)
        p_item = ((table ** 2).sum(axis=1) - runs) / (runs * (runs - 1))
        share = table.sum(axis=0) / (n * runs)
        expected = float((share ** 2).sum())
        if expected < 1:
            kappa = float((p_item.mean() - expected) / (1 - expected))
    disagree = int((~agree).sum())
    return RunAgreement(system.system, runs, n, int(agree.sum()), disagree, disagree / n,
                        pairwise, kappa, flips)


@dataclass
class ErrorAnalysis:
    coverage: dict[str, list[ClassCoverage]]
    missed_by_all: list[MissedItem]
    missed_by_class: dict[str, int]
    confusions: dict[str, list[ConfusionPair]]  # per system, plus "(all systems)"
    agreement: list[RunAgreement]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "coverage": {s: [c.to_dict() for c in cov] for s, cov in self.coverage.items()},
            "missed_by_all": [m.to_dict() for m in self.missed_by_all],
            "missed_by_class": self.missed_by_class,
            "confusions": {s: [c.to_dict() for c in pairs]
                           for s, pairs in self.confusions.items()},
            "agreement": [a.to_dict() for a in self.agreement],
            "notes": self.notes,
        }


POOLED = "(all systems)"


def error_analysis(systems: Sequence[SystemPredictions],
                   aligned: Sequence[SystemPredictions] | None = None,
                   k: int = 10) -> ErrorAnalysis:
    """Every error-analysis view. Per-system views use each system's own items; the
    cross-system ones (missed by all, pooled confusions) use ``aligned`` (default:
    ``systems``, which must then cover the same items in the same order)."""
    joint = list(aligned if aligned is not None else systems)
    missed = missed_by_all(joint)
    by_class = Counter(m.gold_name for m in missed)
    confusions = {s.system: top_confusions([s], k) for s in systems}
    if len(systems) > 1:
        confusions[POOLED] = top_confusions(joint, k)
    return ErrorAnalysis(
        coverage={s.system: class_coverage(s) for s in systems},
        missed_by_all=missed,
        missed_by_class={name: by_class.get(name, 0) for name in LABEL_NAMES},
        confusions=confusions,
        agreement=[run_agreement(s) for s in systems],
    )
