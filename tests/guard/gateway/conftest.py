"""Fixtures for the gateway: a scripted guard, a fake streaming upstream, the gateway served
in-process by uvicorn on 127.0.0.1 port 0, and a webhook receiver; each stopped by the
fixture that started it."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from mhsafety.guard import Guard, Pending, TierBase
from mhsafety.guard.gateway import GatewayConfig
from mhsafety.guard.results import flagged, labelled
from mhsafety.guard.service import ServiceConfig
from mhsafety.testing import FakeUpstream

SECRET = "webhook-secret-for-tests"
SAFE, TOXIC, MIMICRY, PREACH = 7, 4, 1, 5
# Words in a reply -> the label the scripted tier gives it (policy: block, regenerate, handover).
KEYWORDS = {"IDIOT": TOXIC, "AS A HUMAN": MIMICRY, "TAKE 10 PILLS": PREACH}


class ScriptedTier(TierBase):
    """Decides every reply by the keywords in it (everything else is safe)."""

    name = "scripted"

    def screen(self, items: list[Pending]) -> list[Any]:
        out = []
        for item in items:
            text = item.example.response_text
            label = next((lab for word, lab in KEYWORDS.items() if word in text), SAFE)
            out.append(labelled(label, None, 0.5, item.example.id, tier=self.name,
                                why=f"scripted label {label}", policy=self.policy))
        return out


class BinaryTier(TierBase):
    """A binary-only guard model's tier: "unsafe" with no category (``results.flagged``)."""

    name = "binary"

    def __init__(self, action: str = "block") -> None:
        self.action = action

    def screen(self, items: list[Pending]) -> list[Any]:
        return [flagged(0.5, item.example.id, tier=self.name, why="binary model: unsafe",
                        action=self.action)
                if "IDIOT" in item.example.response_text else
                labelled(SAFE, None, 0.5, item.example.id, tier=self.name, why="binary: safe",
                         policy=self.policy)
                for item in items]


class Served:
    def __init__(self, url: str, server: Any, thread: threading.Thread) -> None:
        self.url, self.server, self.thread = url, server, thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def serve_app(app: Any) -> Served:
    import uvicorn

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)
    return Served(f"http://127.0.0.1:{port}", server, thread)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream("我在这里，愿意听你说。", piece_chars=3).start()
    yield server
    server.stop()


class Receiver:
    """A local webhook receiver: keeps each POST's body and headers."""

    def __init__(self, status: int = 200) -> None:
        received: list[dict[str, Any]] = []
        self.received = received
        answer = status

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append({"body": body, "headers": dict(self.headers)})
                self.send_response(answer)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.received]

    def wait(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.events()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def gateway(monkeypatch) -> Iterator[Callable[..., Served]]:
    """``gateway(upstream_url, tiers=None, **gateway_settings)``: a served gateway app."""
    from mhsafety.guard.service import create_app

    monkeypatch.setenv("MHSAFETY_WEBHOOK_SECRET", SECRET)
    monkeypatch.delenv("MHSAFETY_GATEWAY_TOKENS", raising=False)
    started: list[Served] = []

    def make(upstream_url: str, tiers: list[Any] | None = None, *,
             service: dict[str, Any] | None = None, **settings: Any) -> Served:
        guard = Guard(tiers or [ScriptedTier()])
        cfg = ServiceConfig(**(service or {}),
                            gateway=GatewayConfig(upstream=upstream_url, **settings))
        served = serve_app(create_app(guard, cfg))
        started.append(served)
        return served

    yield make
    for served in started:
        served.stop()
