"""The SQLite store: import, foreign files, annotate/skip/undo, progress, export."""

from __future__ import annotations

import json
import sqlite3

import pytest

from mhsafety.annotate.agreement import agreement_report, export_adjudicated, format_report
from mhsafety.annotate.store import APPLICATION_ID, import_file, open_store
from mhsafety.data import load_examples
from mhsafety.errors import DataError, UsageError


def test_import_keeps_gold_and_is_idempotent(store, small_data):
    assert [ex.label for ex in store.examples()] == [0, 1, 3, 7]
    again = import_file(store, small_data)
    assert (again.added, again.unchanged) == (0, 4)


def test_import_of_unlabelled_items_then_gold_for_audit(tmp_path):
    path = tmp_path / "raw.jsonl"
    path.write_text('{"id": "a", "context": "[seeker]hi", "response": "[supporter]hello"}\n')
    s = open_store(tmp_path / "db.sqlite")
    assert import_file(s, path).added == 1
    assert s.examples()[0].label is None
    path.write_text('{"id": "a", "context": "[seeker]hi", "response": "[supporter]hello", '
                    '"label": 7}\n')
    assert import_file(s, path).gold_added == 1
    assert s.examples()[0].label == 7


def test_import_refuses_a_clashing_id_and_imports_nothing(store, tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"context": "[seeker]x", "response": "[supporter]new"},
                                 {"context": "[seeker]y", "response": "[supporter]z"}]))
    with pytest.raises(DataError, match=r"item id '0' is already in .*an id prefix"):
        import_file(store, other)
    assert store.item_count() == 4
    assert import_file(store, other, id_prefix="b-").added == 2


def test_invalid_item_is_rejected_with_its_index(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"context": "[seeker]a", "response": "[supporter]b"},
                               {"context": "[seeker]a", "response": ""}]))
    s = open_store(tmp_path / "db.sqlite")
    with pytest.raises(DataError, match=r"bad.json item 1: field 'response' is empty"):
        import_file(s, bad)
    assert s.item_count() == 0


def test_foreign_sqlite_database_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE annotations (x)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(DataError, match="not an mhsafety annotation database"):
        open_store(path)
    assert path.read_bytes() == before


def test_non_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("just some text, not a database\n" * 10)
    with pytest.raises(DataError, match="not an SQLite database"):
        open_store(path)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "db.sqlite"
    open_store(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(DataError, match="newer"):
        open_store(path)


def test_marker_and_missing_db(tmp_path, store):
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    with pytest.raises(DataError, match="no such annotation database"):
        open_store(tmp_path / "missing.sqlite", create=False)


def test_annotate_skip_undo_and_progress(store):
    store.register("ann")
    assert store.next_item("ann")[0].id == "0"
    store.record("ann", "0", [True, False, False, True], comment="  fine ", seconds=3.5)
    store.skip("ann", "1")
    assert store.next_item("ann")[0].id == "2"
    store.record("ann", "2", [True, False, True])
    store.record("ann", "3", [False])
    nxt, skipped_before = store.next_item("ann")  # only the skipped item is left
    assert (nxt.id, skipped_before) == ("1", True)
    (p,) = store.progress("ann")
    assert (p.labelled, p.skipped, p.remaining) == (3, 1, 1)

    undone = store.undo("ann")  # the last write: item 3
    assert (undone["item_id"], undone["label"]) == ("3", 0)
    assert store.next_item("ann")[0].id == "3"
    row = {r["item_id"]: r for r in store.annotations()}["0"]
    assert (row["label"], row["comment"], row["seconds"]) == (7, "fine", 3.5)
    assert row["started_at"] <= row["created_at"]
    with pytest.raises(UsageError, match="already labelled"):
        store.skip("ann", "0")
    actions = [e["action"] for e in store.events()]
    assert actions == ["import", "label", "skip", "label", "label", "undo"]


def test_unknown_annotator_and_item_are_refused(store):
    with pytest.raises(UsageError, match="sign in"):
        store.record("nobody", "0", [False])
    store.register("ann")
    with pytest.raises(DataError, match="no item with id 'zz'"):
        store.record("ann", "zz", [False])
    with pytest.raises(UsageError, match="empty"):
        store.register("   ")


def _annotate_all(store, name, labels):
    from mhsafety.taxonomy import path_for_label

    store.register(name)
    for item_id, label in labels.items():
        leaf = label if label in (3, 4, 5, 6) else None
        store.record(name, item_id, path_for_label(label), leaf)


def test_agreement_report_and_export_with_ties(store, tmp_path):
    _annotate_all(store, "a", {"0": 0, "1": 1, "2": 3, "3": 7})
    _annotate_all(store, "b", {"0": 0, "1": 2, "2": 3, "3": 7})
    _annotate_all(store, "c", {"0": 0, "1": 7, "2": 4})
    report = agreement_report(store)
    assert report["annotations"] == 11 and report["annotators"] == ["a", "b", "c"]
    assert report["label"]["fleiss"]["items"] == 3 and report["label"]["fleiss"]["raters"] == 3
    assert {(p["a"], p["b"]): p["items"] for p in report["pairs"]} == {
        ("a", "b"): 4, ("a", "c"): 3, ("b", "c"): 3}
    ab = report["pairs"][0]
    assert ab["observed"] == pytest.approx(0.75)
    node1 = report["nodes"][0]
    assert node1["observed"] == 1.0  # everybody answered node 1 the same way everywhere
    gold = {g["annotator"]: g["accuracy"] for g in report["gold"]["annotators"]}
    assert gold == {"a": 1.0, "b": pytest.approx(0.75), "c": pytest.approx(1 / 3)}
    text = format_report(report)
    assert "Krippendorff" in text and "a / b: 4 shared items" in text

    out = tmp_path / "adjudicated.jsonl"
    summary = export_adjudicated(store, out)
    assert summary["tied"] == ["1"]  # votes 1, 2, 7: no majority
    exported = load_examples(out)
    assert [(ex.id, ex.label) for ex in exported] == [("0", 0), ("2", 3), ("3", 7)]
    assert exported[1].meta["votes"] == {"3": 2, "4": 1} and exported[1].meta["tie"] is False

    out2 = tmp_path / "round2.json"
    export_adjudicated(store, out2, ties="unlabelled", min_annotators=3)
    again = load_examples(out2, require_label=False)
    assert [(ex.id, ex.label, ex.meta["tie"]) for ex in again] == [
        ("0", 0, False), ("1", None, True), ("2", 3, False)]


def test_export_with_nothing_to_export_writes_nothing(store, tmp_path):
    out = tmp_path / "x.json"
    with pytest.raises(DataError, match="nothing was written"):
        export_adjudicated(store, out)
    assert not out.exists()
    with pytest.raises(DataError, match="no annotations yet"):
        agreement_report(store)


def test_labels_made_elsewhere_become_an_annotators_answers(store, small_data, tmp_path):
    from mhsafety.annotate.store import import_annotations
    from mhsafety.taxonomy import path_for_label

    examples = load_examples(small_data)
    theirs = tmp_path / "theirs.jsonl"
    # Another annotator who calls everything Toxic Language (a leaf of node 4).
    theirs.write_text("\n".join(json.dumps({**ex.to_dict(), "label": 4}) for ex in examples),
                      encoding="utf-8")
    result, count = import_annotations(store, theirs, "other-tool")
    assert result.added == 0 and count == len(examples)
    rows = [r for r in store.annotations() if r["annotator"] == "other-tool"]
    assert {r["label"] for r in rows} == {4}
    assert all(r["answers"] == path_for_label(4) and r["leaf"] == 4 for r in rows)
    # Gold labels are untouched, so agreement with gold reflects the imported labels.
    assert [ex.label for ex in store.examples()] == [ex.label for ex in examples]
    report = agreement_report(store)
    [gold] = [a for a in report["gold"]["annotators"] if a["annotator"] == "other-tool"]
    assert gold["accuracy"] == pytest.approx(
        sum(ex.label == 4 for ex in examples) / len(examples))
