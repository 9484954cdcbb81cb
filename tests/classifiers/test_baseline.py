"""The offline baseline through the one classifier interface."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mhsafety.classifiers.base import check_probabilities
from mhsafety.classifiers.baseline import DENSE_FEATURES, BaselineClassifier, dense_features
from mhsafety.data import Example, examples_hash
from mhsafety.errors import DataError, UsageError
from mhsafety.registry import create_classifier, load_classifier

# Small and quick: one C, two inner folds (the defaults search a grid on three folds).
FAST = {"c_grid": [1.0], "inner_folds": 2}


@pytest.fixture(scope="module")
def small(test_examples):
    # Every 4th item keeps all frequent labels; items 0..199 of the rest are the held-out part.
    train = test_examples[::4]
    held_out = [ex for i, ex in enumerate(test_examples) if i % 4][:200]
    return train, held_out


@pytest.fixture(scope="module")
def fitted(small):
    return create_classifier("baseline", seed=7, **FAST).fit(small[0])


def test_probabilities_are_valid_and_argmax_is_predict(fitted, small):
    probs = fitted.predict_proba(small[1])
    check_probabilities(probs, len(small[1]))
    assert np.array_equal(fitted.predict(small[1]), probs.argmax(axis=1))
    # It learns something: better than always answering the majority label of its training set.
    gold = np.array([ex.label for ex in small[1]])
    majority = np.bincount([ex.label for ex in small[0]]).argmax()
    assert np.mean(fitted.predict(small[1]) == gold) > np.mean(gold == majority)


def test_save_load_round_trip_gives_identical_probabilities(fitted, small, tmp_path):
    fitted.save(tmp_path / "ckpt")
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["arrays.npz", "manifest.json", "vocab.json"]  # no pickles
    manifest = json.loads((tmp_path / "ckpt" / "manifest.json").read_text())
    assert manifest["kind"] == "baseline"
    assert manifest["train_data_sha256"] == examples_hash(small[0])
    assert manifest["config"]["seed"] == 7 and manifest["config"]["c_grid"] == [1.0]
    assert manifest["labels"]["7"] == "Safe Response"
    assert "chosen_C" in manifest["extra"]
    loaded = load_classifier(tmp_path / "ckpt")
    assert isinstance(loaded, BaselineClassifier)
    assert np.array_equal(loaded.predict_proba(small[1]), fitted.predict_proba(small[1]))
    with np.load(tmp_path / "ckpt" / "arrays.npz", allow_pickle=False) as arrays:
        assert arrays["coef"].shape[0] == len(arrays["classes"])


def test_same_seed_same_model_and_records(small):
    a = create_classifier("baseline", seed=3, **FAST).fit(small[0])
    b = create_classifier("baseline", seed=3, **FAST).fit(small[0])
    assert np.array_equal(a.predict_proba(small[1]), b.predict_proba(small[1]))
    records = a.predict_records(small[1][:5], "base", "seed-3")
    assert [r.id for r in records] == [ex.id for ex in small[1][:5]]
    assert all(r.probs is not None and abs(sum(r.probs) - 1) < 1e-6 for r in records)


def test_labels_missing_from_training_get_probability_zero(small):
    train = [ex for ex in small[0] if ex.label in (0, 2, 7)]
    clf = BaselineClassifier(**FAST).fit(train)
    probs = clf.predict_proba(small[1][:20])
    check_probabilities(probs, 20)
    assert np.all(probs[:, [1, 3, 4, 5, 6]] == 0)


def test_dense_features_see_copying_and_pronoun_flip():
    context = "[supporter]你好。[seeker]我最近总是失眠，很焦虑。"
    parrot = dense_features(Example(context, "[supporter]我最近总是失眠，很焦虑。", 0))
    fresh = dense_features(Example(context, "[supporter]听起来你睡不好，这种情况多久了？", 7))
    assert len(parrot) == len(DENSE_FEATURES)
    col = DENSE_FEATURES.index
    assert parrot[col("longest_copy_last_seeker")] == 1.0
    assert fresh[col("longest_copy_last_seeker")] < 0.5
    assert parrot[col("pronoun_flip")] == 1.0 and fresh[col("pronoun_flip")] == 0.0
    assert fresh[col("ends_with_question")] == 1.0
    assert parrot[col("last_turn_is_supporter")] == 0.0


def test_unknown_setting_is_a_usage_error():
    with pytest.raises(UsageError, match="learning_rate") as info:
        create_classifier("baseline", seed=1, learning_rate=0.1)
    assert "c_grid" in str(info.value)  # the error lists the settings there are
    with pytest.raises(UsageError, match="takes no argument"):
        create_classifier("baseline:big")


@pytest.mark.parametrize("bad", [{"class_weight": "log"}, {"c_grid": []}, {"c_grid": [0, 1]},
                                 {"min_df": 0}, {"ngram_min": 3, "ngram_max": 2}])
def test_settings_are_checked_against_baseline_config(bad):
    with pytest.raises(UsageError, match=next(iter(bad)).split("_")[0]):
        create_classifier("baseline", **bad)


def test_settings_come_from_baseline_config_and_reach_the_manifest(tmp_path):
    from dataclasses import asdict

    from mhsafety.classifiers.baseline import BaselineConfig

    clf = create_classifier("baseline", seed=5, c_grid="[2, 8]", class_weight="none")
    assert clf.settings == BaselineConfig(seed=5, c_grid=[2, 8], class_weight="none")
    assert clf.manifest_config() == asdict(clf.settings)  # what the manifest keeps
    assert BaselineClassifier().settings == BaselineConfig()


def test_untrained_or_broken_checkpoints_are_data_errors(fitted, tmp_path):
    with pytest.raises(DataError, match="not trained"):
        BaselineClassifier().predict_proba([Example("[seeker]a", "[supporter]b")])
    with pytest.raises(DataError, match="untrained"):
        BaselineClassifier().save(tmp_path / "empty")
    fitted.save(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "arrays.npz").unlink()
    with pytest.raises(DataError, match="missing arrays.npz"):
        load_classifier(tmp_path / "ckpt")


def test_training_needs_labels_and_two_classes(small):
    with pytest.raises(DataError, match="two different labels"):
        BaselineClassifier(**FAST).fit([ex for ex in small[0] if ex.label == 7])
    with pytest.raises(DataError, match="needs a label"):
        BaselineClassifier(**FAST).fit([Example("[seeker]a", "[supporter]b")])


def test_fluency_model_scores_garbled_text_lower(test_examples):
    from mhsafety.classifiers.baseline import CharBigramLM

    lm = CharBigramLM().fit([ex.context for ex in test_examples[:400]])
    fluent = lm.features("听起来你最近压力很大，能具体说说吗")
    garbled = lm.features("吗说具能大很力压近最你来起听")  # the same characters, reversed
    assert fluent[0] > garbled[0]  # mean log-probability per character
    assert fluent[2] < garbled[2]  # share of bigrams never seen in the contexts


def test_the_settings_table_in_the_docs_is_baseline_config():
    from pathlib import Path

    from mhsafety.classifiers.baseline import BaselineConfig
    from mhsafety.settings import fields_doc

    docs = (Path(__file__).parents[2] / "docs" / "cli" / "baseline.md").read_text("utf-8")
    for name, default, doc in fields_doc(BaselineConfig):
        assert f"| `{name}` | `{json.dumps(default)}` | {doc} |" in docs, name
