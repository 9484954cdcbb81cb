"""`mhsafety train`, `predict` and `benchmark` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mhsafety.cli import main
from mhsafety.data import write_examples
from mhsafety.records import read_records
from tests.helpers.cli import FAST, run


@pytest.fixture(scope="module")
def held_out_file(test_examples, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "held_out.jsonl"
    write_examples(path, test_examples[1::5])
    return path


@pytest.fixture(scope="module")
def checkpoint(small_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "base"
    main(["train", "--train", str(small_file), "--out", str(out), *FAST])  # exits only on error
    return out


def test_train_then_predict_writes_records_with_probabilities(checkpoint, held_out_file,
                                                              tmp_path, capsys):
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    assert manifest["kind"] == "baseline" and manifest["config"]["inner_folds"] == 2
    out = tmp_path / "preds.jsonl"
    code, _, err = run(["predict", "--checkpoint", str(checkpoint), "--data", str(held_out_file),
                        "--out", str(out), "--system", "Base"], capsys)
    assert code == 0 and "wrote 160 prediction records" in err
    records = read_records(out)
    assert len(records) == 160 and {r.system for r in records} == {"Base"}
    assert all(r.gold is not None and len(r.probs) == 8 for r in records)
    code, table, _ = run(["evaluate", str(out)], capsys)
    assert code == 0 and "| Base" in table


def test_predict_accepts_unlabelled_data(checkpoint, tmp_path, capsys):
    data = tmp_path / "unlabelled.jsonl"
    data.write_text(json.dumps({"context": "[seeker]我好难过", "response": "[supporter]怎么了?"},
                               ensure_ascii=False) + "\n", encoding="utf-8")
    code, _, _ = run(["predict", "--checkpoint", str(checkpoint), "--data", str(data),
                      "--out", str(tmp_path / "p.jsonl")], capsys)
    assert code == 0
    [record] = read_records(tmp_path / "p.jsonl")
    assert record.gold is None and record.system == "base"


def test_train_several_seeds_makes_one_checkpoint_each(small_file, tmp_path, capsys):
    code, _, err = run(["train", "--train", str(small_file), "--out", str(tmp_path / "m"),
                        "--seeds", "1", "2", "--dev-ratio", "0.2", *FAST], capsys)
    assert code == 0, err
    for seed in (1, 2):
        manifest = json.loads((tmp_path / "m" / f"seed-{seed}" / "manifest.json").read_text())
        assert manifest["config"]["seed"] == seed
        assert manifest["extra"]["dev"]["n"] > 0


def one_error_line(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mhsafety: error: "), err
    for fragment in fragments:
        assert fragment in lines[0]


def test_train_bad_inputs(small_file, tmp_path, capsys):
    code, _, err = run(["train", "--train", str(tmp_path / "nope.json"), "--out",
                        str(tmp_path / "o")], capsys)
    one_error_line(code, err, "nope.json", "no such file")
    bad = tmp_path / "bad.json"
    bad.write_text('{"context": "x"}', encoding="utf-8")
    code, _, err = run(["train", "--train", str(bad), "--out", str(tmp_path / "o")], capsys)
    one_error_line(code, err, "bad.json", "missing field 'response'")
    code, _, err = run(["train", "--train", str(small_file), "--out", str(tmp_path / "o"),
                        "--config", "depth=3"], capsys)
    one_error_line(code, err, "'depth'", "c_grid")
    code, _, err = run(["train", "--train", str(small_file), "--out", str(tmp_path / "o"),
                        "--dev", str(small_file), "--dev-ratio", "0.1"], capsys)
    one_error_line(code, err, "not both")
    assert not (tmp_path / "o").exists()


def test_predict_bad_inputs(checkpoint, small_file, tmp_path, capsys):
    def predict(ckpt, data=small_file):
        return run(["predict", "--checkpoint", str(ckpt), "--data", str(data),
                    "--out", str(tmp_path / "p.jsonl")], capsys)

    one_error_line(*predict(tmp_path / "missing")[::2], "no such checkpoint folder")
    (tmp_path / "plain").mkdir()
    one_error_line(*predict(tmp_path / "plain")[::2], "not an mhsafety checkpoint")
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    (wrong / "manifest.json").write_text(json.dumps({**manifest, "kind": "svm"}))
    one_error_line(*predict(wrong)[::2], "unknown checkpoint kind 'svm'")
    (wrong / "manifest.json").write_text(json.dumps(manifest))  # baseline kind, no arrays
    one_error_line(*predict(wrong)[::2], "missing")
    one_error_line(*predict(checkpoint, tmp_path / "none.json")[::2], "none.json",
                   "no such file")
    assert not (tmp_path / "p.jsonl").exists()


def test_benchmark_command_prints_table_and_writes_folder(small_file, tmp_path, capsys):
    out = tmp_path / "res"
    code, table, err = run(["benchmark", "--data", str(small_file), "--seeds", "42,43",
                            "--folds", "2", "--out", str(out), *FAST], capsys)
    assert code == 0, err
    assert "Baseline (char n-grams" in table and "(reported by the paper)" in table
    assert "2×2-fold cross-validation" in table
    assert f"results written to {out}" in err
    assert (out / "table.md").read_text().strip() == table.strip()
    assert (out / "metrics.json").exists() and list(out.glob("confusion-*.png"))
    code, _, err = run(["benchmark", "--data", str(small_file), "--seeds", "4x"], capsys)
    one_error_line(code, err, "--seeds")


@pytest.mark.slow
def test_split_then_benchmark_on_the_same_file_is_refused(test_json, tmp_path, capsys):
    """The README's split, then training on its train part and testing on the whole file."""
    split = tmp_path / "split"
    code, _, err = run(["data", "split", "--data", str(test_json), "--out-dir", str(split),
                        "--dev-ratio", "0.2", "--seed", "42"], capsys)
    assert code == 0, err
    args = ["benchmark", "--data", str(test_json), "--train", str(split / "train.jsonl"),
            "--seeds", "42", "--out", str(tmp_path / "res"), "--no-paper", *FAST]
    code, _, err = run(args, capsys)
    one_error_line(code, err, "also occur in", "--allow-overlap")
    assert not (tmp_path / "res").exists()  # refused before any work or state
    code, table, err = run([*args, "--allow-overlap"], capsys)
    assert code == 0, err
    from mhsafety.records import NOTE_OVERLAP, note_text

    row = next(line for line in table.splitlines() if "Baseline" in line)
    assert note_text(NOTE_OVERLAP) in row
    metrics = json.loads((tmp_path / "res" / "metrics.json").read_text())
    assert NOTE_OVERLAP in metrics["systems"][0]["notes"]


def test_train_refuses_a_dev_file_that_overlaps_the_training_file(small_file, tmp_path,
                                                                   capsys):
    out = tmp_path / "ckpt"
    args = ["train", "--train", str(small_file), "--dev", str(small_file), "--out", str(out),
            *FAST]
    code, _, err = run(args, capsys)
    one_error_line(code, err, "160 of the 160 items", "also occur in")
    assert not out.exists()
    code, _, err = run([*args, "--allow-overlap"], capsys)
    assert code == 0, err
    from mhsafety.records import NOTE_DEV_OVERLAP

    assert json.loads((out / "manifest.json").read_text())["notes"] == [NOTE_DEV_OVERLAP]


def _items(n, labels):
    return [{"context": f"[seeker]我今天很难过 {i}", "response": f"[supporter]怎么了 {i}",
             "label": labels[i % len(labels)]} for i in range(n)]


def test_too_few_items_and_a_single_label_are_one_line(tmp_path, capsys):
    three = tmp_path / "three.jsonl"
    three.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in _items(3, [7, 2])),
                     encoding="utf-8")
    code, _, err = run(["train", "--train", str(three), "--out", str(tmp_path / "c")], capsys)
    one_error_line(code, err, "three.jsonl: 3 items are too few to train the baseline")
    one = tmp_path / "one.jsonl"
    one.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in _items(30, [7])),
                   encoding="utf-8")
    res = tmp_path / "res"
    code, _, err = run(["benchmark", "--data", str(one), "--out", str(res), "--seeds", "1"],
                       capsys)
    one_error_line(code, err, "every item has the label Safe Response")
    assert not (res / "state.json").exists() and not res.exists()


def test_train_reports_each_fit_when_piped(small_file, tmp_path, capsys):
    code, _, err = run(["train", "--train", str(small_file), "--out", str(tmp_path / "c"),
                        "--config", "c_grid=[1.0,4.0]", "--config", "inner_folds=2"], capsys)
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("seed 42: fit ")]
    assert lines[-1].startswith("seed 42: fit 5/5") and len(lines) == 3  # 2 per C, then final


def test_default_results_folder_is_named_by_the_settings_and_resumes(small_file, tmp_path,
                                                                     capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["benchmark", "--data", str(small_file), "--seeds", "42", "--folds", "2",
            "--no-paper", *FAST]
    code, table, err = run(args, capsys)
    assert code == 0, err
    folders = list((tmp_path / "results").iterdir())
    assert len(folders) == 1 and f"pass --out {Path('results') / folders[0].name}" in err
    assert "support-weighted" in table and "Unsafe R is" in table
    code, _, err = run(args, capsys)  # the same command finds the same folder and reuses it
    assert code == 0 and "reused 1 finished run" in err
    assert len(list((tmp_path / "results").iterdir())) == 1
    code, _, err = run([*args[:-4], "--config", "c_grid=[2.0]", "--config", "inner_folds=2"],
                       capsys)
    assert code == 0 and len(list((tmp_path / "results").iterdir())) == 2
