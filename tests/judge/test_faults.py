"""Every fault a real API shows is retried until it recovers; what cannot recover is recorded."""

from __future__ import annotations

import json

import pytest

from mhsafety.errors import UsageError
from mhsafety.judge.client import retry_after_seconds, scrub
from mhsafety.judge.runner import run_judge

from .conftest import settings


def _log_lines(out, round_no=1):
    return [json.loads(line) for line in
            (out / "log" / f"round-{round_no}.jsonl").read_text("utf-8").splitlines()]


@pytest.mark.parametrize("client", ["fast", "openai"])
@pytest.mark.parametrize("fault", ["429", "500", "503", "hang", "nonjson", "nochoices", "drop"])
def test_each_fault_recovers(server, small_examples, tmp_path, fault, client):
    items = small_examples[:6]
    server.faults.extend([fault, fault])
    result = run_judge(items, tmp_path, settings(server, client=client, concurrency=2,
                                                 timeout=0.5), show_progress=False)
    assert server.fault_count[fault] == 2
    assert result.summary["answered"] == 6 and result.summary["failed"] == 0
    assert result.summary["this_run"]["retries"] >= 1 or fault == "drop"
    recs = result.records["1"]
    assert [r.pred for r in recs] == [7] * 6  # the fake answers "Safe Response"
    assert len(_log_lines(tmp_path)) == 6


def test_retry_after_is_honoured(server, small_examples, tmp_path, monkeypatch):
    from mhsafety.judge import client

    waits = []
    real_sleep = client._sleep

    async def record(delay):
        waits.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(client, "_sleep", record)
    server.retry_after = "7"
    server.faults.extend(["429", "503"])
    result = run_judge(small_examples[:1], tmp_path, settings(server, backoff_base=0.5),
                       show_progress=False)
    assert result.summary["answered"] == 1
    assert waits[0] == 7.0  # as the server asked, not the back-off
    assert 0 <= waits[1] <= 0.5 * 2  # second attempt: jittered back-off up to base * 2**1


def test_exhausted_retries_are_recorded_then_retried(server, small_examples, tmp_path):
    items = small_examples[:5]
    bad = items[2]
    server.fault_for = lambda prompt: "500" if bad.response in prompt else None
    first = run_judge(items, tmp_path, settings(server, max_attempts=3), show_progress=False)
    assert first.summary["failed"] == 1 and first.summary["answered"] == 4
    failed = [r for r in first.records["1"] if r.pred is None]
    assert [r.id for r in failed] == [bad.id]
    assert "gave up after 3 attempts" in failed[0].error and "HTTP 500" in failed[0].error
    written = (tmp_path / "preds" / "round-1.preds.jsonl").read_text("utf-8")
    assert "request failed" in written  # recorded with its reason, not dropped

    server.fault_for = None
    second = run_judge(items, tmp_path, settings(server, max_attempts=3), show_progress=False)
    assert second.summary["this_run"]["requests"] == 1  # only the failed item is asked again
    assert second.summary["failed"] == 0 and second.summary["answered"] == 5
    answers = [e for e in _log_lines(tmp_path) if "answer" in e]
    assert sorted(e["id"] for e in answers) == sorted(ex.id for ex in items)


def test_refusal_stops_the_run_and_hides_the_key(server, small_examples, tmp_path,
                                                 monkeypatch):
    key = "sk-proj-SECRETsecret123456"
    monkeypatch.setenv("OPENAI_API_KEY", key)

    async def refuse(*args):
        return 401, {"Content-Type": "application/json"}, json.dumps(
            {"error": {"message": f"Incorrect API key provided: {key}"}}).encode()

    server._respond = refuse
    with pytest.raises(UsageError) as info:
        run_judge(small_examples[:3], tmp_path, settings(server), show_progress=False)
    assert "HTTP 401" in str(info.value) and key not in str(info.value)
    assert "$OPENAI_API_KEY" in str(info.value)
    assert "SECRET" not in str(info.value)


def test_retry_after_forms():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert 0 <= retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.0 + 1e-9
    assert scrub("key sk-abc123456789 and mysecret", "mysecret") == "key sk-*** and ***"


def test_backoff_is_exponential_with_full_jitter():
    import random

    from mhsafety.judge.client import RetryPolicy

    policy = RetryPolicy(max_attempts=8, backoff_base=1.0, backoff_cap=60.0)
    rng = random.Random(0)
    for attempt, ceiling in [(0, 1.0), (3, 8.0), (10, 60.0)]:
        delays = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.8 * ceiling  # spread over the whole window, not fixed
        assert len(set(delays)) > 100


def test_a_dead_port_stops_at_the_first_try(small_examples, tmp_path):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    with pytest.raises(UsageError, match="nothing listens at 127.0.0.1:") as info:
        run_judge(small_examples[:12], tmp_path, settings(server=None, base_url=dead,
                                                          max_attempts=8, backoff_base=1.0),
                  show_progress=False)
    assert "connection refused" in str(info.value)
    assert "gave up" not in str(info.value)  # no retry budget was spent
    log = tmp_path / "log" / "round-1.jsonl"
    assert not log.exists() or log.read_text("utf-8") == ""


def test_a_server_going_down_mid_run_stops_the_run_and_a_rerun_resumes(server, small_examples,
                                                                       tmp_path):
    items = small_examples[:12]
    down = {ex.response for ex in items[2:]}
    server.fault_for = lambda prompt: "500" if any(r in prompt for r in down) else None
    with pytest.raises(UsageError, match="3 items in a row failed") as info:
        run_judge(items, tmp_path, settings(server, concurrency=1, max_attempts=2,
                                            stop_after_failures=3), show_progress=False)
    assert "HTTP 500" in str(info.value)
    assert len(_log_lines(tmp_path)) == 5  # 2 answers and 3 failures logged, nothing else
    server.fault_for = None
    result = run_judge(items, tmp_path, settings(server), show_progress=False)
    assert result.summary["answered"] == 12 and result.summary["this_run"]["requests"] == 10


def test_auto_client_takes_the_sdk_for_https_and_the_fast_client_for_http():
    from mhsafety.judge.client import resolve_transport

    assert resolve_transport("auto", "https://api.openai.com/v1") == "openai"
    assert resolve_transport("auto", "http://127.0.0.1:8000/v1") == "fast"
    assert resolve_transport("fast", "https://api.example.com/v1") == "fast"


def test_retries_are_reported_as_they_happen(server, small_examples, tmp_path, monkeypatch):
    """The progress bar's retry count moves at each retry, not when the item finally ends."""
    import asyncio
    import random

    from mhsafety.judge.client import RequestShape, RetryPolicy, complete, make_transport
    from mhsafety.judge.prompts import load_template

    server.faults.extend(["503", "429", "500"])
    seen = []
    s = settings(server)

    async def ask():
        transport = make_transport("fast", server.url, None, 1.0, 1)
        try:
            return await complete(transport, RequestShape(s),
                                  load_template(None).messages_json(small_examples[0]),
                                  RetryPolicy(max_attempts=5, backoff_base=0.0),
                                  random.Random(0), on_retry=seen.append)
        finally:
            await transport.aclose()

    answer = asyncio.run(ask())
    assert answer.attempts == 4 and answer.content == "Safe Response"
    assert seen == ["HTTP 503", "429 rate limited", "HTTP 500"]
