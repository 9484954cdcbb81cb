"""Issue 20: the harness few-shot routes apply the overlap rule and record shots, protocol
and overlap, so their rows read back labelled right; evaluate keeps producers apart."""

from __future__ import annotations

import json

import pytest
import yaml

import mhsafety.integrations.harness_logs  # noqa: F401 - registers the readers
from mhsafety.cli import main
from mhsafety.data import OverlapError
from mhsafety.records import NOTE_SHOTS_FROM_JUDGED, PredictionRecord, load_runs, write_records

from .conftest import need


def _spaced_copy(small_items, tmp_path):
    """The same items with a space after each role tag: the same items to the check."""
    path = tmp_path / "spaced.jsonl"
    path.write_text("".join(json.dumps({
        "id": f"copy-{ex.id}", "context": ex.context.replace("]", "] "),
        "response": ex.response.replace("]", "] "), "label": ex.label}, ensure_ascii=False)
        + "\n" for ex in small_items), encoding="utf-8")
    return path


def test_inspect_few_shot_from_the_judged_items_is_refused_or_marked(small_items, small_file,
                                                                      tmp_path):
    need("inspect_ai", "inspect")
    from mhsafety.integrations.inspect_task import dialogue_safety

    for train in (small_file, _spaced_copy(small_items, tmp_path)):
        with pytest.raises(OverlapError, match="34 of the 34 items.*-T allow_overlap=true"):
            dialogue_safety(data=str(small_file), shots=8, train=str(train))
    task = dialogue_safety(data=str(small_file), shots=8, train=str(small_file),
                           allow_overlap="true")
    recorded = task.metadata["mhsafety"]
    assert recorded["shots"] == 8 and recorded["protocol"] == "flat"
    assert recorded["overlap"] == 34 and recorded["notes"] == [NOTE_SHOTS_FROM_JUDGED]
    zero = dialogue_safety(data=str(small_file)).metadata["mhsafety"]
    assert zero["shots"] == 0 and zero["overlap"] == 0 and zero["notes"] == []


def _run(argv, capsys):
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class _Loader(yaml.SafeLoader):
    """lm-eval's YAML with its !function tags read as plain strings."""


_Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def test_lmeval_few_shot_export_refuses_overlap_and_records_shots(small_file, tmp_path,
                                                                  capsys):
    out = tmp_path / "task"
    code, _, err = _run(["export-task", "lm-eval", "--data", str(small_file), "--out", str(out),
                         "--shots", "8", "--train", str(small_file)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "34 of the 34" in err
    assert not out.exists()
    code, _, err = _run(["export-task", "lm-eval", "--data", str(small_file), "--out", str(out),
                         "--shots", "8", "--train", str(small_file), "--allow-overlap"], capsys)
    assert code == 0, err
    config = yaml.load((out / "mhsafety_dialogue_safety.yaml").read_text("utf-8"), _Loader)
    recorded = config["metadata"]["mhsafety"]
    assert recorded["shots"] == 8 and recorded["protocol"] == "flat"
    assert recorded["overlap"] == 34 and recorded["notes"] == [NOTE_SHOTS_FROM_JUDGED]
    # lm-eval copies the task config (metadata included) into its results file.
    folder = tmp_path / "lm" / "gpt-3.5-turbo-0613"
    folder.mkdir(parents=True)
    (folder / "results_2026-01-01T00-00-00.json").write_text(json.dumps(
        {"model_name": "gpt-3.5-turbo-0613",
         "configs": {"mhsafety_dialogue_safety": {"metadata": config["metadata"]}}}))
    (folder / "samples_mhsafety_dialogue_safety_2026-01-01T00-00-00.jsonl").write_text(
        json.dumps({"doc_id": 0, "doc": {"id": "0", "label": 7}, "resps": [["Safe Response"]],
                    "filtered_resps": ["Safe Response"]}) + "\n")
    [(name, [run])] = load_runs([tmp_path / "lm"]).items()
    assert name == "gpt-3.5-turbo-0613 few-shot"  # not "zero-shot"
    assert run.notes == [NOTE_SHOTS_FROM_JUDGED]


def test_evaluate_keeps_a_judges_rounds_and_an_lmeval_run_apart(tmp_path, capsys):
    """`evaluate runs/j0613z runs/lm-eval` merged five judge rounds and an lm-eval run into
    "6 runs", round one counted twice."""
    system = "gpt-3.5-turbo-0613 zero-shot"
    judge = tmp_path / "judge"
    judge.mkdir()
    for r in range(1, 6):
        write_records(judge / f"round-{r}.preds.jsonl",
                      [PredictionRecord(str(i), 7, 7 if i % r else 0, system, str(r))
                       for i in range(10)])
    lm = tmp_path / "lm" / "gpt-3.5-turbo-0613"
    lm.mkdir(parents=True)
    (lm / "results_2026-01-01T00-00-00.json").write_text(json.dumps(
        {"model_name": "gpt-3.5-turbo-0613", "configs": {}}))
    (lm / "samples_mhsafety_dialogue_safety_2026-01-01T00-00-00.jsonl").write_text("".join(
        json.dumps({"doc_id": i, "doc": {"id": str(i), "label": 7},
                    "resps": [["Safe Response"]], "filtered_resps": ["Safe Response"]}) + "\n"
        for i in range(8)))
    systems = load_runs([judge, tmp_path / "lm"])
    assert [len(runs) for runs in systems.values()] == [5, 1]
    assert list(systems) == [f"{system} (mhsafety)", f"{system} (lm-eval)"]
    code, table, _ = _run(["evaluate", str(judge), str(tmp_path / "lm")], capsys)
    assert code == 0
    rows = [line for line in table.splitlines() if line.startswith(f"| {system}")]
    assert len(rows) == 2
    assert "|    5 | 10 |" in rows[0] and "|    1 |  8 |" in rows[1]  # runs and n per row


def test_evaluate_refuses_runs_over_different_items_unless_asked(tmp_path, capsys):
    write_records(tmp_path / "a.preds.jsonl",
                  [PredictionRecord(str(i), 7, 7, "S", "1") for i in range(10)])
    write_records(tmp_path / "b.preds.jsonl",
                  [PredictionRecord(str(i), 7, 7, "S", "2") for i in range(7)])
    code, _, err = _run(["evaluate", str(tmp_path)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--allow-different-items" in err
    code, table, _ = _run(["evaluate", str(tmp_path), "--allow-different-items"], capsys)
    assert code == 0 and "runs scored on different item sets" in table and "7–10" in table
