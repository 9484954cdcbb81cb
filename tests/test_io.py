"""The one rule for output folders (io.prepare_output_dir) and atomic folder writes."""

from __future__ import annotations

import json
import os

import pytest

from mhsafety import io
from mhsafety.errors import UsageError
from mhsafety.io import (
    OUTPUT_MARKER,
    atomic_directory,
    mark_output_dir,
    output_writer,
    prepare_output_dir,
    prepare_output_file,
)


def _user_folder(path):
    path.mkdir()
    (path / "notes.txt").write_text("keep me")
    (path / "sub").mkdir()
    (path / "sub" / "data.csv").write_text("1,2")
    return path


def _untouched(path):
    return (sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))
            == ["notes.txt", "sub", "sub/data.csv"]
            and (path / "notes.txt").read_text() == "keep me")


def test_new_and_empty_folders_are_allowed_and_left_alone(tmp_path):
    assert prepare_output_dir(tmp_path / "new" / "deeper", command="train") == \
        tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # nothing made without create
    (tmp_path / "empty").mkdir()
    prepare_output_dir(tmp_path / "empty", command="train")
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_folder_the_command_did_not_write_is_refused_unchanged(tmp_path):
    mine = _user_folder(tmp_path / "mine")
    with pytest.raises(UsageError) as err:
        prepare_output_dir(mine, command="train", create=True)
    message = str(err.value)
    assert "\n" not in message and "did not write" in message and "--force" in message
    assert _untouched(mine)
    # a command that offers no --force says only to choose another folder
    with pytest.raises(UsageError, match=r"choose another --out \(nothing was changed\)"):
        prepare_output_dir(mine, command="judge", force_flag=None)


def test_another_commands_folder_is_refused_by_name(tmp_path):
    folder = tmp_path / "r"
    with atomic_directory(folder, "report") as tmp:
        (tmp / "index.html").write_text("<html>")
    assert output_writer(folder) == "report"
    with pytest.raises(UsageError, match="was written by `mhsafety report`"):
        prepare_output_dir(folder, command="train")
    prepare_output_dir(folder, command="report")  # its own: a rerun may replace it


def test_force_replaces_and_create_empties_only_with_force_or_fresh(tmp_path):
    mine = _user_folder(tmp_path / "mine")
    prepare_output_dir(mine, command="train", force=True)  # check only: still intact
    assert _untouched(mine)
    prepare_output_dir(mine, command="benchmark", force=True, create=True)
    assert sorted(p.name for p in mine.iterdir()) == [OUTPUT_MARKER]
    (mine / "run.txt").write_text("resumable")
    prepare_output_dir(mine, command="benchmark", create=True)  # resumed: kept
    assert (mine / "run.txt").exists()
    prepare_output_dir(mine, command="benchmark", create=True, fresh=True)
    assert not (mine / "run.txt").exists() and output_writer(mine) == "benchmark"


def test_recognise_accepts_folders_from_before_the_marker(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "state.json").write_text("{}")
    with pytest.raises(UsageError):
        prepare_output_dir(old, command="benchmark")
    prepare_output_dir(old, command="benchmark",
                       recognise=lambda folder: (folder / "state.json").exists())


def test_a_marker_that_is_not_ours_does_not_count(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / OUTPUT_MARKER).write_text(json.dumps({"command": "train"}))  # no format
    assert output_writer(folder) is None
    with pytest.raises(UsageError):
        prepare_output_dir(folder, command="train")


def test_a_file_in_the_way_is_refused_even_for_root(tmp_path):
    # Permission bits do not stop root, so the test that holds for everyone: a path whose
    # nearest existing parent is a file cannot take a folder, and creating one fails.
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        prepare_output_dir(blocker / "out", command="train")
    with pytest.raises(UsageError, match="exists and is not a folder"):
        prepare_output_dir(blocker, command="train")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        prepare_output_file(blocker / "table.md")
    with pytest.raises(UsageError, match="is a folder"):
        prepare_output_file(tmp_path)
    assert blocker.read_text() == "x"


def test_an_unwritable_place_is_found_by_writing_there(tmp_path, monkeypatch):
    # What a read-only mount does to root as to anyone: creating the probe file fails.
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(io.tempfile, "mkstemp", refuse)
    with pytest.raises(UsageError, match=r"cannot write in .* \(Permission denied\)"):
        prepare_output_dir(tmp_path / "out", command="train")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into a chmod 555 folder anyway")
def test_a_read_only_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(UsageError, match="cannot write in"):
            prepare_output_dir(locked / "out", command="train")
    finally:
        locked.chmod(0o755)


def test_probe_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    prepare_output_dir(folder, command="train")
    assert list(folder.iterdir()) == [] and list(tmp_path.iterdir()) == [folder]


def test_atomic_directory_marks_the_folder_and_keeps_the_old_one_on_failure(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target, "data split") as tmp:
        (tmp / "train.jsonl").write_text("{}\n")
    assert output_writer(target) == "data split"
    with pytest.raises(RuntimeError), atomic_directory(target, "data split") as tmp:
        (tmp / "half.jsonl").write_text("")
        raise RuntimeError("crash")
    assert sorted(p.name for p in target.iterdir()) == [OUTPUT_MARKER, "train.jsonl"]
    marker = json.loads((target / OUTPUT_MARKER).read_text())
    assert marker["format"] == "mhsafety-output" and marker["command"] == "data split"
    mark_output_dir(target, "data split")  # same command: marker kept as it is
    assert json.loads((target / OUTPUT_MARKER).read_text()) == marker


def test_a_file_added_to_a_folder_written_whole_is_never_deleted_by_a_rerun(tmp_path):
    # e.g. an archive unpacked into `reproduce --out`'s folder: a rerun would replace it all
    folder = tmp_path / "upstream"
    with atomic_directory(folder, "reproduce") as tmp:
        (tmp / "records").mkdir()
    (folder / "DialogueSafety").mkdir()
    with pytest.raises(UsageError, match="also holds DialogueSafety, which `mhsafety "
                                         "reproduce` did not write"):
        prepare_output_dir(folder, command="reproduce")
    prepare_output_dir(folder, command="reproduce", force=True)
    # a resumable folder lists nothing: what it holds is resumed, never deleted
    resumable = tmp_path / "bench"
    prepare_output_dir(resumable, command="benchmark", create=True)
    (resumable / "extra.txt").write_text("x")
    prepare_output_dir(resumable, command="benchmark", create=True)
    assert (resumable / "extra.txt").exists()
    with pytest.raises(UsageError, match="also holds"):
        prepare_output_dir(folder, command="reproduce", create=True, fresh=True)
