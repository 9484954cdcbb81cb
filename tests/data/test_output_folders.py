"""`data split` and `data export` never replace a folder they did not write (issue 20)."""

from __future__ import annotations

import pytest

from mhsafety.data import load_examples, write_examples
from mhsafety.io import OUTPUT_MARKER, output_writer
from tests.helpers.cli import run


@pytest.fixture
def small_file(test_examples, tmp_path):
    path = tmp_path / "small.jsonl"
    write_examples(path, test_examples[::8])
    return path


def _user_folder(path):
    path.mkdir()
    (path / "notes.txt").write_text("keep me")
    return path


@pytest.mark.parametrize("argv", [
    ["data", "split", "--dev-ratio", "0.2", "--out-dir"],
    ["data", "split", "--folds", "3", "--out-dir"],
    ["data", "export", "--format", "jsonl", "--out"],
])
def test_a_user_folder_is_refused_then_replaced_with_force(argv, small_file, tmp_path, capsys):
    mine = _user_folder(tmp_path / "mine")
    code, _, err = run([*argv, str(mine), "--data", str(small_file)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "did not write" in err and "--force" in err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    code, _, err = run([*argv, str(mine), "--data", str(small_file), "--force"], capsys)
    assert code == 0, err
    assert not (mine / "notes.txt").exists() and (mine / OUTPUT_MARKER).exists()


def test_split_rerun_replaces_its_own_folder_atomically(small_file, tmp_path, capsys):
    out = tmp_path / "split"
    assert run(["data", "split", "--folds", "3", "--out-dir", str(out), "--data",
                str(small_file)], capsys)[0] == 0
    assert output_writer(out) == "data split"
    code, _, err = run(["data", "split", "--dev-ratio", "0.2", "--out-dir", str(out), "--data",
                        str(small_file)], capsys)
    assert code == 0, err
    # the folds of the first run are gone: the folder holds one split, not a mixture
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER, "dev.jsonl", "train.jsonl"]
    n = len(load_examples(out / "train.jsonl")) + len(load_examples(out / "dev.jsonl"))
    assert n == len(load_examples(small_file))
    # another command's folder is not data split's to replace
    code, _, err = run(["data", "export", "--format", "jsonl", "--out", str(out), "--data",
                        str(small_file)], capsys)
    assert code == 2 and "was written by `mhsafety data split`" in err


def test_an_exported_folder_with_its_marker_reads_back(small_file, tmp_path, capsys):
    out = tmp_path / "ds"
    assert run(["data", "export", "--format", "jsonl", "--out", str(out), "--data",
                str(small_file)], capsys)[0] == 0
    assert output_writer(out) == "data export"
    assert len(load_examples(out)) == len(load_examples(small_file))
    assert run(["data", "export", "--format", "jsonl", "--out", str(out), "--data",
                str(small_file)], capsys)[0] == 0  # its own: replaced
