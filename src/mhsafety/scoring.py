"""The one path from prediction records to scores and table rows.

``evaluate``, ``benchmark``, ``reproduce`` and ``report`` all call :func:`score_runs` (or
:func:`score_paths`), so a table row means the same wherever it is printed: the same
treatment of invalid answers (:mod:`mhsafety.metrics`), the same notes (the texts of
:mod:`mhsafety.records`), the same rounding (:func:`mhsafety.tables.percent`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .metrics import SystemMetrics, aggregate_runs, compute_metrics
from .records import PredictionRecord, Run, load_runs, merge_notes
from .tables import TableRow, rows_from_systems


@dataclass
class Scores:
    """Scores per system and the table rows that show them (same order)."""

    systems: list[SystemMetrics]
    rows: list[TableRow] = field(default_factory=list)

    def system(self, name: str) -> SystemMetrics:
        for s in self.systems:
            if s.system == name:
                return s
        raise KeyError(name)


def runs_of(system: str, runs: Mapping[str, Sequence[PredictionRecord]],
            source: str = "") -> list[Run]:
    """Records held in memory (run name -> records) as :class:`Run` objects."""
    return [Run(system, run, list(records), source) for run, records in runs.items()]


def score_system(name: str, runs: Sequence[Run], notes: Sequence[str] = ()) -> SystemMetrics:
    """One system: every run scored, then mean and sample std over runs. The row's notes are
    ``notes`` followed by every note any of its records carries."""
    # A run whose records carry their own binary answers (guard models) is scored on that
    # view from them; a binary-only one leaves the label-view scores undefined.
    metrics = {run.run: compute_metrics(
        run.gold, run.pred,  # type: ignore[arg-type]
        unsafe=run.unsafe if any(r.unsafe is not None for r in run.records) else None,
        labels=not run.binary_only) for run in runs}
    return aggregate_runs(name, metrics, merge_notes(notes, *(run.notes for run in runs)))


def score_runs(systems: Mapping[str, Sequence[Run]],
               protocol: str | Mapping[str, str] = "",
               notes: Mapping[str, Sequence[str]] | None = None) -> Scores:
    """Score every system and build its table row.

    ``protocol`` is the protocol text of every row, or one per system name; ``notes`` adds
    notes per system name in front of the ones the records carry.
    """
    out = Scores([])
    for name, runs in systems.items():
        metrics = score_system(name, runs, (notes or {}).get(name, ()))
        text = protocol if isinstance(protocol, str) else protocol.get(name, "")
        out.systems.append(metrics)
        out.rows += rows_from_systems([metrics], text)
    return out


def score_paths(paths: Sequence[str | os.PathLike[str]],
                protocol: str | Mapping[str, str] = "",
                allow_different_items: bool = False) -> Scores:
    """Score prediction files or folders of ``*.preds.jsonl``; one system (a name plus a
    :func:`~mhsafety.records.setup_key`) per row."""
    return score_runs(load_runs(paths, allow_different_items), protocol)
