"""A judge that cannot answer abstains through the classifier interface: the guard says
"unverified" with the reason, the record says pred null with the same reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from mhsafety.testing.fakeserver import FakeServer, constant


def _mhsafety(*args, env=None):
    return subprocess.run([sys.executable, "-m", "mhsafety", *args], check=False,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OPENAI_API_KEY": "sk-abstain", **(env or {})})


def test_judge_that_cannot_tell_is_unverified_in_check_and_null_in_records(small_examples,
                                                                           tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"id": ex.id, "context": ex.context, "label": ex.label,
                                         "response": ex.response}, ensure_ascii=False) + "\n"
                             for ex in small_examples[:4]), "utf-8")
    ckpt = tmp_path / "judge-ckpt"
    with FakeServer(constant("I cannot tell.")) as server:
        trained = _mhsafety("train", "--model", f"judge:fake-judge@{server.url}",
                            "--train", str(train), "--out", str(ckpt),
                            "--config", f"work_dir={tmp_path / 'work'}", "--config", "rounds=1")
        assert trained.returncode == 0, trained.stderr
        checked = _mhsafety("check", "reply", "--checkpoint", str(ckpt), "--context",
                            "[seeker]I cannot sleep.", "--response", "[supporter]Try counting.")
        predicted = _mhsafety("predict", "--checkpoint", str(ckpt), "--data", str(train),
                              "--out", str(tmp_path / "preds.jsonl"), "--allow-overlap")
    assert checked.returncode == 0, checked.stderr
    result = json.loads(checked.stdout)
    assert result["decision"] == "unverified"
    assert result["safe"] is False
    assert "unparseable answer: 'I cannot tell.'" in result["reason"]

    assert predicted.returncode == 0, predicted.stderr
    records = [json.loads(line) for line in
               (tmp_path / "preds.jsonl").read_text("utf-8").splitlines()]
    assert len(records) == 4
    assert all(r["pred"] is None and "probs" not in r for r in records)
    assert all(r["error"] == "unparseable answer: 'I cannot tell.'" for r in records)
