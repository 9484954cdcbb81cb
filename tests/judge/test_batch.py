"""Batch mode: request file, custom ids, joining results, the fake Batch API."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mhsafety.errors import UsageError
from mhsafety.judge import batch as bt
from mhsafety.judge.client import Answer, Failure
from mhsafety.judge.runner import run_judge
from mhsafety.testing.fakeserver import FakeServer, GoldResponder

from .conftest import settings


def _job(round_no: int, item_id: str, prompt_hash: str = "h1") -> bt.BatchJob:
    return bt.BatchJob(round_no, item_id, prompt_hash,
                       {"model": "m", "messages": [{"role": "user", "content": item_id}]})


def test_custom_id_round_trips_item_ids_with_dots():
    job = _job(3, "dialogue.12.b")
    assert bt.parse_custom_id(bt.custom_id("k" * 16, job)) == ("k" * 16, 3, "h1", "dialogue.12.b")
    assert bt.parse_custom_id("request-1") is None
    assert bt.parse_custom_id(7) is None


def test_request_file_lines_are_batch_requests():
    data = bt.request_lines("key", [_job(1, "a"), _job(2, "a")])
    lines = [json.loads(x) for x in data.splitlines()]
    assert [x["custom_id"] for x in lines] == ["key.1.h1.a", "key.2.h1.a"]
    assert {(x["method"], x["url"]) for x in lines} == {("POST", "/v1/chat/completions")}
    assert lines[0]["body"]["messages"][0]["content"] == "a"


def _result(cid, content="Safe Response", status=200, error=None):
    body = {"choices": [{"message": {"content": content}}], "model": "m",
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
    return {"id": "r", "custom_id": cid, "error": error,
            "response": None if error else {"status_code": status, "body": body}}


def test_join_keeps_only_results_of_the_current_settings_and_prompts():
    expected = {1: {"a": "h1", "b": "h1", "c": "h1", "d": "h1"}}
    objects = [
        _result("key.1.h1.a"),
        _result("old.1.h1.b"),                      # another settings key: stale
        _result("key.1.h0.c"),                      # another prompt: stale
        _result("key.2.h1.a"),                      # a round this run does not have: stale
        _result("key.1.h1.d", status=429),          # the request itself failed
        _result("key.1.h1.c", error={"code": "server_error", "message": "boom"}),
        _result("request-7"),                       # not ours
        None,                                       # a line that was not JSON
        _result("key.1.h1.a", content="Nonsense"),  # a repeat: the first one counts
    ]
    joined = bt.join_results(objects, "key", expected)
    by_id = {item: (r, h, outcome) for r, item, h, outcome in joined.results}
    assert set(by_id) == {"a", "c", "d"}
    answer = by_id["a"][2]
    assert isinstance(answer, Answer) and answer.content == "Safe Response"
    assert answer.usage["prompt_tokens"] == 5 and by_id["a"][:2] == (1, "h1")
    assert isinstance(by_id["d"][2], Failure) and "429" in by_id["d"][2].reason
    assert "server_error: boom" in by_id["c"][2].reason
    assert (joined.stale, joined.foreign, joined.corrupt) == (3, 1, 1)


def test_fake_batch_goes_validating_in_progress_completed(tmp_path):
    with FakeServer() as srv:
        srv.batch.validating_s, srv.batch.progress_s = 0.2, 0.3
        api = bt.BatchAPI(srv.url, None, timeout=5, max_retries=0)
        data = bt.request_lines("key", [_job(1, str(i)) for i in range(6)])
        batch = api.create(api.upload("requests.jsonl", data), {})
        seen = [batch["status"]]
        while batch["status"] not in bt.TERMINAL:
            time.sleep(0.05)
            batch = api.retrieve(batch["id"])
            if batch["status"] != seen[-1]:
                seen.append(batch["status"])
        assert seen == ["validating", "in_progress", "finalizing", "completed"]
        assert batch["request_counts"] == {"total": 6, "completed": 6, "failed": 0}
        out = [json.loads(x) for x in api.content(batch["output_file_id"]).splitlines()]
        assert sorted(x["custom_id"] for x in out) == [f"key.1.h1.{i}" for i in range(6)]
        assert srv.answered == 6


def test_fake_batch_with_an_invalid_line_fails_with_errors_data():
    with FakeServer() as srv:
        api = bt.BatchAPI(srv.url, None, timeout=5, max_retries=0)
        good = bt.request_lines("key", [_job(1, "a")])
        batch = api.create(api.upload("r.jsonl", good + good + b"{not json\n"), {})
        time.sleep(0.01)
        batch = api.retrieve(batch["id"])
        assert batch["status"] == "failed"
        assert [(e["line"], e["code"]) for e in batch["errors"]["data"]] == \
            [(2, "duplicate_custom_id"), (3, "invalid_json_line")]
        assert "line 2: duplicate_custom_id" in bt.batch_errors(batch)
        assert srv.answered == 0


# --------------------------------------------------------------------------- through run_judge






@pytest.fixture
def gold_server(test_examples):
    srv = FakeServer(GoldResponder(test_examples), hang_s=3.0).start()
    yield srv
    srv.stop()


def _batch_settings(server, **kw):
    return settings(server, batch=True, batch_poll=0.02, **kw)


def _statuses(server) -> list[str]:
    return [b["status"] for b in server.batch.batches.values()]


def test_batch_run_answers_like_a_synchronous_one(gold_server, small_examples, tmp_path):
    gold_server.batch.validating_s, gold_server.batch.progress_s = 0.1, 0.2
    result = run_judge(small_examples, tmp_path / "b",
                       _batch_settings(gold_server, rounds=2, price_in=2.0, price_out=8.0),
                       show_progress=False)
    assert gold_server.batch.uploads == gold_server.batch.created == 1
    assert gold_server.batch.polls >= 3  # it saw validating and in_progress before the end
    assert _statuses(gold_server) == ["completed"]
    for r in ("1", "2"):
        assert [x.pred for x in result.records[r]] == [ex.label for ex in small_examples]
    s = result.summary
    assert s["answered"] == 2 * len(small_examples) and s["failed"] == 0
    assert s["this_run"]["batch"]["answered"] == 2 * len(small_examples)
    # every answer came through the batch, so the cost is the batch price: half
    t = s["tokens"]
    assert s["batch_tokens"] == {"prompt_tokens": t["prompt_tokens"],
                                 "completion_tokens": t["completion_tokens"]}
    full = (t["prompt_tokens"] * 2.0 + t["completion_tokens"] * 8.0) / 1e6
    assert s["cost"] == pytest.approx(full / 2, abs=1e-6)
    state = json.loads((tmp_path / "b" / "batch" / "state.json").read_text("utf-8"))
    assert state["joined"] and state["status"] == "completed"
    assert state["input_sha256"] == __import__("hashlib").sha256(
        (tmp_path / "b" / "batch" / "requests.jsonl").read_bytes()).hexdigest()

    sync = run_judge(small_examples, tmp_path / "s", settings(gold_server, rounds=2),
                     show_progress=False)
    assert [x.pred for x in sync.records["1"]] == [x.pred for x in result.records["1"]]
    # a rerun has nothing left to send: no new batch, the same records
    again = run_judge(small_examples, tmp_path / "b", _batch_settings(gold_server, rounds=2),
                      show_progress=False)
    assert gold_server.batch.created == 1
    assert again.summary["resumed"] == 2 * len(small_examples)


def test_failed_batch_says_why_and_a_rerun_sends_a_new_one(server, small_examples, tmp_path):
    server.batch.fail_next = True
    with pytest.raises(UsageError, match="failed: token_limit_exceeded"):
        run_judge(small_examples, tmp_path, _batch_settings(server), show_progress=False)
    assert not (tmp_path / "preds").exists() and server.answered == 0
    result = run_judge(small_examples, tmp_path, _batch_settings(server), show_progress=False)
    assert server.batch.created == 2 and _statuses(server) == ["failed", "completed"]
    assert result.summary["answered"] == len(small_examples)


def test_failed_requests_in_a_batch_are_recorded_and_retried_by_a_rerun(server, small_examples,
                                                                       tmp_path):
    items = small_examples[:10]
    bad = {items[2].response, items[7].response}
    server.fault_for = lambda prompt: "500" if any(r in prompt for r in bad) else None
    first = run_judge(items, tmp_path, _batch_settings(server), show_progress=False)
    failed = [r for r in first.records["1"] if r.pred is None]
    assert len(failed) == 2 and all("batch request failed: HTTP 500" in r.error for r in failed)
    server.fault_for = None
    second = run_judge(items, tmp_path, _batch_settings(server), show_progress=False)
    assert server.batch.created == 2
    resent = list(server.batch.batches.values())[-1]["input_file_id"]
    assert server.batch.files[resent]["data"].count(b"\n") == 2  # only the two that failed
    assert second.summary["answered"] == 10 and second.summary["resumed"] == 8


def test_a_batch_created_but_not_recorded_is_found_by_its_input_file(server, small_examples,
                                                                     tmp_path):
    # As if killed between creating the batch and writing its id: state has the file only.
    from mhsafety.judge.runner import run_judge as rj

    rj(small_examples[:4], tmp_path, _batch_settings(server), show_progress=False)
    state_path = tmp_path / "batch" / "state.json"
    state = json.loads(state_path.read_text("utf-8"))
    log = tmp_path / "log" / "round-1.jsonl"
    log.unlink()  # forget the answers, so the same four requests are pending again
    state.update(batch_id=None, status=None, joined=False)
    state_path.write_text(json.dumps(state), "utf-8")
    result = rj(small_examples[:4], tmp_path, _batch_settings(server), show_progress=False)
    assert server.batch.created == 1 and server.batch.uploads == 1
    assert result.summary["answered"] == 4


@pytest.mark.slow
def test_kill_9_while_polling_then_rerun_resumes_the_same_batch(gold_server, small_examples,
                                                                tmp_path):
    gold_server.batch.validating_s, gold_server.batch.progress_s = 0.2, 4.0
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps({"id": ex.id, "context": ex.context,
                                        "response": ex.response, "label": ex.label},
                                       ensure_ascii=False) + "\n" for ex in small_examples),
                    "utf-8")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mhsafety", "judge", "--data", str(data), "--model",
           "fake-judge", "--base-url", gold_server.url, "--out", str(out), "--rounds", "1",
           "--quiet", "--batch", "--batch-poll", "0.05"]
    env = {**os.environ, "OPENAI_API_KEY": "sk-batch-test-000000"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and gold_server.batch.polls < 5:
        time.sleep(0.02)
    assert _statuses(gold_server) == ["in_progress"]  # killed while polling
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((out / "batch" / "state.json").read_text("utf-8"))
    assert state["batch_id"] == "batch-000002" and not state["joined"]
    assert not (out / "preds").exists()

    done = subprocess.run(cmd, env=env, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resuming batch batch-000002" in done.stderr
    assert gold_server.batch.uploads == gold_server.batch.created == 1
    preds = [json.loads(x) for x in (out / "preds" / "round-1.preds.jsonl").read_text(
        "utf-8").splitlines()]
    assert [p["pred"] for p in preds] == [ex.label for ex in small_examples]
    assert "sk-batch-test" not in done.stdout + done.stderr
    assert "sk-batch-test" not in (out / "batch" / "state.json").read_text("utf-8")


def _run_batch_offline(requests: Path, results: Path, url: str) -> None:
    """What `vllm run-batch -i requests -o results` does, against the fake chat endpoint:
    every line's body sent as is, the result lines written in another order."""
    lines = []
    for n, raw in enumerate(requests.read_text("utf-8").splitlines()):
        req = json.loads(raw)
        assert req["url"] == "/v1/chat/completions" and req["method"] == "POST"
        http = urllib.request.Request(url + "/chat/completions",
                                      data=json.dumps(req["body"]).encode(),
                                      headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(http) as reply:
            body = json.loads(reply.read())
        lines.append({"id": f"vllm-{n}", "custom_id": req["custom_id"],
                      "response": {"status_code": 200, "request_id": f"vllm-batch-{n}",
                                   "body": body}, "error": None})
    random.Random(0).shuffle(lines)
    results.write_text("".join(json.dumps(x) + "\n" for x in lines), "utf-8")


def test_batch_file_only_then_batch_results_round_trip(gold_server, small_examples, tmp_path,
                                                       test_json):
    from click.testing import CliRunner

    from mhsafety.cli import cli

    data = tmp_path / "items.json"
    data.write_text(json.dumps([{"id": ex.id, "context": ex.context, "response": ex.response,
                                 "label": ex.label} for ex in small_examples],
                               ensure_ascii=False), "utf-8")
    out = tmp_path / "run"
    base = ["judge", "--data", str(data), "--model", "fake-judge", "--base-url",
            gold_server.url, "--out", str(out), "--rounds", "2", "--quiet"]
    wrote = CliRunner().invoke(cli, base + ["--batch-file-only"])
    assert wrote.exit_code == 0, wrote.output
    requests = out / "batch" / "requests.jsonl"
    assert f"vllm run-batch -i {requests}" in wrote.output
    assert gold_server.requests == 0 and not (out / "preds").exists()
    assert len(requests.read_text("utf-8").splitlines()) == 2 * len(small_examples)

    results = tmp_path / "results.jsonl"
    _run_batch_offline(requests, results, gold_server.url)
    joined = CliRunner().invoke(cli, base + ["--batch-results", str(results)])
    assert joined.exit_code == 0, joined.output
    assert f"batch: {2 * len(small_examples)} answered, 0 failed, 0 stale" in joined.output
    for r in (1, 2):
        preds = [json.loads(x) for x in (out / "preds" / f"round-{r}.preds.jsonl").read_text(
            "utf-8").splitlines()]
        assert [p["pred"] for p in preds] == [ex.label for ex in small_examples]
        assert [p["id"] for p in preds] == [ex.id for ex in small_examples]

    # The same results joined into a run with other settings are stale, never used.
    other = CliRunner().invoke(cli, base[:-1] + ["--out", str(tmp_path / "other"),
                                                  "--temperature", "0", "--quiet",
                                                  "--batch-results", str(results)])
    assert other.exit_code == 1, other.output  # nothing answered: not a success
    assert f"batch: 0 answered, 0 failed, {2 * len(small_examples)} stale" in other.output


def test_a_batch_cancelled_elsewhere_ends_the_run_and_a_rerun_sends_a_new_one(
        server, small_examples, tmp_path):
    import threading

    server.batch.progress_s = 30.0
    items = small_examples[:5]
    messages: list[str] = []
    done: dict = {}
    worker = threading.Thread(target=lambda: done.update(result=run_judge(
        items, tmp_path, _batch_settings(server), show_progress=False,
        on_message=messages.append)))
    worker.start()
    deadline = time.time() + 30
    while time.time() < deadline and server.batch.polls < 3:
        time.sleep(0.02)
    api = bt.BatchAPI(server.url, None, timeout=5, max_retries=0)
    api.client.batches.cancel("batch-000002")  # as from the provider's dashboard
    worker.join(30)
    first = done["result"]
    assert _statuses(server) == ["cancelled"]
    assert first.summary["answered"] == 0 and first.summary["this_run"]["batch"]["status"] == \
        "cancelled"
    assert any("ended cancelled" in m for m in messages)
    server.batch.progress_s = 0.0
    second = run_judge(items, tmp_path, _batch_settings(server), show_progress=False)
    assert server.batch.created == 2 and second.summary["answered"] == 5
