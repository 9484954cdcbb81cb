"""Prediction files in, scores per system out (what ``mhsafety evaluate`` prints)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from .metrics import SystemMetrics, aggregate_runs, compute_metrics
from .records import Run, load_runs


def score_systems(systems: Mapping[str, Sequence[Run]]) -> list[SystemMetrics]:
    out = []
    for name, runs in systems.items():
        metrics = {}
        for run in runs:
            metrics[run.run] = compute_metrics(run.gold, run.pred)  # type: ignore[arg-type]
        notes = sorted({note for run in runs for rec in run.records[:1]
                        for note in rec.meta.get("notes", [])})
        out.append(aggregate_runs(name, metrics, notes))
    return out


def evaluate_paths(paths: Sequence[str | os.PathLike[str]]) -> list[SystemMetrics]:
    """Score prediction files or folders of them; one entry per system, runs aggregated."""
    return score_systems(load_runs(paths))
