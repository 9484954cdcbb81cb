"""The lm-eval task folder: its functions, and `lm_eval --model local-chat-completions`
against the scripted server, read back into `mhsafety evaluate` like `mhsafety judge`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mhsafety.metrics import compute_metrics

from .conftest import need, scripted_answer

REPO = Path(__file__).resolve().parents[2]


def _env():
    return {**os.environ, "OPENAI_API_KEY": "test-key",
            "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_export_task_writes_a_folder_that_reads_the_data_in_place(small_file, tmp_path):
    out = tmp_path / "task"
    subprocess.run([sys.executable, "-m", "mhsafety", "export-task", "lm-eval", "--data",
                    str(small_file), "--out", str(out)], check=True, env=_env(), timeout=120)
    assert sorted(p.name for p in out.iterdir()) == [
        ".mhsafety-output.json", "mhsafety_dialogue_safety.yaml", "mhsafety_task.json",
        "utils.py"]  # the first: the output marker (io.OUTPUT_MARKER)
    settings = json.loads((out / "mhsafety_task.json").read_text())
    assert settings["data"] == str(small_file.resolve())
    assert small_file.read_text(encoding="utf-8")[:40] not in \
        (out / "mhsafety_dialogue_safety.yaml").read_text(encoding="utf-8")


@pytest.mark.slow
def test_task_functions_parse_and_score_as_the_project_does(small_items, small_file):
    need("datasets", "lmeval")
    from mhsafety.integrations.lmeval import (
        LmEvalSettings,
        TaskFunctions,
        aggregate_accuracy,
        aggregate_invalid,
        aggregate_weighted_f1,
        task_metrics,
    )
    from mhsafety.judge.parse import parse_tolerant

    fns = TaskFunctions(LmEvalSettings(data=str(small_file)))
    docs = list(fns.load_dataset()["test"])
    assert [d["id"] for d in docs] == [ex.id for ex in small_items]
    assert docs[0]["context"] in fns.doc_to_text(docs[0])
    answers = [[scripted_answer(i, d["label"])] for i, d in enumerate(docs)]
    filtered = fns.parse_answers(answers, docs)
    assert filtered[3] == ["[invalid]"] and filtered[0] == [fns.doc_to_target(docs[0])]
    pairs = [fns.process_results(d, f)["acc"] for d, f in zip(docs, filtered)]
    assert set(fns.process_results(docs[0], filtered[0])) == set(task_metrics())
    assert set(task_metrics()) == {"acc", "weighted_f1", "macro_f1", "unsafe_recall",
                                   "invalid"}
    expected = compute_metrics([ex.label for ex in small_items],
                               [parse_tolerant(a[0]) for a in answers])
    assert aggregate_accuracy(pairs) == pytest.approx(expected.accuracy)
    assert aggregate_weighted_f1(pairs) == pytest.approx(expected.f1)
    assert aggregate_invalid(pairs) == pytest.approx(expected.n_invalid / len(docs))


def test_few_shot_export_needs_a_training_file(small_file, tmp_path):
    out = subprocess.run([sys.executable, "-m", "mhsafety", "export-task", "lm-eval", "--data",
                          str(small_file), "--out", str(tmp_path / "t"), "--shots", "8"],
                         env=_env(), check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--train" in out.stderr
    assert not (tmp_path / "t").exists()


@pytest.mark.slow
def test_lm_eval_local_chat_completions_matches_mhsafety_judge(
        small_file, scripted_server, tmp_path):
    need("lm_eval", "lmeval")
    task = tmp_path / "task"
    env = _env()
    subprocess.run([sys.executable, "-m", "mhsafety", "export-task", "lm-eval", "--data",
                    str(small_file), "--out", str(task)], check=True, env=env, timeout=120)
    model_args = (f"model=fake-judge,base_url={scripted_server.url}/chat/completions,"
                  "num_concurrent=4,max_retries=1,tokenized_requests=False")
    subprocess.run([sys.executable, "-m", "lm_eval", "--model", "local-chat-completions",
                    "--model_args", model_args, "--apply_chat_template", "--include_path",
                    str(task), "--tasks", "mhsafety_dialogue_safety", "--log_samples",
                    "--output_path", str(tmp_path / "lm")], check=True, env=env, cwd=tmp_path,
                   timeout=600, capture_output=True)
    [samples] = (tmp_path / "lm").rglob("samples_mhsafety_dialogue_safety_*.jsonl")
    # The task's metadata (shots, protocol, overlap) reaches lm-eval's results file, where
    # the sample reader labels the rows from it.
    [results] = (tmp_path / "lm").rglob("results_*.json")
    recorded = json.loads(results.read_text("utf-8"))["configs"][
        "mhsafety_dialogue_safety"]["metadata"]["mhsafety"]
    assert recorded["shots"] == 0 and recorded["protocol"] == "flat" and recorded["overlap"] == 0
    subprocess.run([sys.executable, "-m", "mhsafety", "judge", "--data", str(small_file),
                    "--model", "fake-judge", "--base-url", scripted_server.url, "--out",
                    str(tmp_path / "judge"), "--rounds", "1", "--quiet"], check=True, env=env,
                   timeout=300)

    def scores(path):
        out = subprocess.run([sys.executable, "-m", "mhsafety", "evaluate", str(path),
                              "--format", "json", "--extra"], check=True, env=env,
                             capture_output=True, text=True, timeout=120).stdout
        [row] = json.loads(out)
        return row["invalid"], {k: v["mean"] for k, v in row["scores"].items()}

    # A folder works as well as the file: the reader finds lm-eval's samples in it.
    from_lm_eval, from_judge = scores(tmp_path / "lm"), scores(tmp_path / "judge")
    assert from_lm_eval == from_judge
    assert from_lm_eval[0] > 0 and 0 < from_lm_eval[1]["accuracy"] < 1
    assert scores(samples) == from_lm_eval
