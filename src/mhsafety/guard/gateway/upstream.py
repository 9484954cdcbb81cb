"""The model server behind the gateway, one client per process.

Plain completions go through the judge's small keep-alive HTTP client
(:class:`~mhsafety.judge.transport.FastTransport`: well under 1 ms of CPU per request, where
httpx's connection pool spends several, which on 2 cores capped the gateway near 100
requests/s); streams and ``GET /models`` through ``httpx.AsyncClient``. The API key comes
from the environment variable the config names and is sent as a bearer token; the client's
own ``Authorization`` never reaches the upstream.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ...errors import missing_extra
from .config import GatewayConfig


class UpstreamError(Exception):
    """No HTTP answer from the upstream: ``status`` is what the gateway answers (502/504)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Reply:
    """A plain answer, read the way the gateway reads httpx's responses."""

    def __init__(self, status: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code, self.content = status, content
        self.headers = {k.lower(): v for k, v in headers.items()}

    def json(self) -> Any:
        return json.loads(self.content)


class Upstream:
    def __init__(self, cfg: GatewayConfig, max_connections: int) -> None:
        try:
            import httpx
        except ModuleNotFoundError:
            raise missing_extra("httpx", "serve") from None
        self.httpx = httpx
        self.base = cfg.upstream.rstrip("/")
        key = os.environ.get(cfg.upstream_key_env)
        headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.AsyncClient(
            timeout=cfg.upstream_timeout_s, headers=headers, follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections))
        self.timeout = cfg.upstream_timeout_s
        from ...judge.transport import FastTransport

        self.fast = FastTransport(self.base, key, cfg.upstream_timeout_s)

    def _error(self, exc: Exception) -> UpstreamError:
        if isinstance(exc, self.httpx.TimeoutException):
            return UpstreamError(f"the upstream did not answer within {self.timeout:g} s", 504)
        return UpstreamError(f"the upstream could not be reached ({type(exc).__name__})", 502)

    async def post(self, body: dict[str, Any]) -> Reply:
        """One chat completion, not streamed: the answer (any status)."""
        from ...judge.transport import TransportError

        try:
            reply = await self.fast.post("/chat/completions",
                                         json.dumps(body, ensure_ascii=False).encode())
        except TransportError as exc:
            if exc.kind == "timeout":
                raise UpstreamError(f"the upstream did not answer within {self.timeout:g} s",
                                    504) from None
            raise UpstreamError(f"the upstream could not be reached ({exc.kind})",
                                502) from None
        return Reply(reply.status, reply.headers, reply.body)

    async def open_stream(self, body: dict[str, Any]) -> Any:
        """A streamed chat completion: the open httpx response (the caller closes it)."""
        request = self.client.build_request(
            "POST", f"{self.base}/chat/completions",
            content=json.dumps(body, ensure_ascii=False).encode(),
            headers={"Accept": "text/event-stream"})
        try:
            return await self.client.send(request, stream=True)
        except self.httpx.HTTPError as exc:
            raise self._error(exc) from None

    async def get(self, path: str, timeout: float | None = None) -> Any:
        try:
            return await self.client.get(f"{self.base}{path}",
                                         timeout=timeout or self.timeout)
        except self.httpx.HTTPError as exc:
            raise self._error(exc) from None

    async def aclose(self) -> None:
        await self.fast.aclose()
        await self.client.aclose()
