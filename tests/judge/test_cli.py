"""`mhsafety judge` as a user runs it: generated options, fail-fast exits, all-failed runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from click.testing import CliRunner

from mhsafety.cli import cli
from mhsafety.testing.fakeserver import FakeServer, constant


def _judge(args, timeout=120):
    return subprocess.run([sys.executable, "-m", "mhsafety", "judge", "--quiet", *args],
                          env={**os.environ, "OPENAI_API_KEY": "sk-cli-test"}, check=False,
                          capture_output=True, text=True, timeout=timeout)


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_dead_port_exits_2_with_one_line_before_any_retry(test_json, tmp_path):
    # Default retry budget (8 attempts, 1 s back-off base): spending it would take well over
    # a minute for 800 items; the subprocess timeout is the functional bound, speed figures
    # are in docs/benchmarks/judge.md.
    done = _judge(["--data", str(test_json), "--model", "m", "--base-url", _dead_url(),
                   "--out", str(tmp_path / "o")], timeout=30)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "nothing listens at 127.0.0.1:" in errors[0]
    assert "Traceback" not in done.stderr


def test_url_without_scheme_is_one_sentence(test_json, tmp_path):
    done = _judge(["--data", str(test_json), "--model", "m", "--base-url",
                   "127.0.0.1:8000/v1", "--out", str(tmp_path / "o")])
    assert done.returncode == 2
    assert "'127.0.0.1:8000/v1' has no scheme: write http://127.0.0.1:8000/v1" in done.stderr


def test_a_run_where_every_item_failed_exits_non_zero(small_examples, tmp_path):
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps({"id": ex.id, "context": ex.context,
                                        "response": ex.response, "label": ex.label},
                                       ensure_ascii=False) + "\n"
                            for ex in small_examples[:3]), "utf-8")
    with FakeServer(fault_for=lambda prompt: "500") as server:
        done = _judge(["--data", str(data), "--model", "m", "--base-url", server.url,
                       "--out", str(tmp_path / "o"), "--rounds", "1", "--max-attempts", "2",
                       "--retry-base", "0", "--stop-after-failures", "0"])
    assert done.returncode == 1, done.stderr
    assert "no item was answered (3 failed" in done.stderr
    assert "answered 0, failed 3" in done.stdout  # the summary still says what happened


def test_generated_options_forward_only_what_is_given(small_examples, tmp_path):
    data = tmp_path / "items.jsonl"
    data.write_text(json.dumps({"context": small_examples[0].context, "label": 7,
                                "response": small_examples[0].response}) + "\n", "utf-8")
    with FakeServer(constant("3")) as server:
        result = CliRunner().invoke(cli, [
            "judge", "--data", str(data), "--model", "m", "--base-url", server.url,
            "--out", str(tmp_path / "o"), "--rounds", "1", "--output", "number",
            "--logprobs", "--header", "X-Trace=abc", "--extra-body",
            '{"guided_choice": ["1","2","3","4","5","6","7","8"]}', "--quiet"])
        body = server.last_body
    assert result.exit_code == 0, result.output
    assert body["guided_choice"][0] == "1" and body["logprobs"] is True
    assert body["temperature"] == 1.0  # the default, from JudgeSettings
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text("utf-8"))
    assert manifest["output"] == "number" and manifest["header_names"] == ["X-Trace"]
    assert manifest["requests"]["concurrency"] == 8
    rec = json.loads((tmp_path / "o" / "preds" / "round-1.preds.jsonl").read_text("utf-8"))
    assert rec["pred"] == 2 and rec["meta"]["probs_from"] == "logprobs"


def test_help_shows_the_settings_defaults():
    from mhsafety.judge.settings import JudgeSettings

    text = CliRunner().invoke(cli, ["judge", "--help"], terminal_width=200).output
    defaults = JudgeSettings()
    assert f"[default: {defaults.rounds}]" in text
    assert f"[default: {defaults.concurrency}]" in text
    for flag in ("--token-param", "--reasoning-effort", "--system-prompt", "--system-role",
                 "--extra-body", "--header", "--output", "--logprobs", "--samples"):
        assert flag in text


def test_bad_extra_body_is_one_sentence(tmp_path):
    done = _judge(["--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--out",
                   str(tmp_path / "o"), "--extra-body", "[1, 2]"])
    assert done.returncode == 2 and "--extra-body must be a JSON object" in done.stderr
