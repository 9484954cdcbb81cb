"""Benchmark protocols and the results folder, with quick fake classifiers plus one real run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from mhsafety import benchmark, registry
from mhsafety.classifiers.base import Classifier
from mhsafety.data import Example, write_examples
from mhsafety.errors import UsageError
from mhsafety.records import read_records
from mhsafety.registry import KINDS

FITS: list[tuple[int, set[str]]] = []  # (seed, ids trained on) of every fit
PREDICTED: list[set[str]] = []


class RecordingClassifier(Classifier):
    """Remembers what it was trained on; predicts the majority label of its training data."""

    kind = "fake"

    def fit(self, train: Sequence[Example], dev=None) -> RecordingClassifier:
        FITS.append((self.config["seed"], {ex.id for ex in train}))
        self.label = int(np.bincount([ex.label for ex in train]).argmax())
        return self

    def predict_proba(self, examples: Sequence[Example]) -> np.ndarray:
        PREDICTED.append({ex.id for ex in examples})
        probs = np.full((len(examples), 8), 0.02)
        probs[:, self.label] = 0.86
        return probs

    def save_state(self, directory: Path) -> None:  # pragma: no cover - not used here
        raise NotImplementedError

    @classmethod
    def load_state(cls, directory, manifest):  # pragma: no cover - not used here
        raise NotImplementedError


class NoTrainingClassifier(RecordingClassifier):
    """Like a judge: never fits, answers 'Safe Response' with a seed-dependent twist."""

    kind = "fakejudge"
    needs_training = False

    def fit(self, train, dev=None):  # pragma: no cover - must never be called
        raise AssertionError("a system that needs no training was fitted")

    def predict_proba(self, examples):
        self.label = 7
        return super().predict_proba(examples)


@pytest.fixture(autouse=True)
def fakes(monkeypatch):
    monkeypatch.setitem(KINDS, "fake", f"{__name__}:RecordingClassifier")
    monkeypatch.setitem(KINDS, "fakejudge", f"{__name__}:NoTrainingClassifier")
    FITS.clear()
    PREDICTED.clear()


def test_cv_never_puts_an_item_in_train_and_test_of_a_fold(test_examples):
    records = benchmark.cv_run("fake", test_examples, seed=44, folds=5, system="F",
                               notes=["n"])
    ids = [ex.id for ex in test_examples]
    assert [r.id for r in records] == ids  # the run covers every item once, in input order
    assert len(FITS) == 5 == len(PREDICTED)
    for (seed, train_ids), test_ids in zip(FITS, PREDICTED):
        assert seed == 44
        assert not train_ids & test_ids
        assert train_ids | test_ids == set(ids)
    assert sorted(i for test_ids in PREDICTED for i in test_ids) == sorted(ids)
    assert all(r.run == "seed-44" and r.notes == ["n"] for r in records)


def test_cv_folds_are_stratified_and_depend_on_the_seed(test_examples):
    benchmark.cv_run("fake", test_examples, seed=42, folds=5, system="F", notes=[])
    first = [frozenset(t) for t in PREDICTED]
    PREDICTED.clear()
    benchmark.cv_run("fake", test_examples, seed=42, folds=5, system="F", notes=[])
    assert [frozenset(t) for t in PREDICTED] == first  # same seed, same folds
    PREDICTED.clear()
    benchmark.cv_run("fake", test_examples, seed=43, folds=5, system="F", notes=[])
    assert [frozenset(t) for t in PREDICTED] != first
    by_id = {ex.id: ex.label for ex in test_examples}
    for test_ids in first:  # 355 Linguistic Neglect items -> 71 per fold
        assert sum(by_id[i] == 2 for i in test_ids) == 71


def test_benchmark_writes_results_folder_and_resumes(test_json, tmp_path):
    out = tmp_path / "res"
    result = benchmark.run_benchmark(["fake", "Judge=fakejudge"], data=test_json,
                                     seeds=[42, 43], folds=3, out_dir=out, show_progress=False)
    assert len(FITS) == 2 * 3  # the judge-like system never fits
    names = [s.system for s in result.systems]
    assert names == ["fake", "Judge"]
    for slug in ("fake", "Judge"):
        for run in ("seed-42", "seed-43"):
            recs = read_records(out / "predictions" / slug / f"{run}.preds.jsonl")
            assert len(recs) == 800 and {r.run for r in recs} == {run}
        assert (out / f"confusion-{slug}.png").stat().st_size > 1000
    # The judge answers "Safe Response" everywhere: accuracy is the share of label 7.
    assert result.systems[1].scores["accuracy"].mean == pytest.approx(367 / 800)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"]["name"] == "cv" and metrics["protocol"]["seeds"] == [42, 43]
    assert metrics["systems"][1]["spec"] == "fakejudge"
    assert metrics["systems"][1]["protocol"]["name"] == "predict-only"
    assert metrics["data"]["file_sha256"] == benchmark.sha256_file(test_json)
    table = (out / "table.md").read_text()
    assert "Judge [measured, no training, 2 runs]" in table
    assert "fake [measured, 2×3-fold CV]" in table
    assert "BERT-base (reported by the paper)" in table
    assert "not the paper's protocol" in table and "Macro-F1" in table and "Unsafe R" in table

    FITS.clear()
    again = benchmark.run_benchmark(["fake", "Judge=fakejudge"], data=test_json,
                                    seeds=[42, 43], folds=3, out_dir=out, show_progress=False)
    assert again.reused_runs == 4 and not FITS
    assert again.table == result.table
    with pytest.raises(UsageError, match="other data or settings"):
        benchmark.run_benchmark(["fake"], data=test_json, seeds=[42], folds=4, out_dir=out,
                                show_progress=False)


def test_train_test_protocol_fits_once_per_seed(test_examples, tmp_path):
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    write_examples(train, test_examples[:500])
    write_examples(test, test_examples[500:])
    result = benchmark.run_benchmark(["fake"], data=test, train=train, seeds=[1, 2, 3],
                                     out_dir=tmp_path / "res", show_progress=False,
                                     include_paper=False)
    assert [seed for seed, _ in FITS] == [1, 2, 3]
    assert all(ids == {ex.id for ex in test_examples[:500]} for _, ids in FITS)
    assert result.protocol.name == "train-test"
    assert "reported by the paper" not in result.table
    assert result.systems[0].n_items == 300


def test_real_baseline_benchmark_on_a_small_file(test_examples, tmp_path):
    data = tmp_path / "small.json"
    write_examples(data, test_examples[::4])
    result = benchmark.run_benchmark(["baseline"], data=data, seeds=[42], folds=2,
                                     out_dir=tmp_path / "res", show_progress=False,
                                     config={"c_grid": [1.0], "inner_folds": 2})
    [system] = result.systems
    assert system.system == benchmark.BASELINE_NAME and system.n_items == 200
    recs = read_records(tmp_path / "res" / "predictions" / "Baseline-char-n-grams-dialogue-"
                        "features-LR" / "seed-42.preds.jsonl")
    assert all(r.probs is not None for r in recs)
    assert system.scores["accuracy"].mean > 0.46  # above the majority class


def test_bad_arguments(test_json, tmp_path):
    with pytest.raises(UsageError, match="same name"):
        benchmark.run_benchmark(["fake", "fake"], data=test_json, out_dir=tmp_path / "a")
    with pytest.raises(UsageError, match="unknown classifier kind"):
        benchmark.run_benchmark(["nosuch:x"], data=test_json, out_dir=tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "mine.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not a benchmark results folder"):
        benchmark.run_benchmark(["fake"], data=test_json, out_dir=tmp_path / "c")
    assert (tmp_path / "c" / "mine.txt").read_text() == "keep me"


def test_config_scoped_to_one_system():
    specs = [benchmark.parse_system("fake"), benchmark.parse_system("Judge=fakejudge")]
    config = {"shared": 1, "fake.only_fake": 2, "Judge.only_judge": 3}
    assert benchmark.system_config(specs[0], config, specs) == {"shared": 1, "only_fake": 2}
    assert benchmark.system_config(specs[1], config, specs) == {"shared": 1, "only_judge": 3}
    with pytest.raises(UsageError, match="'encoder' is not one of the systems"):
        benchmark.system_config(specs[0], {"encoder.epochs": 1}, specs)


def test_judge_transport_settings_leave_the_folder_identity_alone():
    """judge.md's `--config concurrency=32` changes no answer, so it resumes the same folder;
    a setting that changes answers (rounds) makes another."""
    protocol = benchmark.cv_protocol(800, [42, 43], 5, "test.json")
    key = benchmark._state_key(protocol, "h", None, {"rounds": 3})
    assert benchmark._state_key(protocol, "h", None, {"rounds": 3, "concurrency": 32,
                                                      "Fake judge.timeout": 5,
                                                      "work_dir": "w"}) == key
    assert benchmark._state_key(protocol, "h", None, {"rounds": 5}) != key


def test_system_and_model_specs():
    assert benchmark.parse_system("baseline").name == benchmark.BASELINE_NAME
    spec = benchmark.parse_system("My BERT=encoder:bert-base-chinese")
    assert (spec.name, spec.spec, spec.slug) == ("My BERT", "encoder:bert-base-chinese",
                                                 "My-BERT")
    assert registry.model_spec("baseline") == "baseline"
    assert registry.model_spec("bert-base-chinese") == "encoder:bert-base-chinese"
    assert registry.model_spec("judge:gpt-4o") == "judge:gpt-4o"
    with pytest.raises(UsageError):
        benchmark.parse_system("Name=")
