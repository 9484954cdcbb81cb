"""The classifier interface can abstain: NaN rows become invalid records, never labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mhsafety.classifiers.base import NO_ANSWER, Classifier, Predictions, check_probabilities
from mhsafety.data import Example
from mhsafety.errors import UsageError
from mhsafety.settings import Settings, at_least, setting

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


# ---------------------------------------------------------------- settings (contract 2)


@dataclass(frozen=True)
class ToySettings(Settings):
    batch_size: int = setting(4, "Items per call.", check=at_least(1))
    device: str = setting("cpu", "Where to run.", choices=("cpu", "cuda"))


class Toy(Scripted):
    kind = "toy"
    config_class = ToySettings
    extra_config = frozenset({"work_dir"})

    @classmethod
    def load_state(cls, directory, manifest):
        return cls(cls.settings_from_manifest(manifest))


def test_a_classifier_holds_frozen_typed_settings_built_from_config():
    clf = Toy(batch_size="8", work_dir="/w")
    assert clf.settings == ToySettings(batch_size=8)
    assert clf.extras == {"work_dir": "/w"}
    with pytest.raises(AttributeError):
        clf.settings.batch_size = 2  # type: ignore[misc]
    with pytest.raises(UsageError, match="toy settings: batch_size must be at least 1"):
        Toy(batch_size=0)
    with pytest.raises(UsageError, match="unknown setting 'lr'"):
        Toy(lr=1)
    assert Toy(ToySettings(device="cuda")).settings.device == "cuda"


def test_with_settings_returns_a_changed_copy_and_leaves_the_original():
    clf = Toy()
    clf.notes = ["n"]
    other = clf.with_settings(batch_size=16, work_dir="/x")
    assert type(other) is Toy and other is not clf
    assert (clf.settings.batch_size, other.settings.batch_size) == (4, 16)
    assert clf.extras == {} and other.extras == {"work_dir": "/x"}
    assert other.notes == ["n"]  # what was fitted or loaded is shared, not refitted
    with pytest.raises(UsageError, match="toy settings: device must be one of cpu, cuda"):
        clf.with_settings(device="tpu")
    assert clf.settings.device == "cpu"


def test_manifest_stores_every_setting_and_old_manifests_still_load(tmp_path):
    clf = Toy(batch_size=2)
    assert clf.manifest()["config"] == {"batch_size": 2, "device": "cpu"}
    saved = clf.save(tmp_path / "ck")
    assert Toy.load(saved).settings == clf.settings
    # A manifest written by another version: unknown keys left out, missing ones default.
    old = {"config": {"batch_size": 3, "retired_setting": True}}
    assert Toy.settings_from_manifest(old) == ToySettings(batch_size=3)


def test_predictions_binary_view_reads_labels_or_its_own_answers():
    import numpy as np

    from mhsafety.classifiers.base import BINARY_ONLY, Predictions
    from mhsafety.data import Example

    eye = np.eye(8)
    plain = Predictions.from_probs(np.stack([eye[7], eye[3], np.full(8, np.nan)]))
    assert plain.binary.tolist() == [0, 1, -1]
    assert plain.unsafe_probability[:2].tolist() == [0.0, 1.0]
    nan = np.full(8, np.nan)
    guard = Predictions(np.stack([nan, eye[2], nan]), (BINARY_ONLY, None, "empty answer"),
                        np.array([1.0, 1.0, np.nan]), np.array([0.9, np.nan, np.nan]),
                        ({"refusal": True}, {}, {}))
    assert guard.labels.tolist() == [-1, 2, -1] and guard.binary.tolist() == [1, 1, -1]
    assert guard.binary_reasons == (None, None, "empty answer")
    items = [Example("[seeker]a", "[supporter]b", label=7, id=str(i)) for i in range(3)]
    first, second, third = guard.records(items, "s")
    assert (first.pred, first.unsafe, first.p_unsafe, first.error) == (None, True, 0.9, None)
    assert first.meta == {"refusal": True}
    assert (second.pred, second.unsafe) == (2, True)
    assert (third.pred, third.unsafe, third.error) == (None, None, "empty answer")
