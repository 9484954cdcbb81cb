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
        FITS.append((self.extras["seed"], {ex.id for ex in train}))
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
    with pytest.raises(UsageError, match="did not write; choose another --out"):
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


def test_force_replaces_a_user_folder_or_starts_afresh(test_json, tmp_path):
    from mhsafety.io import output_writer

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    benchmark.run_benchmark(["fake"], data=test_json, seeds=[42], folds=3, out_dir=out,
                            show_progress=False, force=True)
    assert not (out / "notes.txt").exists() and output_writer(out) == "benchmark"
    # other settings in its own folder: refused, then started afresh with force
    with pytest.raises(UsageError, match="other data or settings.*--force"):
        benchmark.run_benchmark(["fake"], data=test_json, seeds=[42], folds=4, out_dir=out,
                                show_progress=False)
    FITS.clear()
    again = benchmark.run_benchmark(["fake"], data=test_json, seeds=[42], folds=4,
                                    out_dir=out, show_progress=False, force=True)
    assert again.reused_runs == 0 and len(FITS) == 4


def test_a_results_folder_from_before_the_marker_resumes(test_json, tmp_path):
    from mhsafety.io import OUTPUT_MARKER

    out = tmp_path / "res"
    benchmark.run_benchmark(["fake"], data=test_json, seeds=[42], folds=3, out_dir=out,
                            show_progress=False)
    (out / OUTPUT_MARKER).unlink()  # as an older mhsafety left it: state.json, no marker
    again = benchmark.run_benchmark(["fake"], data=test_json, seeds=[42], folds=3,
                                    out_dir=out, show_progress=False)
    assert again.reused_runs == 1


def test_progress_is_a_line_per_fit_when_piped(test_json, tmp_path, capsys):
    benchmark.run_benchmark(["fake", "J=fakejudge"], data=test_json, seeds=[42], folds=3,
                            out_dir=tmp_path / "res")
    lines = [line for line in capsys.readouterr().err.splitlines()
             if line.startswith("benchmark: fit ")]
    assert lines == ["benchmark: fit 1/4 (fake, seed 42)", "benchmark: fit 2/4 (fake, seed 42)",
                     "benchmark: fit 3/4 (fake, seed 42)", "benchmark: fit 4/4 (J, seed 42)"]


class _Rounds:
    def __init__(self, rounds: int, vote: bool) -> None:
        self.rounds, self.vote = rounds, vote


class RoundsClassifier(NoTrainingClassifier):
    """Like an LLM judge with rounds: round r answers the gold label on every r-th item and
    'Safe Response' elsewhere; predict_records is the majority vote over the rounds."""

    kind = "fakerounds"

    @property
    def settings(self) -> _Rounds:
        return _Rounds(int(self.extras.get("rounds", 3)), bool(self.extras.get("vote", False)))

    def round_records(self, examples):
        from mhsafety.records import PredictionRecord

        return {str(r): [PredictionRecord(ex.id, ex.label, ex.label if i % (r + 1) == 0 else 7,
                                          "judge-internal", str(r))
                         for i, ex in enumerate(examples)]
                for r in range(1, self.settings.rounds + 1)}

    def predict_records(self, examples, system, run="0"):
        from mhsafety.records import PredictionRecord

        k = self.settings.rounds
        per_round = self.round_records(examples)
        votes = []
        for i, ex in enumerate(examples):
            answers = [per_round[str(r)][i].pred for r in range(1, k + 1)]
            top = max(set(answers), key=answers.count)
            votes.append(PredictionRecord(ex.id, ex.label, top, system, run))
        return votes


def test_a_real_judges_rounds_become_runs(test_examples):
    """The judge classifier keeps its last result for round_runs (benchmark's judge rows crashed
    with "'JudgeClassifier' object has no attribute 'last_result'")."""
    from mhsafety.testing import FakeServer, constant

    with FakeServer(constant("Safe Response")) as server:
        runs = benchmark.round_runs(f"judge:fake-judge@{server.url}", test_examples[:12], 42,
                                    "Fake judge", [], {"rounds": 2})
    assert sorted(runs) == ["seed-42-round-1", "seed-42-round-2"]
    assert all(r.pred == 7 and r.system == "Fake judge" for recs in runs.values() for r in recs)


def _accuracy(records):
    return sum(r.pred == r.gold for r in records) / len(records)


def test_judge_rows_score_single_rounds_by_default_or_say_majority_vote(test_examples,
                                                                         tmp_path, monkeypatch):
    """Issue 20: each "run" of a judge was a 5-round majority vote (44.25) under the words
    "predicted once per run", beside the paper's means over single rounds (43.12)."""
    monkeypatch.setitem(KINDS, "fakerounds", f"{__name__}:RoundsClassifier")
    data = tmp_path / "d.json"
    write_examples(data, test_examples[:60])
    single = benchmark.run_benchmark(["J=fakerounds"], data=data, seeds=[1, 2],
                                     out_dir=tmp_path / "single", show_progress=False,
                                     include_paper=False)
    [system] = single.systems
    assert sorted(system.runs) == [f"seed-{s}-round-{r}" for s in (1, 2) for r in (1, 2, 3)]
    rounds = [_accuracy(read_records(tmp_path / "single" / "predictions" / "J" /
                                     f"seed-1-round-{r}.preds.jsonl")) for r in (1, 2, 3)]
    assert system.scores["accuracy"].mean == pytest.approx(np.mean(rounds))
    assert "mean over 6 single rounds" in single.table and "once per run" not in single.table
    voted = benchmark.run_benchmark(["J=fakerounds"], data=data, seeds=[1, 2],
                                    out_dir=tmp_path / "vote", show_progress=False,
                                    include_paper=False, config={"vote": True})
    [system] = voted.systems
    assert system.runs == ["seed-1", "seed-2"]
    assert "majority vote of 3 rounds per run" in voted.table
    assert system.scores["accuracy"].mean != pytest.approx(np.mean(rounds))
    # Resuming finds every round's file.
    again = benchmark.run_benchmark(["J=fakerounds"], data=data, seeds=[1, 2],
                                    out_dir=tmp_path / "single", show_progress=False,
                                    include_paper=False)
    assert again.reused_runs == 2


def test_rows_say_how_their_numbers_were_chosen(test_examples, tmp_path):
    """The paper's fine-tuned rows picked their epoch on the test set (as `reproduce`
    marks them); the baseline's design was chosen on the public test items."""
    from mhsafety.records import NOTE_DESIGN_ON_TEST, NOTE_SELECTED_ON_TEST, NOTE_TEXTS

    data = tmp_path / "small.json"
    write_examples(data, test_examples[::8])
    result = benchmark.run_benchmark(["baseline"], data=data, seeds=[42], folds=2,
                                     out_dir=tmp_path / "res", show_progress=False,
                                     config={"c_grid": [1.0], "inner_folds": 2})
    lines = result.table.splitlines()
    baseline = next(line for line in lines if line.startswith(f"| {benchmark.BASELINE_NAME}"))
    assert NOTE_TEXTS[NOTE_DESIGN_ON_TEST] in baseline
    for system in ("BERT-base", "RoBERTa-large"):
        row = next(line for line in lines if line.startswith(f"| {system} (reported"))
        assert NOTE_TEXTS[NOTE_SELECTED_ON_TEST] in row
    chatgpt = next(line for line in lines if line.startswith("| ChatGPT-0613 zero-shot"))
    assert NOTE_TEXTS[NOTE_SELECTED_ON_TEST] not in chatgpt
    assert "| 100 |" in baseline  # n: the items each run scored


def test_train_file_of_altered_copies_of_the_test_items_is_refused(test_examples, tmp_path):
    """Issue 20: `benchmark --train` on the train split with a space after each tag was
    accepted and printed 79.38 beside the paper's rows."""
    from mhsafety.data import OverlapError

    test = tmp_path / "test.json"
    write_examples(test, test_examples[:100])
    altered = tmp_path / "train.json"
    write_examples(altered, [Example(ex.context.replace("]", "] "),
                                     ex.response.replace("[supporter]", "[Supporter] "),
                                     ex.label, f"t{i}")
                             for i, ex in enumerate(test_examples[:80])])
    with pytest.raises(OverlapError, match="80 of the 100 items"):
        benchmark.run_benchmark(["fake"], data=test, train=altered, seeds=[1],
                                out_dir=tmp_path / "res", show_progress=False)
    assert not (tmp_path / "res").exists()
