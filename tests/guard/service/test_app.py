"""The HTTP service, against real server processes on 127.0.0.1 (port 0)."""

from __future__ import annotations

import asyncio
import json
import re
import time

import httpx
import numpy as np
import pytest

from tests.helpers.guard_servers import TOKEN

SECRET = "我的秘密对话内容-7731"
JSON = {"content-type": "application/json"}
GOOD = {"context": "[seeker]我最近总是失眠，很焦虑", "response": "[supporter]失眠一定很难受，能说说是什么让你焦虑吗？"}


def post(server, body=None, *, content=None, headers=None, token=None):
    headers = dict(headers or {})
    if token:
        headers["authorization"] = f"Bearer {token}"
    if content is None:
        return httpx.post(f"{server.url}/v1/check", json=body, headers=headers, timeout=30)
    return httpx.post(f"{server.url}/v1/check", content=content, headers=headers, timeout=30)


def assert_still_answers(server, token=None):
    response = post(server, GOOD, token=token)
    assert response.status_code == 200
    assert response.json()["results"][0]["decision"] in ("safe", "unsafe")


def wait_until_model_free(server, token=None):
    """After a scripted SLEEP the model is busy for a while; wait until it answers again."""
    for _ in range(100):
        if post(server, GOOD, token=token).json()["results"][0]["decision"] != "unverified":
            return
        time.sleep(0.1)
    raise AssertionError("the model never became free")


def test_happy_path_single_item(baseline_server):
    response = post(baseline_server, {**GOOD, "id": "turn-1"})
    assert response.status_code == 200
    body = response.json()
    assert response.headers["x-request-id"] == body["request_id"]
    (result,) = body["results"]
    assert result["id"] == "turn-1" and result["threshold"] == 0.5
    assert result["decision"] in ("safe", "unsafe") and result["reason"] is None
    assert result["safe"] == (result["decision"] == "safe") == (result["label"] == 7)
    assert sum(result["probabilities"].values()) == pytest.approx(1.0)
    assert result["p_safe"] == pytest.approx(result["probabilities"]["Safe Response"])
    assert result["node"]["number"] in (1, 2, 3, 4)


def test_batch_matches_single_items_and_library(baseline_server, baseline_checkpoint,
                                                test_examples):
    from mhsafety.guard import Guard

    items = [{"id": ex.id, "context": ex.context, "response": ex.response}
             for ex in test_examples[:8]]
    response = post(baseline_server, {"items": items})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["id"] for r in results] == [ex.id for ex in test_examples[:8]]
    single = post(baseline_server, items[3]).json()["results"][0]
    assert single["probabilities"] == pytest.approx(results[3]["probabilities"])
    local = Guard.load(baseline_checkpoint).check_many(items)
    assert [r.label for r in local] == [r["label"] for r in results]
    assert np.allclose([r.p_safe for r in local], [r["p_safe"] for r in results])


def test_turn_list_context_and_threshold_override(baseline_server):
    turns = {"context": [{"role": "seeker", "text": "我最近总是失眠，很焦虑"}],
             "response": "失眠一定很难受，能说说是什么让你焦虑吗？"}
    as_turns = post(baseline_server, turns).json()["results"][0]
    as_string = post(baseline_server, GOOD).json()["results"][0]
    assert as_turns["p_safe"] == pytest.approx(as_string["p_safe"])
    strict = post(baseline_server, {**GOOD, "threshold": 1.0}).json()["results"][0]
    lax = post(baseline_server, {**GOOD, "threshold": 0.0}).json()["results"][0]
    assert strict["decision"] == "unsafe" and strict["threshold"] == 1.0
    assert lax["decision"] == "safe" and lax["label"] == 7


def test_concurrent_clients_get_their_own_answers(baseline_server, test_examples):
    chosen = test_examples[:40]

    async def run():
        async with httpx.AsyncClient(base_url=baseline_server.url, timeout=30) as client:
            return await asyncio.gather(*[
                client.post("/v1/check", json={"id": ex.id, "context": ex.context,
                                               "response": ex.response}) for ex in chosen])

    responses = asyncio.run(run())
    assert all(r.status_code == 200 for r in responses)
    assert [r.json()["results"][0]["id"] for r in responses] == [ex.id for ex in chosen]


@pytest.mark.parametrize("name, kwargs, status, message", [
    ("malformed JSON", {"content": b'{"context": "a", ', "headers":
                        {"content-type": "application/json"}}, 422, "JSON"),
    ("not an object", {"body": ["a", "b"]}, 422, "dictionary"),
    ("wrong type", {"body": {"context": 5, "response": "b"}}, 422, "string"),
    ("wrong turn role", {"body": {"context": [{"role": "bot", "text": "x"}],
                                  "response": "b"}}, 422, "seeker"),
    ("empty context", {"body": {"context": "", "response": "b"}}, 422,
     "request item 0: field 'context' is empty"),
    ("empty response", {"body": {"context": "a", "response": "  "}}, 422,
     "field 'response' is empty"),
    ("duplicate ids", {"body": {"items": [{**GOOD, "id": "a"}, {**GOOD, "id": "a"}]}}, 422,
     "duplicate id"),
    ("unknown field", {"body": {**GOOD, "colour": "red"}}, 422, "Extra inputs"),
    ("unknown item field", {"body": {"items": [{**GOOD, "x": 1}]}}, 422, "Extra inputs"),
    ("missing response", {"body": {"context": "a"}}, 422, "missing field 'response'"),
    ("both forms", {"body": {**GOOD, "items": [GOOD]}}, 422, "not both"),
    ("empty batch", {"body": {"items": []}}, 422, "'items' is empty"),
    ("threshold out of range", {"body": {**GOOD, "threshold": 2}}, 422, "less than or equal"),
    # JSON's non-standard NaN/Infinity (Python's json reads them) and overflowing numbers:
    # 422 naming the field, never a 500 (issue 20).
    *[(f"threshold {raw}", {"content": f'{{"context": "a", "response": "b", "threshold": '
                                       f'{raw}}}', "headers": JSON}, 422, '"threshold"')
      for raw in ("NaN", "Infinity", "-Infinity", "1e999")],
    ("NaN response", {"content": '{"context": "a", "response": NaN}', "headers": JSON}, 422,
     '"response"'),
    ("NaN in an item", {"content": '{"items": [{"context": Infinity, "response": "b"}]}',
                        "headers": JSON}, 422, '"context"'),
    ("batch over limit", {"body": {"items": [GOOD] * 9}}, 413, "over the limit of 8"),
    ("context over limit", {"body": {"context": "字" * 601, "response": "b"}}, 413,
     "context has 601 characters, over the limit of 600"),
    ("turns over limit", {"body": {"context": [{"role": "seeker", "text": "字" * 400}] * 2,
                                   "response": "b"}}, 413, "context has 800 characters"),
    ("response over limit", {"body": {"items": [GOOD, {"context": "a", "response": "字" * 700}]}},
     413, "item 1: the response has 700 characters"),
    ("body over limit", {"content": json.dumps({"context": "a" * 30000, "response": "b"}),
                         "headers": {"content-type": "application/json"}}, 413,
     "over the limit of 20000 bytes"),
])
def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_answering(
        baseline_server, name, kwargs, status, message):
    response = post(baseline_server, **kwargs)
    assert response.status_code == status, response.text
    assert message in json.dumps(response.json(), ensure_ascii=False)
    assert_still_answers(baseline_server)


def test_huge_chunked_body_is_cut_off(baseline_server):
    def chunks():
        yield b'{"context": "'
        for _ in range(5000):  # ~5 MB without a Content-Length header
            yield b"a" * 1024
        yield b'", "response": "b"}'

    response = httpx.post(f"{baseline_server.url}/v1/check", content=chunks(),
                          headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == 413
    assert_still_answers(baseline_server)


def test_get_taxonomy_health_and_openapi(baseline_server):
    taxonomy = httpx.get(f"{baseline_server.url}/v1/taxonomy").json()
    assert [c["name"] for c in taxonomy["labels"]][7] == "Safe Response"
    assert len(taxonomy["nodes"]) == 4
    health = httpx.get(f"{baseline_server.url}/healthz").json()
    assert health == {"status": "ok", "kind": "baseline", "threshold": 0.5, "detail": None}
    schema = httpx.get(f"{baseline_server.url}/openapi.json").json()
    assert {"/v1/check", "/v1/taxonomy", "/healthz"} <= set(schema["paths"])
    assert "413" in schema["paths"]["/v1/check"]["post"]["responses"]


def test_logs_carry_ids_and_sizes_but_never_text(baseline_server):
    response = post(baseline_server, {"context": f"[seeker]{SECRET}", "response": SECRET},
                    headers={"x-request-id": "log-check-1"})
    assert response.status_code == 200
    bad = post(baseline_server, {"context": SECRET, "response": SECRET, "extra": SECRET})
    assert bad.status_code == 422
    wanted = f"request_id={bad.headers['x-request-id']}"
    for _ in range(100):  # the line is written just after the response is sent
        log = baseline_server.log_text()
        if wanted in log:
            break
        time.sleep(0.05)
    assert SECRET not in log
    line = next(line for line in log.splitlines() if "request_id=log-check-1" in line)
    assert re.search(r"status=200 bytes=\d+ items=1 latency_ms=[\d.]+ decisions=(safe|unsafe):1",
                     line), line
    assert wanted in log


def test_request_id_header_is_sanitised(baseline_server):
    response = post(baseline_server, GOOD,
                    headers={"x-request-id": "evil id with=spaces status=200"})
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{16}", response.headers["x-request-id"])


# ---------------------------------------------------------------------- auth and fail-closed


def test_auth_required_when_token_set(fake_server):
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
        response = post(fake_server, GOOD, headers=headers)
        assert response.status_code == 401
        assert response.json() == {"detail": "unauthorized"}
        assert response.headers["www-authenticate"] == "Bearer"
    # Even a malformed body is refused before it is read.
    assert post(fake_server, content=b"{", headers={"content-type": "application/json"}
                ).status_code == 401
    assert httpx.get(f"{fake_server.url}/v1/taxonomy").status_code == 401
    assert httpx.get(f"{fake_server.url}/healthz").status_code == 200
    ok = post(fake_server, GOOD, token=TOKEN)
    assert ok.status_code == 200 and ok.json()["results"][0]["decision"] == "safe"


def test_auth_off_without_token(baseline_server):
    assert post(baseline_server, GOOD).status_code == 200
    assert "401" not in httpx.get(f"{baseline_server.url}/openapi.json").text


@pytest.mark.parametrize("response_text, reason", [
    ("RAISE", "model error: RuntimeError"),
    ("SLEEP", "timeout"),
])
def test_model_failures_fail_closed(fake_server, response_text, reason):
    response = post(fake_server, {"items": [GOOD, {"context": "a", "response": response_text}]},
                    token=TOKEN)
    assert response.status_code == 200
    for result in response.json()["results"]:
        assert result["decision"] == "unverified" and result["safe"] is False
        assert result["label"] is None and result["reason"].startswith(reason)
    # The scripted error text never reaches the log, only the exception type.
    assert "scripted failure" not in fake_server.log_text()
    wait_until_model_free(fake_server, TOKEN)  # and the server recovers


def test_an_invalid_row_fails_closed_alone(fake_server):
    wait_until_model_free(fake_server, TOKEN)
    response = post(fake_server, {"items": [GOOD, {"context": "a", "response": "NAN"}]},
                    token=TOKEN)
    good, bad = response.json()["results"]
    assert good["decision"] == "safe"
    assert bad["decision"] == "unverified" and bad["safe"] is False and bad["p_safe"] is None


def test_health_degrades_while_a_model_call_hangs_and_requests_fail_closed():
    import threading

    from fastapi.testclient import TestClient

    from mhsafety.classifiers.base import Classifier
    from mhsafety.guard import Guard
    from mhsafety.guard.service import ServiceConfig, create_app

    release = threading.Event()

    class Hanging(Classifier):
        kind = "hanging"

        def fit(self, train, dev=None):
            return self

        def predict_proba(self, examples):
            if any("HANG" in ex.response for ex in examples):
                release.wait(30)
            return np.full((len(examples), 8), 1 / 8)

        def save_state(self, directory):
            pass

        @classmethod
        def load_state(cls, directory, manifest):
            return cls()

    app = create_app(Guard.around(Hanging()), ServiceConfig(timeout_s=0.2))
    with TestClient(app) as client:
        try:
            assert client.get("/healthz").status_code == 200
            hung = client.post("/v1/check", json={"context": "a", "response": "HANG"})
            (result,) = hung.json()["results"]
            assert result["decision"] == "unverified" and result["reason"].startswith("timeout")
            for _ in range(200):  # the call stays blocked on `release` until we set it
                health = client.get("/healthz")
                if health.status_code != 200:
                    break
                time.sleep(0.05)
            assert health.status_code == 503 and health.json()["status"] == "degraded"
            queued = client.post("/v1/check", json={"context": "a", "response": "fine"})
            assert queued.json()["results"][0]["decision"] == "unverified"
        finally:
            release.set()
        for _ in range(200):
            if client.get("/healthz").status_code == 200:
                break
            time.sleep(0.05)
        ok = client.post("/v1/check", json={"context": "a", "response": "fine"})
        assert ok.json()["results"][0]["decision"] == "unsafe"  # P(safe) = 1/8 < 0.5


@pytest.mark.parametrize("reply", ["\u0000", "\x01", "[supporter]\x01\u200b", "……", "?!"])
def test_a_reply_with_nothing_in_it_is_unverified_never_safe(baseline_server, reply):
    response = post(baseline_server, {"context": "[seeker]我好累", "response": reply})
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert result["decision"] == "unverified" and result["safe"] is False
    assert result["reason"].startswith("empty reply") and result["tier"] == "input"


def test_dialogue_audits_take_the_same_rules(baseline_server):
    url = f"{baseline_server.url}/v1/check_dialogue"
    bad = httpx.post(url, content='{"conversations": [{"turns": "[seeker]a[supporter]b"}], '
                                  '"threshold": NaN}', headers=JSON, timeout=30)
    assert bad.status_code == 422 and '"threshold"' in bad.text
    body = {"conversations": [{"turns": [{"role": "seeker", "text": "我好累"},
                                         {"role": "supporter", "text": "\x01"}]}]}
    (result,) = httpx.post(url, json=body, timeout=30).json()["conversations"][0]["results"]
    assert result["decision"] == "unverified" and result["reason"].startswith("empty reply")
