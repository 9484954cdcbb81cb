"""The classifier interface can abstain: NaN rows become invalid records, never labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mhsafety.classifiers.base import NO_ANSWER, Classifier, Predictions, check_probabilities
from mhsafety.data import Example

ITEMS = [Example("[seeker]hi", f"[supporter]{word}", label, str(i))
         for i, (word, label) in enumerate([("ok", 7), ("ABSTAIN", 2), ("bad", 4)])]


class Scripted(Classifier):
    """Answers Safe, Toxic, or abstains on responses containing ABSTAIN."""

    kind = "scripted"

    def fit(self, train, dev=None):
        return self

    def predict_proba(self, examples):
        rows = []
        for ex in examples:
            row = np.full(8, 0.02)
            if "ABSTAIN" in ex.response:
                rows.append([np.nan] * 8)
                continue
            row[4 if "bad" in ex.response else 7] = 0.86
            rows.append(row)
        return np.array(rows)

    def save_state(self, directory: Path) -> None:
        pass

    @classmethod
    def load_state(cls, directory, manifest):
        return cls(**manifest["config"])


def test_nan_rows_are_abstentions_with_the_default_reason():
    preds = Scripted().predictions(ITEMS)
    assert isinstance(preds, Predictions) and len(preds) == 3
    assert preds.valid.tolist() == [True, False, True]
    assert preds.labels.tolist() == [7, -1, 4]
    assert preds.reasons == (None, NO_ANSWER, None)
    assert preds.p_safe[0] == pytest.approx(0.86) and np.isnan(preds.p_safe[1])


def test_predict_gives_minus_one_and_records_give_null_with_the_reason():
    clf = Scripted()
    assert clf.predict(ITEMS).tolist() == [7, -1, 4]
    records = clf.predict_records(ITEMS, "S", "0")
    assert [r.pred for r in records] == [7, None, 4]
    assert records[1].error == NO_ANSWER and records[1].probs is None
    assert records[0].error is None and len(records[0].probs) == 8
    assert records[1].to_dict()["pred"] is None  # written as null in the JSONL


def test_a_classifier_that_knows_why_gives_its_own_reason():
    class Timeouts(Scripted):
        def predictions(self, examples):
            probs = self.predict_proba(examples)
            return Predictions.from_probs(probs, ["timeout" if "ABSTAIN" in ex.response
                                                  else None for ex in examples])

    records = Timeouts().predict_records(ITEMS, "S")
    assert records[1].pred is None and records[1].error == "timeout"


def test_check_probabilities_accepts_all_nan_rows_only():
    good = np.vstack([np.full(8, 1 / 8), np.full(8, np.nan)])
    assert check_probabilities(good, 2).shape == (2, 8)
    half = np.full((1, 8), 1 / 8)
    half[0, 3] = np.nan
    with pytest.raises(ValueError, match="every column"):
        check_probabilities(half, 1)
    with pytest.raises(ValueError, match="sum to 1"):
        check_probabilities(np.full((1, 8), 0.5), 1)
    with pytest.raises(ValueError, match="shape"):
        check_probabilities(np.full((2, 8), 1 / 8), 3)


def test_predictions_checks_reasons_length():
    with pytest.raises(ValueError):
        Predictions(np.full((2, 8), 1 / 8), (None,))
