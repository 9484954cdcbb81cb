"""Prediction records for the report tests: two synthetic systems, one with probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mhsafety.io import mark_output_dir
from mhsafety.records import PredictionRecord, write_records


def _records(system: str, gold: np.ndarray, preds: np.ndarray, probs: np.ndarray | None,
             meta: dict) -> list[PredictionRecord]:
    return [PredictionRecord(id=str(i), gold=int(gold[i]),
                             pred=None if p < 0 else int(p), system=system, run=str(r),
                             probs=None if probs is None else probs[r, i].tolist(),
                             error="no label in the answer" if p < 0 else None, meta=meta)
            for r, run in enumerate(preds) for i, p in enumerate(run)]


@pytest.fixture
def report_runs(tmp_path) -> Path:
    """'baseline' (2 runs, with probabilities) and 'judge <b>&' (3 runs, some invalid)."""
    rng = np.random.default_rng(3)
    n = 160
    gold = rng.choice(8, size=n, p=[.08, .03, .4, .03, .02, .03, .01, .40])
    logits = rng.normal(size=(2, n, 8))
    logits[:, np.arange(n), gold] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    base_preds = probs.argmax(axis=2)
    judge_preds = np.where(rng.random((3, n)) < 0.5, gold, rng.integers(0, 8, (3, n)))
    judge_preds[rng.random((3, n)) < 0.03] = -1
    folder = tmp_path / "results"
    write_records(folder / "baseline.preds.jsonl",
                  _records("baseline", gold, base_preds, probs, {"notes": ["5-fold CV"],
                                                                 "model": "tfidf-lr"}))
    # a name with HTML characters must come out escaped
    write_records(folder / "judge" / "rounds.preds.jsonl",
                  _records("judge <b>&", gold, judge_preds, None, {"model": "fake-llm"}))
    # a manifest in a folder mhsafety wrote (as benchmark's are): the report shows it
    (folder / "manifest.json").write_text('{"protocol": "unit-test protocol", "seed": 42}')
    mark_output_dir(folder, "benchmark")
    return folder


@pytest.fixture(scope="session")
def upstream_pair(upstream_pair_runs) -> Path:
    """BERT-base and ChatGPT-0613 zero-shot records of the upstream release (shared fixture)."""
    return upstream_pair_runs
