"""The hand-over webhook against a local receiver on 127.0.0.1 (port 0), and a dead one."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from datetime import datetime, timezone

import pytest

from mhsafety.errors import UsageError
from mhsafety.guard.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WEBHOOK_SECRET_ENV,
    WebhookSender,
    WebhookSettings,
    handover_event,
    sign,
    verify_signature,
)

SECRET = "test-secret-not-a-real-one"
FAST = WebhookSettings(max_attempts=4, backoff_s=0.001, backoff_max_s=0.01, timeout_s=2)


class Receiver:
    """A tiny HTTP server: records each request and answers with the next scripted status."""

    def __init__(self, statuses=(200,), headers=None):
        self.statuses = list(statuses)
        self.extra_headers = headers or {}
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.verified: list[bool] = []
        self.server = None

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", 0)))
        self.requests.append((headers, body))
        self.verified.append(verify_signature(SECRET, body, headers.get(
            TIMESTAMP_HEADER.lower()), headers.get(SIGNATURE_HEADER.lower())))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        extra = "".join(f"{k}: {v}\r\n" for k, v in self.extra_headers.items())
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n{extra}"
                     "Connection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()


def dead_url() -> str:
    """A port that was free a moment ago and has no listener now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def event(**changes):
    fields = {"conversation_id": "conv-42", "category": "Unauthorized Preachment",
              "risk_level": "high", "tier": "seeker-rules", "rule_id": "zh-ideation",
              "now": datetime(2026, 12, 4, 21, 50, tzinfo=timezone.utc)}
    fields.update(changes)
    return handover_event(**fields)


def test_signed_post_is_verified_by_the_receiver_and_carries_no_text():
    async def go():
        failures = []
        async with Receiver() as receiver:
            async with WebhookSender(receiver.url, secret=SECRET, settings=FAST,
                                     on_failure=failures.append) as sender:
                assert sender.submit(event()) is True
            assert receiver.verified == [True]
            headers, body = receiver.requests[0]
            assert json.loads(body) == {
                "event": "handover", "conversation_id": "conv-42", "action": "handover",
                "category": "Unauthorized Preachment", "risk_level": "high",
                "tier": "seeker-rules", "rule_id": "zh-ideation",
                "time": "2026-12-04T21:50:00Z"}
            assert headers["content-type"] == "application/json"
            assert sender.delivered == 1 and failures == []
    asyncio.run(go())


def test_the_secret_comes_from_the_environment(monkeypatch):
    async def go():
        async with Receiver() as receiver:
            async with WebhookSender(receiver.url, settings=FAST) as sender:
                sender.submit(event())
            assert receiver.verified == [True]
    monkeypatch.setenv(WEBHOOK_SECRET_ENV, SECRET)
    asyncio.run(go())
    monkeypatch.delenv(WEBHOOK_SECRET_ENV)
    with pytest.raises(UsageError, match=f"set \\${WEBHOOK_SECRET_ENV}"):
        WebhookSender("http://127.0.0.1:9/hook")


def test_5xx_and_429_are_retried_until_accepted():
    async def go():
        delays = []

        async def sleep(seconds):
            delays.append(seconds)

        async with Receiver(statuses=[503, 429, 200], headers={"Retry-After": "0.005"}) \
                as receiver:
            sender = WebhookSender(receiver.url, secret=SECRET, settings=FAST, sleep=sleep,
                                   rng=lambda: 1.0)
            await sender.start()
            assert await sender.deliver(event()) is True
            await sender.close()
        assert len(receiver.requests) == 3 and all(receiver.verified)
        # Full jitter with rng 1.0: the ceilings 0.001 then 0.002, raised to Retry-After.
        assert delays == [0.005, 0.005]
        stamps = [h[TIMESTAMP_HEADER.lower()] for h, _ in receiver.requests]
        assert all(s.isdigit() for s in stamps)
    asyncio.run(go())


def test_backoff_doubles_up_to_the_cap():
    sender = WebhookSender("http://127.0.0.1:9/hook", secret=SECRET, rng=lambda: 1.0,
                           settings=WebhookSettings(backoff_s=1, backoff_max_s=5))
    assert [sender._delay(n, None) for n in range(5)] == [1, 2, 4, 5, 5]
    assert sender._delay(0, 60) == 5  # Retry-After is capped too
    jittered = WebhookSender("http://127.0.0.1:9/hook", secret=SECRET, rng=lambda: 0.25,
                             settings=WebhookSettings(backoff_s=1, backoff_max_s=5))
    assert jittered._delay(2, None) == 1.0


def test_a_4xx_is_final_and_counted():
    async def go():
        failures = []
        async with Receiver(statuses=[400]) as receiver:
            sender = WebhookSender(receiver.url, secret=SECRET, settings=FAST,
                                   on_failure=failures.append)
            await sender.start()
            assert await sender.deliver(event()) is False
            await sender.close()
        assert len(receiver.requests) == 1 and failures == ["rejected"]
    asyncio.run(go())


def test_a_dead_receiver_is_retried_then_given_up_without_raising(caplog):
    async def go():
        failures, sleeps = [], []

        async def sleep(seconds):
            sleeps.append(seconds)

        sender = WebhookSender(dead_url(), secret=SECRET, settings=FAST,
                               on_failure=failures.append, sleep=sleep)
        await sender.start()
        assert sender.submit(event()) is True  # returns at once: the reply does not wait
        await sender.close(timeout=10)
        return sender, failures, sleeps

    with caplog.at_level(logging.WARNING, logger="mhsafety.guard.webhook"):
        sender, failures, sleeps = asyncio.run(go())
    assert failures == ["gave_up"] and sender.failed == 1 and sender.delivered == 0
    assert len(sleeps) == FAST.max_attempts - 1
    assert "failed after 4 tries: ConnectError" in caplog.text
    for field in ("conv-42", "Unauthorized Preachment", "zh-ideation", "/hook"):
        assert field not in caplog.text  # neither the body nor the URL's path is logged


def test_a_full_queue_drops_the_event_and_counts_it():
    async def go():
        failures = []
        gate = asyncio.Event()

        class Stuck:
            async def post(self, *args, **kwargs):
                await gate.wait()
                raise AssertionError("never reached")

            async def aclose(self):
                pass

        sender = WebhookSender("http://127.0.0.1:9/hook", secret=SECRET, client=Stuck(),
                               settings=WebhookSettings(queue_size=1, max_attempts=1),
                               on_failure=failures.append)
        await sender.start()
        assert sender.submit(event()) is True
        await asyncio.sleep(0)  # the worker takes the first event and waits on the client
        assert sender.submit(event()) is True
        assert sender.submit(event()) is False
        assert failures == ["queue_full"] and sender.pending == 1
        await sender.close(timeout=0.01)
        # Closing gives up on the event in flight and the one still queued, and says so.
        assert failures == ["queue_full", "dropped", "dropped"] and sender.failed == 3
    asyncio.run(go())


def test_an_unexpected_error_is_counted_not_raised():
    async def go():
        failures = []

        class Broken:
            async def post(self, *args, **kwargs):
                raise RuntimeError("boom")

            async def aclose(self):
                pass

        async with WebhookSender("http://127.0.0.1:9/hook", secret=SECRET, client=Broken(),
                                 on_failure=failures.append) as sender:
            sender.submit(event())
        assert failures == ["error"]
    asyncio.run(go())


def test_signatures_and_replays():
    body = b'{"a":1}'
    good = sign(SECRET, "1700000000", body)
    assert good.startswith("sha256=") and len(good) == 7 + 64
    assert verify_signature(SECRET, body, "1700000000", good, now=1700000100)
    assert not verify_signature(SECRET, body, "1700000000", good, now=1700000000 + 301)
    assert not verify_signature("other", body, "1700000000", good, now=1700000000)
    assert not verify_signature(SECRET, b'{"a":2}', "1700000000", good, now=1700000000)
    assert not verify_signature(SECRET, body, "1700000001", good, now=1700000000)
    assert not verify_signature(SECRET, body, None, good)
    assert not verify_signature(SECRET, body, "soon", good)


@pytest.mark.parametrize("changes, message", [
    ({"category": "Rudeness"}, "category must be a label"),
    ({"risk_level": "severe"}, "risk_level must be one of"),
    ({"action": "escalate"}, "action must be one of"),
    ({"conversation_id": ""}, "conversation_id must be"),
    ({"conversation_id": "x" * 201}, "conversation_id must be"),
    ({"conversation_id": "a\nb"}, "conversation_id must be"),
])
def test_bad_events_are_one_sentence(changes, message):
    with pytest.raises(UsageError, match=message):
        event(**changes)


def test_event_fields_accept_label_ids_and_unverified():
    assert event(category=4).category == "Toxic Language"
    assert event(category="unverified").category == "unverified"
    assert event(category=None, risk_level="imminent").category is None


def test_bad_urls_and_settings():
    with pytest.raises(UsageError, match="url must be an http"):
        WebhookSender("ftp://example.org/hook", secret=SECRET)
    with pytest.raises(UsageError, match="max_attempts must be positive"):
        WebhookSettings(max_attempts=0)
