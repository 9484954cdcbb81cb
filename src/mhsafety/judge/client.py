"""Chat-completion requests to any OpenAI-compatible server, with our own retry policy.

Two transports send the same request; ``auto`` (the default) takes the SDK for https:// URLs
and the fast client for plain http:// ones:

- ``fast``: a small HTTP/1.1 client on asyncio streams (keep-alive, TLS, chunked
  or sized bodies). Measured here, the httpx stack under the ``openai`` SDK spends 5-10 ms of
  CPU per request, so on a 2-core machine it tops out far below 64 requests in flight at
  100 ms latency; this client spends well under 1 ms (see docs/benchmarks/judge.md).
  It does not read proxy settings.
- ``openai``: the official ``openai`` SDK's ``AsyncOpenAI`` (``max_retries=0``; the retries
  are ours), for proxies and anything else httpx handles.

:func:`complete` retries: ``429`` waits for ``Retry-After`` (capped) or backs off; 5xx,
408, timeouts, dropped connections and malformed bodies (not JSON, no ``choices``) back off
exponentially with full jitter; other 4xx (bad key, unknown model) stop the run, since every
request would fail the same way. The API key never appears in an error message.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import re
import ssl
import time
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import UsageError


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class TransportError(Exception):
    """The request got no HTTP answer (connection refused or dropped, timeout)."""


class FatalAPIError(UsageError):
    """The server refused the request in a way retrying cannot fix (401, 404, ...)."""


def scrub(text: str, secret: str | None) -> str:
    """``text`` with the API key (and anything shaped like an OpenAI key) masked."""
    if secret:
        text = text.replace(secret, "***")
    return re.sub(r"\bsk-[A-Za-z0-9_\-*]{6,}", "sk-***", text)


# --------------------------------------------------------------------------- transports


class FastTransport:
    """Minimal keep-alive HTTP/1.1 POST client; one TCP connection per request in flight."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--base-url must be an http:// or https:// URL, got {base_url!r}")
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
        if api_key:
            self._head += f"Authorization: Bearer {api_key}\r\n"
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, payload: bytes) -> Reply:
        try:
            if _timeout is not None:  # Python 3.11+: no extra task per request
                async with _timeout(self.timeout):
                    return await self._post(path, payload)
            return await asyncio.wait_for(self._post(path, payload), self.timeout)
        except asyncio.TimeoutError:
            raise TransportError(f"no answer within {self.timeout:g} s") from None

    async def _post(self, path: str, payload: bytes) -> Reply:
        request = (f"POST {self.prefix}{path} HTTP/1.1\r\n{self._head}"
                   f"Content-Length: {len(payload)}\r\n\r\n").encode("latin-1") + payload
        while self._idle:
            conn = self._idle.pop()
            try:
                return await self._exchange(conn, request)
            except _StaleConnection:
                continue  # the server closed an idle connection: try another or a new one
        try:
            conn = await asyncio.open_connection(self.host, self.port, ssl=self.ssl)
        except OSError as exc:
            raise TransportError(f"cannot connect to {self.host}:{self.port} "
                                 f"({exc.strerror or type(exc).__name__})") from None
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
_sleep = asyncio.sleep  # the retry wait; tests replace it to see the delays


class _StaleConnection(Exception):
    pass


class OpenAITransport:
    """The official SDK (``AsyncOpenAI``, retries off); replies are read raw, then parsed here."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float,
                 max_connections: int) -> None:
        try:
            import httpx
            import openai
        except ModuleNotFoundError as exc:
            from ..errors import missing_extra

            raise missing_extra(exc.name or "openai", "judge") from None
        self._openai = openai
        limits = httpx.Limits(max_connections=max_connections,
                              max_keepalive_connections=max_connections)
        self.client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "unused", max_retries=0, timeout=timeout,
            http_client=httpx.AsyncClient(limits=limits, timeout=timeout))
        self.timeout = timeout

    async def post(self, path: str, payload: bytes) -> Reply:
        openai = self._openai
        body = json.loads(payload)
        try:
            raw = await self.client.chat.completions.with_raw_response.create(**body)
            http = raw.http_response
        except openai.APIStatusError as exc:
            http = exc.response
        except openai.APITimeoutError:
            raise TransportError(f"no answer within {self.timeout:g} s") from None
        except openai.APIConnectionError as exc:
            raise TransportError(f"connection failed ({type(exc.__cause__).__name__})") from None
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
                   max_connections: int) -> FastTransport | OpenAITransport:
    name = resolve_transport(name, base_url)
    if name == "fast":
        return FastTransport(base_url, api_key, timeout)
    if name == "openai":
        return OpenAITransport(base_url, api_key, timeout, max_connections)
    raise UsageError(f"unknown client {name!r}; expected one of {', '.join(TRANSPORTS)}")


# --------------------------------------------------------------------------- retry policy


@dataclass
class RetryPolicy:
    max_attempts: int = 8
    backoff_base: float = 1.0  # seconds; attempt n waits up to base * 2**n (full jitter)
    backoff_cap: float = 60.0
    retry_after_cap: float = 120.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** attempt))


@dataclass
class Answer:
    """One completed request: the answer text and what the server said about itself."""

    content: str
    model: str | None
    system_fingerprint: str | None
    usage: dict[str, Any]
    latency_s: float
    attempts: int


@dataclass
class Failure:
    reason: str
    attempts: int
    history: list[str] = field(default_factory=list)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent/invalid."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _Retryable(Exception):
    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait


def _interpret(reply: Reply, secret: str | None) -> tuple[str, dict[str, Any]]:
    """The answer of a reply, or :class:`_Retryable` / :class:`FatalAPIError`."""
    if reply.status == 429:
        raise _Retryable("429 rate limited", retry_after_seconds(reply.headers.get("retry-after")))
    if reply.status >= 500 or reply.status == 408:
        raise _Retryable(f"HTTP {reply.status}", retry_after_seconds(reply.headers.get("retry-after")))
    if reply.status != 200:
        detail = reply.body[:300].decode("utf-8", "replace")
        try:
            detail = json.loads(reply.body)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            pass
        raise FatalAPIError(scrub(f"the server refused the request with HTTP {reply.status}: "
                                  f"{detail}", secret))
    try:
        data = json.loads(reply.body)
    except (ValueError, UnicodeDecodeError):
        raise _Retryable("malformed reply: body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list) \
            or not data["choices"] or not isinstance(data["choices"][0], dict):
        raise _Retryable("malformed reply: no choices")
    message = data["choices"][0].get("message")
    if not isinstance(message, dict):
        raise _Retryable("malformed reply: no message in choices[0]")
    content = message.get("content")
    # A null content (a refusal, a tool call) is an answer that names no label, not an error.
    return (content if isinstance(content, str) else ""), data


async def complete(transport: FastTransport | OpenAITransport, payload: bytes,
                   policy: RetryPolicy, rng: random.Random,
                   secret: str | None = None) -> Answer | Failure:
    """Send one chat-completion request, retrying per ``policy``; never raises for a failure
    that retrying could fix (those come back as :class:`Failure`)."""
    history: list[str] = []
    for attempt in range(policy.max_attempts):
        start = time.perf_counter()
        try:
            reply = await transport.post("/chat/completions", payload)
            content, data = _interpret(reply, secret)
        except TransportError as exc:
            reason, wait = str(exc), None
        except _Retryable as exc:
            reason, wait = str(exc), exc.wait
        else:
            return Answer(content, data.get("model"), data.get("system_fingerprint"),
                          data.get("usage") or {}, time.perf_counter() - start, attempt + 1)
        history.append(reason)
        if attempt + 1 < policy.max_attempts:
            delay = (min(wait, policy.retry_after_cap) if wait is not None
                     else policy.backoff(attempt, rng))
            await _sleep(delay)
    return Failure(f"gave up after {policy.max_attempts} attempts; last error: {history[-1]}",
                   policy.max_attempts, history)
