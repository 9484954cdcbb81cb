"""Output folders from the command line: nothing a user made is deleted, unwritable places
and unknown kinds fail in one line before any work (issue 20)."""

from __future__ import annotations

import json

import pytest

from mhsafety.data import write_examples
from mhsafety.io import OUTPUT_MARKER, output_writer
from tests.helpers.cli import FAST, run


@pytest.fixture(scope="module")
def eight_file(test_examples, tmp_path_factory):
    """One item of each label: no label has two items, so no dev set can be split off."""
    firsts = {}
    for ex in test_examples:
        firsts.setdefault(ex.label, ex)
    path = tmp_path_factory.mktemp("data") / "eight.jsonl"
    write_examples(path, [firsts[label] for label in sorted(firsts)])
    return path


def _user_folder(path):
    path.mkdir()
    (path / "notes.txt").write_text("keep me")
    (path / "sub").mkdir()
    (path / "sub" / "b.txt").write_text("and me")
    return path


def _one_error_line(code, err):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mhsafety: error: "), err
    return lines[0]


def test_train_refuses_a_folder_it_did_not_write(small_file, tmp_path, capsys):
    mine = _user_folder(tmp_path / "mine")
    code, _, err = run(["train", "--train", str(small_file), "--out", str(mine), *FAST], capsys)
    line = _one_error_line(code, err)
    assert "did not write" in line and "--force" in line
    assert (mine / "notes.txt").read_text() == "keep me"
    assert (mine / "sub" / "b.txt").read_text() == "and me"
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "sub"]


def test_train_replaces_its_own_checkpoint_and_force_replaces_any(small_file, tmp_path,
                                                                   capsys):
    out = tmp_path / "ckpt"
    assert run(["train", "--train", str(small_file), "--out", str(out), *FAST], capsys)[0] == 0
    assert output_writer(out) == "train" and (out / "manifest.json").exists()
    (out / "vocab.json").write_text("{}")  # its own file, changed: replaced
    code, _, err = run(["train", "--train", str(small_file), "--out", str(out), *FAST], capsys)
    assert code == 0, err
    assert (out / "vocab.json").read_text() != "{}"  # replaced whole, atomically
    # a file added to the checkpoint is never deleted by a rerun
    (out / "my-notes.txt").write_text("keep me")
    code, _, err = run(["train", "--train", str(small_file), "--out", str(out), *FAST], capsys)
    assert "also holds my-notes.txt" in _one_error_line(code, err)
    assert (out / "my-notes.txt").read_text() == "keep me"
    mine = _user_folder(tmp_path / "mine")
    code, _, err = run(["train", "--train", str(small_file), "--out", str(mine), "--force",
                        *FAST], capsys)
    assert code == 0, err
    assert not (mine / "notes.txt").exists() and (mine / "manifest.json").exists()


def test_train_several_seeds_marks_the_parent_folder(small_file, tmp_path, capsys):
    out = tmp_path / "seeds"
    code, _, err = run(["train", "--train", str(small_file), "--out", str(out),
                        "--seeds", "1", "2", *FAST], capsys)
    assert code == 0, err
    assert output_writer(out) == "train"
    assert output_writer(out / "seed-1") == "train" and (out / "seed-2" / "manifest.json").exists()
    (out / "seed-2" / "my-notes.txt").write_text("keep me")
    code, _, err = run(["train", "--train", str(small_file), "--out", str(out),
                        "--seeds", "1", "2", *FAST], capsys)
    assert "also holds my-notes.txt" in _one_error_line(code, err)
    assert (out / "seed-2" / "my-notes.txt").exists()


def test_an_unwritable_out_fails_before_fitting(small_file, tmp_path, capsys):
    # Root ignores chmod 555, so the place that cannot be written for anyone: under a file.
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    code, _, err = run(["train", "--train", str(small_file), "--out", str(blocker / "ckpt"),
                        *FAST], capsys)
    line = _one_error_line(code, err)  # no "fit k/n" progress line: nothing was fitted
    assert "is a file, not a folder" in line


def test_an_unwritable_out_from_a_read_only_place_fails_before_fitting(small_file, tmp_path,
                                                                       capsys, monkeypatch):
    # A read-only folder or mount: creating the probe file fails (for root too). The
    # fitting must never start: make it fail loudly if it does.
    import mhsafety.io
    import mhsafety.training

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted before the output folder was checked")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(mhsafety.training, "train_model", no_fit)
    monkeypatch.setattr(mhsafety.io.tempfile, "mkstemp", refuse)
    code, _, err = run(["train", "--train", str(small_file), "--out", str(tmp_path / "ro"),
                        *FAST], capsys)
    assert "cannot write in" in _one_error_line(code, err)


def test_train_refuses_an_unknown_kind_naming_the_known_ones(small_file, tmp_path, capsys):
    code, _, err = run(["train", "--model", "nosuchkind:x", "--train", str(small_file),
                        "--out", str(tmp_path / "d")], capsys)
    line = _one_error_line(code, err)
    assert "unknown classifier kind 'nosuchkind'" in line
    assert "baseline" in line and "encoder:" in line and "judge:" in line
    assert not (tmp_path / "d").exists()


def test_a_bare_name_still_means_an_encoder():
    from mhsafety.registry import model_spec

    assert model_spec("bert-base-chinese") == "encoder:bert-base-chinese"
    assert model_spec("org/some-model") == "encoder:org/some-model"
    assert model_spec("encoder:x") == "encoder:x" and model_spec("baseline") == "baseline"


def test_encoder_with_too_few_items_for_a_dev_set_names_the_fix(eight_file, tmp_path, capsys):
    # The model path does not exist: had anything tried to load it, the error would say so.
    code, _, err = run(["train", "--model", "encoder:" + str(tmp_path / "no-model"),
                        "--train", str(eight_file), "--out", str(tmp_path / "d")], capsys)
    line = _one_error_line(code, err)
    assert "too few to split off a dev set" in line and "--dev" in line
    code, _, err = run(["train", "--model", "baseline", "--train", str(eight_file),
                        "--dev-ratio", "0.1", "--out", str(tmp_path / "d2")], capsys)
    assert "too few to split off a dev set" in _one_error_line(code, err)


def test_predict_and_evaluate_check_their_out_file_first(small_file, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    code, _, err = run(["evaluate", str(small_file), "--out", str(blocker / "t.md")], capsys)
    assert "is a file, not a folder" in _one_error_line(code, err)
    code, _, err = run(["predict", "--checkpoint", str(tmp_path / "none"), "--data",
                        str(small_file), "--out", str(tmp_path)], capsys)
    assert "is a folder" in _one_error_line(code, err)


def test_reproduce_out_refuses_a_user_folder(upstream_dir, tmp_path, capsys):
    mine = _user_folder(tmp_path / "mine")
    code, _, err = run(["reproduce", "--upstream", str(upstream_dir), "--out", str(mine)],
                       capsys)
    assert "did not write" in _one_error_line(code, err)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "sub"]


def test_analyze_plots_and_progress(upstream_pair, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("mhsafety.report.figures.save_all_figures",
                        lambda result, folder: [])
    mine = _user_folder(tmp_path / "mine")
    code, _, err = run(["analyze", str(upstream_pair), "--resamples", "100", "--plots",
                        str(mine)], capsys)
    assert "did not write" in _one_error_line(code, err)
    code, _, err = run(["analyze", str(upstream_pair), "--resamples", "100", "--plots",
                        str(tmp_path / "plots")], capsys)
    assert code == 0, err
    assert output_writer(tmp_path / "plots") == "analyze"
    # piped stderr: one line per step (each system bootstrapped, comparisons, errors)
    steps = [line for line in err.splitlines() if line.startswith("analyze: step ")]
    assert steps[0].startswith("analyze: step 1/4 (bootstrap ")
    assert steps[-1] == "analyze: step 4/4 (error analysis)"


@pytest.fixture(scope="module")
def upstream_pair(upstream_pair_runs):
    return upstream_pair_runs


def test_judge_refuses_a_folder_of_other_files(small_file, tmp_path, capsys):
    mine = _user_folder(tmp_path / "mine")
    code, _, err = run(["judge", "--data", str(small_file), "--model", "m", "--base-url",
                        "http://127.0.0.1:9/v1", "--out", str(mine)], capsys)
    line = _one_error_line(code, err)
    assert "did not write" in line and "--force" not in line
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "sub"]


def test_judge_folders_from_before_the_marker_still_resume(tmp_path):
    from mhsafety.cli.cmd_judge import _is_judge_folder

    old = tmp_path / "old"
    old.mkdir()
    (old / "manifest.json").write_text(json.dumps({"kind": "mhsafety-judge-run"}))
    assert _is_judge_folder(old)
    (old / "manifest.json").write_text(json.dumps({"kind": "something else"}))
    assert not _is_judge_folder(old)
    assert OUTPUT_MARKER.startswith(".")


def test_export_adds_its_onnx_files_to_the_checkpoints_own_list(small_file, tmp_path, capsys,
                                                                 monkeypatch):
    out = tmp_path / "ckpt"
    assert run(["train", "--train", str(small_file), "--out", str(out), *FAST], capsys)[0] == 0

    def fake_export(checkpoint, quantize):  # what export_onnx adds: model files
        (checkpoint / "model.onnx").write_bytes(b"onnx")
        return checkpoint / "model.onnx"

    monkeypatch.setattr("mhsafety.classifiers.encoder_export.export_onnx", fake_export)
    assert run(["export", "--checkpoint", str(out)], capsys)[0] == 0
    marker = json.loads((out / OUTPUT_MARKER).read_text())
    assert "model.onnx" in marker["entries"]
    # so a rerun of train replaces the checkpoint, ONNX files included
    code, _, err = run(["train", "--train", str(small_file), "--out", str(out), *FAST], capsys)
    assert code == 0, err
    assert not (out / "model.onnx").exists()
