"""How a request reaches a chat server: the transport interface and the built-in transports.

A transport sends one POST (a path under the API root and a JSON body) and returns the
:class:`Reply` (status, headers, body), or raises :class:`TransportError` when no HTTP answer
came (refused, dropped, timed out). Everything above it (request bodies, retries, parsing)
lives in :mod:`mhsafety.judge.client` and works the same over any transport:

- :class:`FastTransport`: a small HTTP/1.1 client on asyncio streams (keep-alive, TLS, chunked
  or sized bodies). Measured here, the httpx stack under the ``openai`` SDK spends 5-10 ms of
  CPU per request, so on a 2-core machine it tops out far below 64 requests in flight at
  100 ms latency; this client spends well under 1 ms (see docs/benchmarks/judge.md).
  It does not read proxy settings.
- :class:`OpenAITransport`: the official ``openai`` SDK's ``AsyncOpenAI`` (``max_retries=0``;
  the retries are ours), for proxies and anything else httpx handles.
- ``mhsafety.testing.MockTransport(handler)``: in-process, no socket, for tests.

``auto`` (:func:`resolve_transport`) takes the SDK for https:// URLs and the fast client for
plain http:// ones. A new transport is any object with ``async post(path, payload) -> Reply``
and ``async aclose()`` (:class:`Transport`).
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import zlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from ..errors import UsageError
from ..settings import SettingsError

__all__ = ["TRANSPORTS", "UNREACHABLE", "FastTransport", "OpenAITransport", "Reply",
           "Transport", "TransportError", "connect_error", "make_transport",
           "resolve_transport"]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class TransportError(Exception):
    """The request got no HTTP answer (connection refused or dropped, timeout).

    ``kind`` tells faults that retrying cannot fix at the start of a run (``refused``: nothing
    listens; ``dns``: the name does not resolve; ``tls``) from transient ones (``timeout``,
    ``dropped``)."""

    def __init__(self, message: str, kind: str = "dropped") -> None:
        super().__init__(message)
        self.kind = kind


UNREACHABLE = ("refused", "dns", "tls")


def connect_error(exc: BaseException, where: str) -> TransportError:
    """A connection failure, classified by walking the exception chain (the SDK wraps it)."""
    seen: BaseException | None = exc
    text = ""
    while seen is not None:
        text += f" {type(seen).__name__} {seen}"
        if isinstance(seen, ConnectionRefusedError):
            return TransportError(f"nothing listens at {where} (connection refused)", "refused")
        if isinstance(seen, socket.gaierror):
            return TransportError(f"the name in {where} does not resolve", "dns")
        if isinstance(seen, ssl.SSLError):
            return TransportError(f"TLS failure talking to {where} ({seen.reason or seen})",
                                  "tls")
        seen = seen.__cause__ or seen.__context__
    low = text.lower()
    if "connection refused" in low or "connect call failed" in low:
        return TransportError(f"nothing listens at {where} (connection refused)", "refused")
    if "name or service not known" in low or "nodename nor servname" in low \
            or "temporary failure in name resolution" in low or "getaddrinfo" in low:
        return TransportError(f"the name in {where} does not resolve", "dns")
    if "certificate" in low or "ssl" in low or "tls" in low:
        return TransportError(f"TLS failure talking to {where}", "tls")
    return TransportError(f"cannot connect to {where} ({type(exc).__name__})", "dropped")



@runtime_checkable
class Transport(Protocol):
    """What carries a request: one POST under the API root, answered or failed."""

    async def post(self, path: str, payload: bytes) -> Reply:
        """Send ``payload`` (a JSON body) to ``path`` (e.g. ``/chat/completions``); raise
        :class:`TransportError` when no HTTP answer comes."""

    async def aclose(self) -> None:
        """Release connections."""


class FastTransport:
    """Minimal keep-alive HTTP/1.1 POST client; one TCP connection per request in flight."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float,
                 headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError.about("base_url", "must be an http:// or https:// URL, got "
                                                  f"{base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.prefix = parts.path.rstrip("/")
        default_port = (parts.scheme == "https" and self.port == 443) or self.port == 80
        host_header = self.host if default_port else f"{self.host}:{self.port}"
        self.timeout = timeout
        self._head = (
            f"Host: {host_header}\r\nContent-Type: application/json\r\n"
            "Accept: application/json\r\nAccept-Encoding: identity\r\n"
            "User-Agent: mhsafety-judge\r\nConnection: keep-alive\r\n"
        )
        for name, value in (headers or {}).items():
            self._head += f"{name}: {value}\r\n"
        if api_key:
            self._head += f"Authorization: Bearer {api_key}\r\n"
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the idle ones belong to

    async def post(self, path: str, payload: bytes) -> Reply:
        try:
            if _timeout is not None:  # Python 3.11+: no extra task per request
                async with _timeout(self.timeout):
                    return await self._post(path, payload)
            return await asyncio.wait_for(self._post(path, payload), self.timeout)
        except asyncio.TimeoutError:
            raise TransportError(f"no answer within {self.timeout:g} s", "timeout") from None

    async def _post(self, path: str, payload: bytes) -> Reply:
        request = (f"POST {self.prefix}{path} HTTP/1.1\r\n{self._head}"
                   f"Content-Length: {len(payload)}\r\n\r\n").encode("latin-1") + payload
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # reused from another asyncio.run: its sockets are gone
            self._idle.clear()
            self._loop = loop
        while self._idle:
            conn = self._idle.pop()
            try:
                return await self._exchange(conn, request)
            except _StaleConnection:
                continue  # the server closed an idle connection: try another or a new one
        try:
            conn = await asyncio.open_connection(self.host, self.port, ssl=self.ssl)
        except OSError as exc:
            raise connect_error(exc, f"{self.host}:{self.port}") from None
        try:
            return await self._exchange(conn, request)
        except _StaleConnection:
            raise TransportError("the server closed the connection without answering") from None

    async def _exchange(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                        request: bytes) -> Reply:
        reader, writer = conn
        try:
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
            if not status_line:
                raise _StaleConnection
            reply, keep = await self._read_reply(reader, status_line)
        except _StaleConnection:
            writer.close()
            raise
        except (OSError, asyncio.IncompleteReadError, ValueError, asyncio.LimitOverrunError) as exc:
            writer.close()
            raise TransportError(f"connection dropped ({type(exc).__name__})") from None
        except BaseException:  # cancelled or timed out mid-read: the connection is unusable
            writer.close()
            raise
        if keep:
            self._idle.append(conn)
        else:
            writer.close()
        return reply

    @staticmethod
    async def _read_reply(reader: asyncio.StreamReader,
                          status_line: bytes) -> tuple[Reply, bool]:
        parts = status_line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError("not an HTTP response")
        status = int(parts[1])
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise asyncio.IncompleteReadError(b"", None)
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        keep = headers.get("connection", "").lower() != "close" and parts[0] != "HTTP/1.0"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            body = b"".join(chunks)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            body = await reader.read()
            keep = False
        encoding = headers.get("content-encoding", "").lower()
        if encoding in ("gzip", "deflate"):
            body = zlib.decompress(body, 16 + zlib.MAX_WBITS if encoding == "gzip" else 0)
        return Reply(status, headers, body), keep

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()


_timeout = getattr(asyncio, "timeout", None)


class _StaleConnection(Exception):
    pass


class OpenAITransport:
    """The official SDK (``AsyncOpenAI``, retries off); replies are read raw, then parsed here."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float,
                 max_connections: int, headers: dict[str, str] | None = None) -> None:
        try:
            import httpx
            import openai
        except ModuleNotFoundError as exc:
            from ..errors import missing_extra

            raise missing_extra(exc.name or "openai", "judge") from None
        self._openai = openai
        self._httpx = httpx
        limits = httpx.Limits(max_connections=max_connections,
                              max_keepalive_connections=max_connections)
        self.client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "unused", max_retries=0, timeout=timeout,
            default_headers=headers or None,
            http_client=httpx.AsyncClient(limits=limits, timeout=timeout))
        self.timeout = timeout
        self.where = urlsplit(base_url).netloc or base_url

    async def post(self, path: str, payload: bytes) -> Reply:
        openai = self._openai
        try:
            # The body goes out as built (extra_body carries provider fields the SDK's typed
            # arguments do not know); the SDK adds its headers, auth and pooling.
            http = await self.client.post(path, body=json.loads(payload),
                                          cast_to=self._httpx.Response)
        except openai.APIStatusError as exc:
            http = exc.response
        except openai.APITimeoutError:
            raise TransportError(f"no answer within {self.timeout:g} s", "timeout") from None
        except openai.APIConnectionError as exc:
            raise connect_error(exc, self.where) from None
        return Reply(http.status_code, {k.lower(): v for k, v in http.headers.items()},
                     http.content)

    async def aclose(self) -> None:
        await self.client.close()


TRANSPORTS = ("auto", "fast", "openai")


def resolve_transport(name: str, base_url: str) -> str:
    """``auto``: the official SDK for https:// (remote APIs: TLS, proxies), the fast client
    for plain http:// (local servers, where requests per second matter)."""
    if name == "auto":
        return "openai" if base_url.lower().startswith("https://") else "fast"
    return name


def make_transport(name: str, base_url: str, api_key: str | None, timeout: float,
                   max_connections: int, headers: dict[str, str] | None = None
                   ) -> FastTransport | OpenAITransport:
    name = resolve_transport(name, base_url)
    if name == "fast":
        return FastTransport(base_url, api_key, timeout, headers)
    if name == "openai":
        return OpenAITransport(base_url, api_key, timeout, max_connections, headers)
    raise UsageError(f"unknown client {name!r}; expected one of {', '.join(TRANSPORTS)}")

