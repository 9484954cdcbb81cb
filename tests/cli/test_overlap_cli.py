"""Issue 20: `predict` and `evaluate` refuse items a checkpoint was trained on (copies changed
in no meaning included), or mark them with --allow-overlap."""

from __future__ import annotations

import json

import pytest

from mhsafety.cli import main
from mhsafety.data import write_examples
from mhsafety.records import NOTE_OVERLAP, NOTE_TEXTS, read_records, write_records
from tests.helpers.cli import FAST, run


@pytest.fixture(scope="module")
def trained(test_examples, tmp_path_factory):
    """A baseline trained on 160 items, the file with all 320 (half seen), and the held-out
    160."""
    folder = tmp_path_factory.mktemp("overlap")
    train, held_out = test_examples[::5], test_examples[1::5]
    write_examples(folder / "train.jsonl", train)
    write_examples(folder / "all.jsonl", [*train, *held_out])
    write_examples(folder / "held_out.jsonl", held_out)
    main(["train", "--train", str(folder / "train.jsonl"), "--out", str(folder / "ckpt"), *FAST])
    return folder


def test_predict_refuses_data_the_checkpoint_was_trained_on(trained, tmp_path, capsys):
    code, _, err = run(["predict", "--checkpoint", str(trained / "ckpt"), "--data",
                        str(trained / "all.jsonl"), "--out", str(tmp_path / "p.jsonl")], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "160 of the 320 items" in lines[0]
    assert "--allow-overlap" in lines[0] and not (tmp_path / "p.jsonl").exists()


def test_predict_refuses_near_duplicates_of_training_items(trained, test_examples, tmp_path,
                                                          capsys):
    altered = tmp_path / "altered.json"
    items = [{"id": ex.id,
              "context": ex.context.replace("[seeker]", "[Seeker] ").replace("，", ", "),
              "response": ex.response.replace("[supporter]", "[SUPPORTER]\u200b") + "\n",
              "label": ex.label} for ex in test_examples[::5]]
    altered.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    code, _, err = run(["predict", "--checkpoint", str(trained / "ckpt"), "--data", str(altered),
                        "--out", str(tmp_path / "p.jsonl")], capsys)
    assert code == 2 and "160 of the 160 items" in err


def test_allow_overlap_marks_every_row_and_evaluate_shows_it(trained, tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    code, _, err = run(["predict", "--checkpoint", str(trained / "ckpt"), "--data",
                        str(trained / "all.jsonl"), "--out", str(out), "--allow-overlap"],
                       capsys)
    assert code == 0, err
    assert all(NOTE_OVERLAP in rec.notes for rec in read_records(out))
    code, table, _ = run(["evaluate", str(out)], capsys)
    assert code == 0 and NOTE_TEXTS[NOTE_OVERLAP] in table


def test_evaluate_refuses_unmarked_records_of_seen_items(trained, tmp_path, capsys):
    """Records made before predict checked (or edited afterwards) are checked again: by the
    checkpoint they name, or one given with --checkpoint/--data."""
    out = tmp_path / "p.jsonl"
    run(["predict", "--checkpoint", str(trained / "ckpt"), "--data", str(trained / "all.jsonl"),
         "--out", str(out), "--allow-overlap"], capsys)
    records = read_records(out)
    for rec in records:
        rec.notes = []
    write_records(out, records)
    code, _, err = run(["evaluate", str(out)], capsys)
    assert code == 2 and "160 of the 320 items" in err and "ckpt" in err
    for rec in records:  # an old file: no checkpoint, no fingerprints
        rec.meta = {}
    write_records(out, records)
    code, _, _ = run(["evaluate", str(out)], capsys)
    assert code == 0  # nothing tells which checkpoint made it
    code, _, err = run(["evaluate", str(out), "--checkpoint", str(trained / "ckpt"), "--data",
                        str(trained / "all.jsonl")], capsys)
    assert code == 2 and "160 of the 320 items" in err
    code, table, _ = run(["evaluate", str(out), "--checkpoint", str(trained / "ckpt"),
                          "--data", str(trained / "all.jsonl"), "--allow-overlap"], capsys)
    assert code == 0 and NOTE_TEXTS[NOTE_OVERLAP] in table


def test_held_out_part_predicts_and_scores_without_a_note(trained, tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    code, _, err = run(["predict", "--checkpoint", str(trained / "ckpt"), "--data",
                        str(trained / "held_out.jsonl"), "--out", str(out)], capsys)
    assert code == 0, err
    code, table, err = run(["evaluate", str(out)], capsys)
    assert code == 0 and NOTE_TEXTS[NOTE_OVERLAP] not in table and "warning" not in err
    assert "| n " in table and " 160 |" in table


def test_old_checkpoint_with_version_1_fingerprints_warns(trained, tmp_path, capsys):
    import shutil

    from mhsafety.data import item_fingerprints, load_examples

    old = tmp_path / "old"
    shutil.copytree(trained / "ckpt", old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["fingerprint_version"]
    manifest["train_item_fingerprints"] = item_fingerprints(
        load_examples(trained / "train.jsonl"), version=1)
    (old / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run(["predict", "--checkpoint", str(old), "--data",
                        str(trained / "all.jsonl"), "--out", str(tmp_path / "p.jsonl")], capsys)
    assert code == 2 and "160 of the 320" in err  # exact copies are still found
    code, _, err = run(["predict", "--checkpoint", str(old), "--data",
                        str(trained / "held_out.jsonl"), "--out", str(tmp_path / "p.jsonl")],
                       capsys)
    assert code == 0 and "warning:" in err and "version-1" in err
