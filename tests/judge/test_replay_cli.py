"""The whole path on real model output: a server replaying the release's gpt-3.5-turbo-0301
answers -> `mhsafety judge` -> prediction records -> `mhsafety evaluate` -> Table 2's row."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from mhsafety.cli import cli
from mhsafety.testing.fakeserver import FakeServer, ReplayResponder


def test_replayed_real_answers_give_the_papers_table_2_row(upstream_dir, test_json, tmp_path):
    replay = ReplayResponder(upstream_dir / "ChatGPT_gen" / "0301" / "zero_shot")
    out = tmp_path / "judge"
    with FakeServer(replay, model=replay.model) as server:
        done = subprocess.run(
            [sys.executable, "-m", "mhsafety", "judge", "--data", str(test_json),
             "--model", "gpt-3.5-turbo-0301", "--base-url", server.url, "--out", str(out),
             "--parser", "paper", "--concurrency", "64", "--quiet",
             "--system-name", "ChatGPT-0301 zero-shot (replay)"],
            env={**os.environ, "OPENAI_API_KEY": "sk-replay"}, check=False, capture_output=True,
            text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "answered 4000, failed 0, invalid answers 0" in done.stdout
    result = CliRunner().invoke(cli, ["evaluate", str(out)])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "replay" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    # System, Runs, n (items scored), then the four scores.
    figures = [tuple(float(x) for x in c.split(" ± ")) for c in cells[3:7]]
    # Table 2 recomputed from the release (benchmark.md section 5); 47.525 may round either way.
    paper = [(47.52, 0.64), (49.95, 0.73), (47.52, 0.64), (48.45, 0.69)]
    for (mean, std), (want_mean, want_std) in zip(figures, paper):
        assert abs(mean - want_mean) <= 0.011 and abs(std - want_std) <= 0.011, row
    # Each round got that round's real answers, item by item.
    round_two = {r["id"]: r["raw"] for r in map(json.loads, (out / "preds" / "round-2.preds.jsonl")
                                                .read_text("utf-8").splitlines())}
    for i in (0, 17, 399, 799):
        release = json.loads((upstream_dir / "ChatGPT_gen" / "0301" / "zero_shot" / "two"
                              / f"{i}.json").read_text("utf-8"))
        assert round_two[str(i)] == release["choices"][0]["message"]["content"]
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert manifest["models_answered"] == {"gpt-3.5-turbo-0301": 4000}


def test_judge_has_no_api_key_option():
    result = CliRunner().invoke(cli, ["judge", "--help"])
    assert result.exit_code == 0
    assert "--api-key-env" in result.output
    assert "--api-key " not in result.output and "--api-key=" not in result.output
    bad = CliRunner().invoke(cli, ["judge", "--api-key", "sk-x", "--model", "m",
                                   "--base-url", "http://127.0.0.1:9/v1", "--out", "o"])
    assert bad.exit_code != 0 and "No such option" in bad.output


def test_cli_errors_are_one_sentence(tmp_path, test_json):
    env = {**os.environ, "OPENAI_API_KEY": "x"}
    base = [sys.executable, "-m", "mhsafety", "judge", "--model", "m", "--out",
            str(tmp_path / "o"), "--quiet"]
    few = subprocess.run(base + ["--data", str(test_json), "--base-url",
                                 "http://127.0.0.1:9/v1", "--shots", "8"],
                         env=env, check=False, capture_output=True, text=True, timeout=60)
    assert few.returncode == 2 and "needs --train FILE" in few.stderr
    assert "Traceback" not in few.stderr
    url = subprocess.run(base + ["--data", str(test_json), "--base-url", "ftp://x"],
                         env=env, check=False, capture_output=True, text=True, timeout=60)
    assert url.returncode == 2 and "http:// or https://" in url.stderr
