import json
import os

import pytest

from mhsafety import io as mio
from mhsafety.errors import DataError
from mhsafety.records import (
    NOTE_OVERLAP,
    NOTE_SELECTED_ON_TEST,
    NOTE_SHOTS_FROM_JUDGED,
    NOTE_TEXTS,
    PredictionRecord,
    load_runs,
    note_text,
    read_records,
    write_records,
)
from mhsafety.scoring import score_paths


def _recs(system, run, preds, gold=(7, 2, 0)):
    return [PredictionRecord(str(i), g, p, system, run) for i, (g, p) in enumerate(zip(gold, preds))]


def test_round_trip_with_optional_fields(tmp_path):
    rec = PredictionRecord("a", 7, None, "s", "1", probs=[0.125] * 8, raw="Safe?", error="no label",
                           meta={"model": "m"}, notes=[NOTE_SELECTED_ON_TEST, "5-fold CV"])
    path = write_records(tmp_path / "r.preds.jsonl", [rec])
    line = json.loads(path.read_text(encoding="utf-8"))
    assert line["schema_version"] == 1 and line["pred"] is None
    assert line["notes"] == ["selected-on-test", "5-fold CV"]
    assert read_records(path)[0] == rec


def test_notes_of_older_files_and_producers_become_codes(tmp_path):
    """Notes once lived in meta.notes as texts; they are read as the documented codes."""
    path = tmp_path / "old.preds.jsonl"
    path.write_text('{"id": "a", "gold": 7, "pred": 7, "meta": {"notes": '
                    '["epoch picked on the test set", "5-fold CV"], "model": "m"}}\n',
                    encoding="utf-8")
    rec = read_records(path)[0]
    assert rec.notes == [NOTE_SELECTED_ON_TEST, "5-fold CV"] and rec.meta == {"model": "m"}
    # a producer that still sets meta["notes"] after building the record is not lost
    late = PredictionRecord("b", 7, 7)
    late.meta = {"notes": [NOTE_TEXTS[NOTE_SHOTS_FROM_JUDGED]]}
    assert late.to_dict()["notes"] == [NOTE_SHOTS_FROM_JUDGED] and "meta" not in late.to_dict()
    assert [note_text(n) for n in rec.notes] == ["epoch picked on the test set", "5-fold CV"]
    bad = tmp_path / "bad.preds.jsonl"
    bad.write_text('{"id": "a", "gold": 7, "pred": 7, "notes": "x"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="field 'notes' must be a list of strings"):
        read_records(bad)


def test_every_table_row_shows_the_texts_of_its_notes(tmp_path):
    recs = [PredictionRecord(str(i), 7, 7, "S", "1", notes=[NOTE_OVERLAP]) for i in range(3)]
    write_records(tmp_path / "s.preds.jsonl", recs)
    from mhsafety.tables import format_table

    scores = score_paths([tmp_path])
    assert scores.systems[0].notes == [NOTE_OVERLAP]
    for fmt in ("markdown", "latex", "csv", "json"):
        assert NOTE_TEXTS[NOTE_OVERLAP] in format_table(scores.rows, fmt), fmt


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"id": "a", "gold": 7}', "missing field 'pred'"),
        ('{"id": "a", "gold": 9, "pred": 1}', "field 'gold' must be an integer 0..7 or null"),
        ('{"id": "a", "gold": 1, "pred": "1"}', "field 'pred' must be an integer 0..7 or null"),
        ('{"id": "a", "gold": 1, "pred": 1, "probs": [1]}', "field 'probs' must be a list of 8"),
        ('{"id": "a", "gold": 1, "pred": 1, "schema_version": 9}', "schema_version 9"),
        ('{"id": "a", "gold": 1, ', "invalid JSON at line 2, column 24"),
    ],
)
def test_bad_records_name_file_and_line(tmp_path, line, expected):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"id": "z", "gold": 1, "pred": 1}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_records(p)
    assert str(p) in str(err.value) and "line 2" in str(err.value)
    assert expected in str(err.value)


def test_runs_grouped_by_system_and_checked(tmp_path):
    write_records(tmp_path / "a" / "1.preds.jsonl", _recs("A", "1", [7, 2, 0]))
    write_records(tmp_path / "a" / "2.preds.jsonl", _recs("A", "2", [7, 7, None]))
    write_records(tmp_path / "b.preds.jsonl", _recs("B", "1", [2, 2, 2]))
    runs = load_runs([tmp_path])
    assert list(runs) == ["A", "B"] and len(runs["A"]) == 2
    systems = score_paths([tmp_path]).systems
    a = systems[0]
    assert a.scores["accuracy"].values == pytest.approx([1.0, 1 / 3])
    assert a.n_invalid == 1


def test_runs_with_different_items_are_refused(tmp_path):
    write_records(tmp_path / "1.preds.jsonl", _recs("A", "1", [7, 2, 0]))
    write_records(tmp_path / "2.preds.jsonl", _recs("A", "2", [7, 2], gold=(7, 2)))
    with pytest.raises(DataError, match="covers different items"):
        load_runs([tmp_path])


def test_atomic_write_leaves_old_file_on_crash(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError), mio.atomic_write(target) as handle:
        handle.write("half")
        raise RuntimeError("crash")
    assert target.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["out.txt"]  # no temporary file left behind


def test_atomic_write_of_records_never_shows_a_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "r.preds.jsonl"
    write_records(target, _recs("A", "1", [7, 2, 0]))

    def exploding():
        yield from _recs("A", "2", [1, 1, 1])[:2]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_records(target, exploding())
    assert [r.run for r in read_records(target)] == ["1", "1", "1"]


def test_atomic_directory_swaps_only_on_success(tmp_path):
    target = tmp_path / "ckpt"
    with mio.atomic_directory(target) as tmp:
        (tmp / "a").write_text("1", encoding="utf-8")
    with pytest.raises(ValueError), mio.atomic_directory(target) as tmp:
        (tmp / "a").write_text("2", encoding="utf-8")
        raise ValueError
    assert (target / "a").read_text(encoding="utf-8") == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with mio.atomic_write(tmp_path / "f.txt") as handle:
            handle.write("x")
        with mio.atomic_directory(tmp_path / "d"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_binary_fields_round_trip_and_are_checked(tmp_path):
    from mhsafety.errors import DataError
    from mhsafety.records import (
        NOTE_BINARY_ONLY,
        PredictionRecord,
        read_records,
        record_from_dict,
        write_records,
    )

    rec = PredictionRecord("1", 3, None, unsafe=True, p_unsafe=0.8, notes=[NOTE_BINARY_ONLY])
    back = read_records(write_records(tmp_path / "r.preds.jsonl", [rec]))[0]
    assert (back.pred, back.unsafe, back.p_unsafe, back.error) == (None, True, 0.8, None)
    assert back.said_unsafe is True and PredictionRecord("2", 7, 7).said_unsafe is False
    with pytest.raises(DataError, match="disagrees"):
        record_from_dict({"id": "1", "pred": 7, "unsafe": True}, "x")
    with pytest.raises(DataError, match="p_unsafe"):
        record_from_dict({"id": "1", "pred": None, "p_unsafe": 1.5}, "x")
    with pytest.raises(DataError, match="'unsafe'"):
        record_from_dict({"id": "1", "pred": None, "unsafe": "yes"}, "x")
