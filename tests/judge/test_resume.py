"""Resume and durability: kill -9 mid-run, torn lines, changed prompts or models, secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from mhsafety.judge.prompts import PromptTemplate, load_template
from mhsafety.judge.runner import run_judge

from .conftest import settings


def _answers(out: Path, round_no: int, skip: str | None = None) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in (out / "log" / f"round-{round_no}.jsonl").read_text("utf-8").splitlines():
        if skip and skip in line:
            continue
        entry = json.loads(line)  # every other line must be whole JSON after the rerun
        if "answer" in entry:
            counts[entry["id"]] += 1
    return counts


def test_kill_9_then_rerun_answers_each_item_once_per_round(server, test_json, tmp_path):
    server.latency = 0.01
    out = tmp_path / "run"
    env = {**os.environ, "OPENAI_API_KEY": "sk-kill-test-0000000000"}
    cmd = [sys.executable, "-m", "mhsafety", "judge", "--data", str(test_json),
           "--model", "fake-judge", "--base-url", server.url, "--out", str(out),
           "--rounds", "2", "--quiet", "--retry-base", "0.01"]
    proc = subprocess.Popen(cmd + ["--concurrency", "4"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log1 = out / "log" / "round-1.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline:
        if log1.exists() and log1.stat().st_size > 40_000:  # some hundred answers in
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = sum(_answers(out, 1).values())
    assert 0 < partial < 800  # really killed mid-run
    assert not (out / "preds").exists()

    done = subprocess.run(cmd + ["--concurrency", "32"], env=env, check=False, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr
    for r in (1, 2):
        counts = _answers(out, r)
        assert len(counts) == 800 and set(counts.values()) == {1}
        preds = (out / "preds" / f"round-{r}.preds.jsonl").read_text("utf-8").splitlines()
        assert len(preds) == 800
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert summary["answered"] == 1600 and summary["resumed"] >= partial
    assert server.answered <= 1600 + 4  # at most the requests in flight at the kill


def test_torn_last_line_is_cut_off_and_the_item_asked_again(server, small_examples,
                                                            tmp_path):
    items = small_examples[:4]
    run_judge(items, tmp_path, settings(server), show_progress=False)
    log = tmp_path / "log" / "round-1.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    # A garbled line in the middle (a disk error, a hand edit) and a write cut short by a crash.
    log.write_bytes(lines[0] + b"\x00\x00garbage\n" + b"".join(lines[1:-1]) + lines[-1][:25])
    before = server.requests
    result = run_judge(items, tmp_path, settings(server), show_progress=False)
    assert server.requests - before == 1
    assert result.summary["torn_lines_repaired"] == 1
    assert result.summary["answered"] == 4
    assert sorted(_answers(tmp_path, 1, skip="garbage").values()) == [1, 1, 1, 1]


def test_changed_prompt_or_model_never_reuses_old_answers(server, small_examples, tmp_path):
    items = small_examples[:5]
    run_judge(items, tmp_path, settings(server), show_progress=False)
    assert server.requests == 5
    run_judge(items, tmp_path, settings(server), show_progress=False)
    assert server.requests == 5  # same settings: all reused

    other = PromptTemplate(load_template(None).text.replace("exactly one", "one"), "edited")
    server.responder = lambda prompt, body: "Nonsense"
    result = run_judge(items, tmp_path, settings(server), template=other, show_progress=False)
    assert server.requests == 10
    assert result.summary["stale_ignored"] == 5
    assert [r.pred for r in result.records["1"]] == [0] * 5  # no old answer mixed in

    result = run_judge(items, tmp_path, settings(server, model="other-model"),
                       show_progress=False)
    assert server.requests == 15 and result.manifest["model_requested"] == "other-model"
    result = run_judge(items, tmp_path, settings(server, temperature=0.0),
                       show_progress=False)
    assert server.requests == 20
    # Nothing a user produced was lost: every answer is still in the log.
    assert len((tmp_path / "log" / "round-1.jsonl").read_text("utf-8").splitlines()) == 20


def test_api_key_is_sent_but_never_written(server, small_examples, tmp_path, monkeypatch):
    key = "sk-test-VERYSECRETKEY1234567890"
    monkeypatch.setenv("MY_JUDGE_KEY", key)
    server.faults.extend(["500", "429"])
    train = small_examples
    result = run_judge(small_examples[:8], tmp_path / "out",
                       settings(server, api_key_env="MY_JUDGE_KEY", shots=8, rounds=2,
                                vote=True),
                       train=train, show_progress=False, on_message=print,
                       allow_overlap=True)
    assert result.summary["answered"] == 16
    assert server.auth_headers == {f"Bearer {key}"}
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"manifest.json", "summary.json", "round-1.jsonl",
                                      "round-1.preds.jsonl", "vote.preds.jsonl"}
    for path in files:
        data = path.read_bytes()
        assert key.encode() not in data and b"VERYSECRET" not in data, path
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text("utf-8"))
    assert manifest["api_key_env"] == "MY_JUDGE_KEY"
    assert manifest["models_answered"] == {"fake-judge": 16}
    assert manifest["system_fingerprints"] == {"fp_fake": 16}
    assert set(manifest["few_shot"]["ids_per_round"]) == {"1", "2"}
    assert manifest["few_shot"]["excluded_self"] is True


def test_fewer_rounds_leave_no_stale_prediction_files(server, small_examples, tmp_path):
    items = small_examples[:3]
    run_judge(items, tmp_path, settings(server, rounds=3, vote=True), show_progress=False)
    names = sorted(p.name for p in (tmp_path / "preds").iterdir())
    assert names == ["round-1.preds.jsonl", "round-2.preds.jsonl", "round-3.preds.jsonl",
                     "vote.preds.jsonl"]
    run_judge(items, tmp_path, settings(server, rounds=2), show_progress=False)
    assert sorted(p.name for p in (tmp_path / "preds").iterdir()) == names[:2]
    assert server.requests == 9  # rounds 1-2 reused, nothing asked again
    assert len((tmp_path / "log" / "round-3.jsonl").read_text("utf-8").splitlines()) == 3


def test_two_runs_never_write_the_same_folder(server, small_examples, tmp_path):
    import pytest

    from mhsafety.errors import UsageError
    from mhsafety.judge.log import exclusive as _exclusive

    with _exclusive(tmp_path), pytest.raises(UsageError, match="another `mhsafety judge`"):
        run_judge(small_examples[:2], tmp_path, settings(server), show_progress=False)
    assert server.requests == 0
    run_judge(small_examples[:2], tmp_path, settings(server), show_progress=False)
    assert server.requests == 2
