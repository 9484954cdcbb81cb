"""The pure-ASGI middleware in front of the guard's app: request id, bearer auth, body-size
limit, metrics and the privacy-safe log line (sizes, latency, status, decisions; no text)."""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .metrics import Metrics

LOG = logging.getLogger("mhsafety.guard")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def _send_json(send: Send, status: int, body: Any,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(body).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())] + (headers or [])})
    await send({"type": "http.response.body", "body": payload})


class GuardMiddleware:
    """Request id, bearer auth, body-size limit, metrics and the privacy-safe log line.

    Pure ASGI (no per-request task), and it runs before the body is parsed, so an
    unauthenticated or oversized request costs nothing and reveals nothing.
    """

    def __init__(self, app: Callable, token: str | None, max_body_bytes: int,
                 max_drain_bytes: int, metrics: Metrics | None = None,
                 own_auth: tuple[str, ...] = ()) -> None:
        self.app = app
        # Paths that check their clients themselves (the gateway's own token set).
        self.own_auth = frozenset(own_auth)
        self.expected = f"Bearer {token}".encode() if token else None
        self.max_body_bytes = max_body_bytes
        self.max_drain_bytes = max(max_drain_bytes, max_body_bytes)
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID_RE.match(given) else uuid.uuid4().hex[:16]
        info: dict[str, Any] = {"request_id": request_id, "status": 500, "bytes": 0,
                                "items": 0, "decisions": None}
        scope["mhsafety"] = info
        id_header = (b"x-request-id", request_id.encode())

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                info["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [id_header]
            await send(message)

        try:
            await self._handle(scope, receive, send_wrapper, headers, info)
        finally:
            elapsed = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.observe_request(scope.get("path", ""), info["status"], elapsed)
            self._log(scope, info, elapsed)

    async def _handle(self, scope: Scope, receive: Receive, send: Send,
                      headers: dict[bytes, bytes], info: dict[str, Any]) -> None:
        path = scope.get("path", "")
        if self.expected is not None and path.startswith("/v1/") and \
                path not in self.own_auth:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await _send_json(send, 401, {"detail": "unauthorized"},
                                 [(b"www-authenticate", b"Bearer")])
                return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            info["bytes"] = int(declared)
            if int(declared) <= self.max_drain_bytes:
                await self._drain(receive, 0)
            await self._too_large(send)
            return
        # Buffer the body (it is small by construction) and replay it to the app.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                more = message.get("more_body", False)
                info["bytes"] = await self._drain(receive, size) if more else size
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        info["bytes"] = size
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _drain(self, receive: Receive, size: int) -> int:
        """Read and drop the rest of an oversized body, up to the drain cap: a client that
        is still sending when the answer comes would otherwise see a reset, not the 413."""
        while size <= self.max_drain_bytes:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return size

    async def _too_large(self, send: Send) -> None:
        await _send_json(send, 413, {"detail": f"the request body is over the limit of "
                                               f"{self.max_body_bytes} bytes"},
                         [(b"connection", b"close")])

    @staticmethod
    def _log(scope: Scope, info: dict[str, Any], elapsed: float) -> None:
        if not LOG.isEnabledFor(logging.INFO):
            return
        decisions = info["decisions"]
        summary = ",".join(f"{k}:{v}" for k, v in sorted(decisions.items())) if decisions else "-"
        LOG.info("request_id=%s method=%s path=%s status=%s bytes=%d items=%d "
                 "latency_ms=%.1f decisions=%s", info["request_id"], scope.get("method"),
                 scope.get("path"), info["status"], info["bytes"], info["items"],
                 1000 * elapsed, summary)
