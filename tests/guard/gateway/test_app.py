"""The gateway's routes: auth, upstream errors passed through, overload, bad bodies,
/v1/models, /readyz and the per-route metrics."""

from __future__ import annotations

import asyncio
import threading

import httpx
import openai
import pytest

from mhsafety.errors import UsageError
from mhsafety.guard.gateway import GatewayConfig
from mhsafety.guard.gateway.config import check_access
from mhsafety.testing import FakeUpstream, UpstreamFault

from .test_chat import ask, client

MESSAGES = [{"role": "user", "content": "hi"}]


def test_client_tokens_from_the_environment(upstream, gateway, monkeypatch):
    monkeypatch.setenv("MHSAFETY_GATEWAY_TOKENS", "tok-a, tok-b")
    monkeypatch.setenv("MHSAFETY_GUARD_TOKEN", "guard-only")
    served = gateway(upstream.url)
    with pytest.raises(openai.AuthenticationError):
        client(served).chat.completions.create(model="m", messages=MESSAGES)
    wrong = openai.OpenAI(base_url=f"{served.url}/v1", api_key="tok-c", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    right = openai.OpenAI(base_url=f"{served.url}/v1", api_key="tok-b", max_retries=0)
    assert right.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content
    assert [m.id for m in right.models.list().data] == ["fake-chat"]
    # The client's token never reaches the upstream.
    assert all(h is None or "tok-" not in h for h in upstream.auth_headers)


def test_upstream_key_comes_from_its_environment_variable(gateway, monkeypatch):
    monkeypatch.setenv("MHSAFETY_UPSTREAM_API_KEY", "up-key-9")
    with FakeUpstream("fine", api_key="up-key-9") as up:
        served = gateway(up.url)
        completion, _ = ask(served, "hi")
    assert completion.choices[0].message.content == "fine"


def test_without_tokens_only_loopback(monkeypatch):
    monkeypatch.delenv("MHSAFETY_GATEWAY_TOKENS", raising=False)
    cfg = GatewayConfig(upstream="http://127.0.0.1:1/v1")
    check_access(cfg, "127.0.0.1")
    with pytest.raises(UsageError, match="MHSAFETY_GATEWAY_TOKENS"):
        check_access(cfg, "0.0.0.0")
    monkeypatch.setenv("MHSAFETY_GATEWAY_TOKENS", "t1")
    check_access(cfg, "0.0.0.0")


def test_webhook_needs_its_secret_before_anything_listens(monkeypatch):
    monkeypatch.delenv("MHSAFETY_WEBHOOK_SECRET", raising=False)
    cfg = GatewayConfig(upstream="http://127.0.0.1:1/v1", webhook_url="http://127.0.0.1:2/h")
    with pytest.raises(UsageError, match="MHSAFETY_WEBHOOK_SECRET"):
        check_access(cfg, "127.0.0.1")


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_errors_pass_through_with_their_status(gateway, stream):
    with FakeUpstream(lambda m, b: UpstreamFault(429, "slow down", "rate_limit")) as up:
        served = gateway(up.url)
        with pytest.raises(openai.RateLimitError) as caught:
            client(served).chat.completions.create(model="m", messages=MESSAGES, stream=stream)
    assert caught.value.status_code == 429 and "slow down" in str(caught.value)


def test_unreachable_and_slow_upstreams(gateway):
    dead = FakeUpstream().start()
    url = dead.url
    dead.stop()
    served = gateway(url)
    response = httpx.post(f"{served.url}/v1/chat/completions",
                          json={"model": "m", "messages": MESSAGES}, timeout=10)
    assert response.status_code == 502 and "reached" in response.json()["error"]["message"]
    with FakeUpstream("late", latency=2.0) as slow:
        served = gateway(slow.url, upstream_timeout_s=0.3)
        response = httpx.post(f"{served.url}/v1/chat/completions",
                              json={"model": "m", "messages": MESSAGES}, timeout=10)
    assert response.status_code == 504 and "0.3 s" in response.json()["error"]["message"]


@pytest.mark.parametrize("body, param", [
    ({"model": "m"}, "messages"),
    ({"model": "m", "messages": []}, "messages"),
    ({"model": "m", "messages": [{"content": "x"}]}, "messages[0]"),
    ({"model": "m", "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
    ({"model": "m", "messages": MESSAGES, "stream": "yes"}, "stream"),
])
def test_bad_bodies_get_a_400_naming_the_field(upstream, gateway, body, param):
    served = gateway(upstream.url)
    response = httpx.post(f"{served.url}/v1/chat/completions", json=body, timeout=10)
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert upstream.requests == []
    garbage = httpx.post(f"{served.url}/v1/chat/completions", content=b"{not json",
                         timeout=10)
    assert garbage.status_code == 400


def test_concurrency_limit_answers_503_at_once(gateway):
    release = threading.Event()

    def held(messages, body):
        release.wait(10)  # the first request stays in flight until the test lets it go
        return "done"

    with FakeUpstream(held) as up:
        served = gateway(up.url, max_concurrent=1)

        async def scenario():
            async with httpx.AsyncClient(timeout=20) as http:
                first = asyncio.create_task(http.post(
                    f"{served.url}/v1/chat/completions",
                    json={"model": "m", "messages": MESSAGES}))
                while not up.requests:
                    await asyncio.sleep(0.01)
                second = await http.post(f"{served.url}/v1/chat/completions",
                                         json={"model": "m", "messages": MESSAGES})
                release.set()
                return await first, second

        first, second = asyncio.run(scenario())
    assert first.status_code == 200
    assert second.status_code == 503 and second.headers["retry-after"] == "1"
    assert "limit of 1 requests in flight" in second.json()["error"]["message"]


def test_readyz_covers_the_upstream(gateway):
    up = FakeUpstream("ok").start()
    served = gateway(up.url)
    assert httpx.get(f"{served.url}/readyz").json() == {"ready": True, "detail": None}
    up.stop()
    response = httpx.get(f"{served.url}/readyz")
    assert response.status_code == 503 and "upstream" in response.json()["detail"]


def test_metrics_per_route(gateway):
    with FakeUpstream("You IDIOT.") as up:
        served = gateway(up.url)
        ask(served, "hi")
        list(client(served).chat.completions.create(model="m", messages=MESSAGES,
                                                     stream=True))
        text = httpx.get(f"{served.url}/metrics").text
    for line in (
            'mhsafety_gateway_actions_total{action="block",route="/v1/chat/completions"} 1.0',
            'mhsafety_gateway_actions_total{action="block",route="/v1/chat/completions:stream"} 1.0',
            'mhsafety_gateway_upstream_seconds_count{route="/v1/chat/completions",status="200"} 1.0',
            'mhsafety_gateway_screening_seconds_count{route="/v1/chat/completions",stage="reply"} 1.0',
            'mhsafety_gateway_screening_seconds_count{route="/v1/chat/completions",stage="seeker"} 1.0',
            'mhsafety_guard_requests_total{endpoint="/v1/chat/completions",status="200"} 2.0'):
        assert line in text, line
    assert "mhsafety_gateway_holdback_seconds" in text
    assert "IDIOT" not in text
