"""Few-shot examples drawn from the judged items are refused unless --allow-overlap (issue 12)."""

from __future__ import annotations

import json

import pytest

from mhsafety.data import OverlapError, write_examples
from mhsafety.judge.runner import run_judge
from mhsafety.records import NOTE_SHOTS_FROM_JUDGED

from .conftest import settings


def test_shots_from_the_judged_items_are_refused(server, small_examples, tmp_path):
    train = small_examples
    judged = small_examples[:6]
    with pytest.raises(OverlapError, match=r"^6 of the 6 items of judged\.json .* ids "):
        run_judge(judged, tmp_path / "out", settings(server, shots=8), train=train,
                  data_source="judged.json", train_source="train.json", show_progress=False)
    assert server.requests == 0  # refused before anything was sent


def test_allow_overlap_runs_marks_the_run_and_keeps_self_excluded(server, small_examples,
                                                                  tmp_path):
    judged = small_examples[:6]
    result = run_judge(judged, tmp_path / "out", settings(server, shots=8), train=small_examples,
                       show_progress=False, allow_overlap=True)
    assert result.summary["answered"] == 6
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert NOTE_SHOTS_FROM_JUDGED in json.dumps(manifest)
    records = [json.loads(line) for p in (tmp_path / "out" / "preds").glob("*.preds.jsonl")
               for line in p.read_text(encoding="utf-8").splitlines()]
    assert records and all(NOTE_SHOTS_FROM_JUDGED in r.get("notes", []) for r in records)


def test_disjoint_training_file_is_not_refused(server, small_examples, tmp_path):
    result = run_judge(small_examples[:4], tmp_path / "out", settings(server, shots=8),
                       train=small_examples[4:], show_progress=False)
    assert result.summary["answered"] == 4


def test_cli_refuses_in_one_line_and_allow_overlap_runs(server, small_examples, tmp_path):
    import os
    import subprocess
    import sys

    data = tmp_path / "items.jsonl"
    write_examples(data, small_examples)
    base = [sys.executable, "-m", "mhsafety", "judge", "--data", str(data), "--model",
            "fake-judge", "--base-url", server.url, "--rounds", "1", "--shots", "8",
            "--train", str(data), "--quiet"]
    env = {**os.environ, "OPENAI_API_KEY": "x"}
    refused = subprocess.run(base + ["--out", str(tmp_path / "a")], env=env, check=False,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2, refused.stderr
    lines = [ln for ln in refused.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--allow-overlap" in lines[0] and "Traceback" not in lines[0]
    assert f"{len(small_examples)} of the {len(small_examples)} items" in lines[0]
    ran = subprocess.run(base + ["--out", str(tmp_path / "b"), "--allow-overlap"], env=env,
                         check=False, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    table = subprocess.run([sys.executable, "-m", "mhsafety", "evaluate", str(tmp_path / "b")],
                           env=env, check=True, capture_output=True, text=True, timeout=120)
    assert "shots drawn from the judged items" in table.stdout
