"""Batch mode: request file, custom ids, joining results, the fake Batch API."""

from __future__ import annotations

import json
import time

from mhsafety.judge import batch as bt
from mhsafety.judge.fakeserver import FakeServer


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
    joined = bt.join_results(
        objects, "key", expected,
        base_entry=lambda r, i, h: {"round": r, "id": i, "prompt_hash": h},
        answer_fields=lambda content, data: {"answer": content, "usage": data["usage"]},
        via={"via": "batch"})
    by_id = {e["id"]: e for _, e in joined.entries}
    assert set(by_id) == {"a", "c", "d"}
    assert by_id["a"]["answer"] == "Safe Response" and by_id["a"]["via"] == "batch"
    assert "429" in by_id["d"]["error"] and "boom" in by_id["c"]["error"]
    assert (joined.answered, joined.failed, joined.stale, joined.foreign, joined.corrupt) == \
        (1, 2, 3, 1, 1)


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
