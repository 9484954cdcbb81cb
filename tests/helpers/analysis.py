"""Builders of synthetic prediction records for the analysis tests."""

from __future__ import annotations

import numpy as np

from mhsafety.records import PredictionRecord


def make_records(system: str, gold: np.ndarray, preds: np.ndarray,
                 probs: np.ndarray | None = None, ids: list[str] | None = None,
                 meta: dict | None = None) -> list[PredictionRecord]:
    """Records of every run in ``preds`` (runs, n); -1 means an invalid answer."""
    ids = ids or [str(i) for i in range(len(gold))]
    out = []
    for r, run in enumerate(preds):
        for i, p in enumerate(run):
            out.append(PredictionRecord(
                id=ids[i], gold=int(gold[i]), pred=None if p < 0 else int(p), system=system,
                run=str(r), probs=None if probs is None else probs[r, i].tolist(),
                error="unparsable" if p < 0 else None, meta=dict(meta or {})))
    return out


def noisy_preds(gold: np.ndarray, accuracy: float, runs: int, seed: int,
                invalid: float = 0.0) -> np.ndarray:
    """Runs that keep the gold label with probability ``accuracy``, else a random label."""
    rng = np.random.default_rng(seed)
    keep = rng.random((runs, gold.size)) < accuracy
    preds = np.where(keep, gold[None, :], rng.integers(0, 8, (runs, gold.size)))
    preds[rng.random((runs, gold.size)) < invalid] = -1
    return preds
