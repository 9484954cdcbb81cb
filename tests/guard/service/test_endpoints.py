"""The service's newer endpoints and answers, against real server processes (port 0):
/v1/check_dialogue, /v1/policy, /metrics, /readyz, the documentation assets, and a 413 that
urllib, requests and httpx clients all read."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import httpx
import pytest

SECRET = "秘密-对话-5521"
INSULT = {"context": "[seeker]我又搞砸了", "response": "[supporter]你真是个废物，去死吧"}
FIVE_MB = json.dumps({"context": "a" * (5 << 20), "response": "b"}).encode()


def test_every_result_says_tier_path_and_action(baseline_server):
    body = httpx.post(f"{baseline_server.url}/v1/check", json=INSULT).json()
    (result,) = body["results"]
    assert result["decision"] == "unsafe" and result["label_name"] == "Toxic Language"
    assert result["tier"] == "rules" and result["rule_id"] == "abuse-zh-insult"
    assert result["action"] == "block"
    assert [s["node"] for s in result["path"]] == [1, 2, 3, 4]
    assert result["path"][-1]["kind"] == "Toxic Language"


def test_dialogue_audit_endpoint(baseline_server):
    conversations = [
        {"id": "c1", "turns": [{"role": "seeker", "text": "我最近总是失眠"},
                               {"role": "supporter", "text": "失眠一定很难受，能说说吗？"},
                               {"role": "seeker", "text": f"{SECRET}我觉得自己很没用"},
                               {"role": "supporter", "text": "你真是个废物，去死吧"}]},
        {"turns": "[supporter]你好[seeker]我很难过[supporter]我在这里听你说。"},
    ]
    response = httpx.post(f"{baseline_server.url}/v1/check_dialogue",
                          json={"conversations": conversations}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    first, second = body["conversations"]
    assert [r["turn"] for r in first["results"]] == [1, 3]
    assert [r["id"] for r in first["results"]] == ["c1:1", "c1:3"]
    assert first["results"][1]["rule_id"] == "abuse-zh-insult"
    assert 3 in first["summary"]["flagged_turns"]
    assert first["summary"]["categories"].get("Toxic Language") == 1
    # An opening supporter line has nothing to be judged against: unverified, not dropped.
    assert second["id"] == "1" and second["results"][0]["decision"] == "unverified"
    assert body["summary"]["conversations"] == 2 and body["summary"]["screened"] == 4
    assert SECRET not in baseline_server.log_text()


@pytest.mark.parametrize("body, status, message", [
    ({"conversations": []}, 422, "at least 1"),
    ({"conversations": [{"turns": [{"role": "seeker", "text": "x"}]}]}, 422,
     "no supporter turn"),
    ({"conversations": [{"turns": "[seeker]a[supporter]b", "x": 1}]}, 422, "Extra inputs"),
    ({"conversations": [{"turns": [{"role": "seeker", "text": "a"},
                                   {"role": "supporter", "text": "字" * 601}]}]}, 413,
     "601 characters"),
])
def test_dialogue_endpoint_refuses_bad_bodies(baseline_server, body, status, message):
    response = httpx.post(f"{baseline_server.url}/v1/check_dialogue", json=body)
    assert response.status_code == status, response.text
    assert message in response.text


def test_policy_endpoint(baseline_server):
    body = httpx.get(f"{baseline_server.url}/v1/policy").json()
    assert body["actions"]["Toxic Language"] == "block"
    assert body["actions"]["unverified"] == "handover"


def test_metrics_count_requests_and_decisions_but_never_text(baseline_server):
    httpx.post(f"{baseline_server.url}/v1/check", json={**INSULT, "id": SECRET})
    httpx.post(f"{baseline_server.url}/v1/check",
               json={"context": f"[seeker]{SECRET}", "response": f"[supporter]{SECRET}"})
    text = httpx.get(f"{baseline_server.url}/metrics").text
    assert SECRET not in text
    count = re.search(r'mhsafety_guard_requests_total\{endpoint="/v1/check",status="200"\} '
                      r"(\d+)", text)
    assert count and int(count.group(1)) >= 2
    assert re.search(r'mhsafety_guard_decisions_total\{category="Toxic Language",'
                     r'decision="unsafe",tier="rules"\} [1-9]', text)
    assert re.search(r'mhsafety_guard_rule_hits_total\{rule_id="abuse-zh-insult"\} [1-9]', text)
    assert 'mhsafety_guard_request_seconds_bucket{endpoint="/v1/check",le="0.1"}' in text
    for name in ("mhsafety_guard_escalations_total", "mhsafety_guard_unverified",
                 "mhsafety_guard_actions_total"):
        assert name in text


def test_health_and_readiness(baseline_server):
    assert httpx.get(f"{baseline_server.url}/healthz").json()["status"] == "ok"
    ready = httpx.get(f"{baseline_server.url}/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "detail": None}


def test_docs_assets_come_from_the_package(baseline_server):
    page = httpx.get(f"{baseline_server.url}/docs").text
    assert "/_static/swagger-ui/swagger-ui-bundle.js" in page and "cdn" not in page
    redoc = httpx.get(f"{baseline_server.url}/redoc").text
    assert "/_static/redoc/redoc.standalone.js" in redoc and "cdn" not in redoc
    js = httpx.get(f"{baseline_server.url}/_static/swagger-ui/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000


def test_oversized_body_gets_a_readable_413_with_urllib(baseline_server):
    request = urllib.request.Request(f"{baseline_server.url}/v1/check", data=FIVE_MB,
                                     headers={"content-type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=60)
    assert info.value.code == 413
    assert "over the limit of 20000 bytes" in info.value.read().decode()


def test_oversized_body_gets_a_readable_413_with_requests(baseline_server):
    requests = pytest.importorskip("requests", reason="requests is not installed")
    response = requests.post(f"{baseline_server.url}/v1/check", data=FIVE_MB,
                             headers={"content-type": "application/json"}, timeout=60)
    assert response.status_code == 413
    assert "over the limit" in response.json()["detail"]


def test_oversized_body_gets_a_readable_413_with_httpx(baseline_server):
    response = httpx.post(f"{baseline_server.url}/v1/check", content=FIVE_MB,
                          headers={"content-type": "application/json"}, timeout=60)
    assert response.status_code == 413
    assert "over the limit" in response.json()["detail"]
    # And the server keeps answering.
    assert httpx.post(f"{baseline_server.url}/v1/check", json=INSULT).status_code == 200


@pytest.mark.slow
def test_concurrent_single_items_reach_a_judge_together(fake_kind, fake_checkpoint, tmp_path):
    """Single-item requests all carry id "0"; batched together for the escalation tier (a
    judge that joins answers on ids), each still gets its own answer."""
    import asyncio

    from mhsafety.registry import create_classifier
    from mhsafety.testing.fakeserver import FakeServer
    from tests.helpers.guard_servers import start_server, stop_server

    with FakeServer(latency=0.2) as judge_server:
        judge_server.responder = lambda prompt, body: "Toxic Language"
        judge = tmp_path / "judge"
        create_classifier(f"judge:fake-judge@{judge_server.url}", seed=0, rounds=1,
                          max_attempts=1, timeout=5).save(judge)
        server = start_server(fake_checkpoint, tmp_path / "cascade.log", "--escalate-to",
                              str(judge), "--band", "0.3,0.6", "--batch-wait-ms", "50")
        try:
            async def run():
                async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                    return await asyncio.gather(*[
                        client.post("/v1/check", json={"context": f"[seeker]c{i}",
                                                       "response": "border"})
                        for i in range(12)])

            results = [r.json()["results"][0] for r in asyncio.run(run())]
            assert all(r["tier"] == "escalation" and r["label_name"] == "Toxic Language"
                       for r in results), results[0]
            assert {r["id"] for r in results} == {"0"}
            metrics = httpx.get(f"{server.url}/metrics").text
            assert re.search(r"^mhsafety_guard_escalations_total 12\.0$", metrics, re.MULTILINE)
        finally:
            stop_server(server)


def test_a_judge_whose_server_is_down_is_alive_but_not_ready(tmp_path):
    from mhsafety.registry import create_classifier
    from mhsafety.testing.fakeserver import FakeServer
    from tests.helpers.guard_servers import start_server, stop_server

    judge_server = FakeServer().start()
    judge = tmp_path / "judge"
    create_classifier(f"judge:fake-judge@{judge_server.url}", seed=0, rounds=1,
                      max_attempts=1, timeout=2).save(judge)
    judge_server.stop()
    server = start_server(judge, tmp_path / "judge-guard.log", "--timeout", "5")
    try:
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 503 and "unreachable" in ready.json()["detail"]
        result = httpx.post(f"{server.url}/v1/check", json={
            "context": "[seeker]最近总是失眠", "response": "[supporter]能说说吗？"},
            timeout=30).json()["results"][0]
        assert result["decision"] == "unverified" and result["reason"]
        assert "最近总是失眠" not in server.log_text()
    finally:
        stop_server(server)
