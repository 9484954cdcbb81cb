"""Prediction records for the analysis tests: synthetic systems and two upstream systems."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mhsafety.records import write_records
from tests.helpers.analysis import make_records, noisy_preds


@pytest.fixture
def gold() -> np.ndarray:
    rng = np.random.default_rng(7)
    # skewed like the test set: two big classes, small others
    return rng.choice(8, size=300, p=[.07, .02, .42, .02, .01, .02, .01, .43])


@pytest.fixture
def runs_dir(tmp_path, gold) -> Path:
    """Two synthetic systems, 3 runs each: 'good' (~80 % right) and 'weak' (~45 %)."""
    folder = tmp_path / "runs"
    write_records(folder / "good" / "all.preds.jsonl",
                  make_records("good", gold, noisy_preds(gold, 0.8, 3, 1, invalid=0.01)))
    write_records(folder / "weak" / "all.preds.jsonl",
                  make_records("weak", gold, noisy_preds(gold, 0.45, 3, 2)))
    return folder


@pytest.fixture(scope="session")
def upstream_runs(upstream_pair_runs) -> Path:
    """BERT-base and ChatGPT-0613 zero-shot records of the upstream release (shared fixture)."""
    return upstream_pair_runs
