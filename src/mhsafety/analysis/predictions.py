"""Prediction records as arrays: one system = gold labels (n,) and predictions (runs, n).

Every analysis works on these arrays. Items are joined across runs and systems by their id;
an invalid prediction (``pred`` null) is stored as -1 and counts as wrong everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from ..records import Run, merge_notes
from ..taxonomy import NUM_LABELS

INVALID = -1


@dataclass
class SystemPredictions:
    """All runs of one system over the same items, as aligned arrays."""

    system: str
    runs: list[str]
    ids: list[str]
    gold: np.ndarray  # (n,) int
    pred: np.ndarray  # (runs, n) int, -1 = invalid
    probs: np.ndarray | None = None  # (runs, n, 8) when every record carries probabilities
    notes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @property
    def n_items(self) -> int:
        return int(self.gold.shape[0])

    @property
    def n_runs(self) -> int:
        return int(self.pred.shape[0])

    @property
    def correct(self) -> np.ndarray:
        """(runs, n) booleans: which run got which item right."""
        return self.pred == self.gold[None, :]

    def subset(self, ids: Sequence[str]) -> SystemPredictions:
        """The same system restricted to ``ids`` (in that order)."""
        position = {item: i for i, item in enumerate(self.ids)}
        index = np.array([position[item] for item in ids], dtype=int)
        return SystemPredictions(
            self.system, list(self.runs), list(ids), self.gold[index], self.pred[:, index],
            None if self.probs is None else self.probs[:, index], list(self.notes),
            list(self.sources),
        )


def system_predictions(system: str, runs: Sequence[Run]) -> SystemPredictions:
    """Arrays of one system's runs; items ordered as in its first run."""
    if not runs:
        raise DataError(f"system {system!r} has no runs")
    ids = [r.id for r in runs[0].records]
    position = {item: i for i, item in enumerate(ids)}
    gold = np.array([r.gold for r in runs[0].records], dtype=int)
    pred = np.full((len(runs), len(ids)), INVALID, dtype=int)
    with_probs = all(rec.probs is not None for run in runs for rec in run.records)
    probs = np.zeros((len(runs), len(ids), NUM_LABELS)) if with_probs else None
    for r, run in enumerate(runs):
        for rec in run.records:
            i = position.get(rec.id)
            if i is None or len(run.records) != len(ids):
                raise DataError(f"{run.source}: system {system!r} run {run.run!r} covers "
                                "different items than its other runs")
            if rec.gold != gold[i]:
                raise DataError(f"{run.source}: item {rec.id!r} has gold label {rec.gold} in "
                                f"run {run.run!r} but {gold[i]} in run {runs[0].run!r} of "
                                f"system {system!r}")
            pred[r, i] = INVALID if rec.pred is None else rec.pred
            if probs is not None:
                probs[r, i] = rec.probs  # type: ignore[assignment]
    notes = merge_notes(*(run.notes for run in runs))
    sources = sorted({run.source for run in runs if run.source})
    return SystemPredictions(system, [run.run for run in runs], ids, gold, pred, probs, notes,
                             sources)


def from_runs(systems: Mapping[str, Sequence[Run]]) -> list[SystemPredictions]:
    """Arrays of every system that :func:`mhsafety.records.load_runs` returned."""
    return [system_predictions(name, runs) for name, runs in systems.items()]


@dataclass
class Alignment:
    """Systems restricted to the items they all cover, for cross-system comparisons."""

    ids: list[str]
    systems: list[SystemPredictions]
    # items each system has that some other system lacks (left out of comparisons)
    left_out: dict[str, int]


def align(systems: Sequence[SystemPredictions]) -> Alignment:
    """Join systems on item id; gold labels of a shared item must agree.

    Items not covered by every system are left out of the joint view, and how many per
    system is reported in ``left_out`` so that nothing disappears silently.
    """
    if not systems:
        raise DataError("no systems to compare")
    common = set(systems[0].ids)
    for s in systems[1:]:
        common &= set(s.ids)
    if not common:
        raise DataError("the systems share no item ids, so they cannot be compared; "
                        "were they run on different datasets?")
    ids = [item for item in systems[0].ids if item in common]
    aligned = [s.subset(ids) for s in systems]
    for s in aligned[1:]:
        diff = np.nonzero(s.gold != aligned[0].gold)[0]
        if diff.size:
            item = ids[int(diff[0])]
            raise DataError(f"item {item!r} has gold label {int(aligned[0].gold[diff[0]])} for "
                            f"system {aligned[0].system!r} but {int(s.gold[diff[0]])} for system "
                            f"{s.system!r}; are these runs on the same dataset?")
    left_out = {s.system: s.n_items - len(ids) for s in systems}
    return Alignment(ids, aligned, left_out)
