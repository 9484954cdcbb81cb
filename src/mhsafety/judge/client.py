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
request would fail the same way. A 400 saying the token-limit field is unsupported switches
the field once (``--token-param auto``). The API key never appears in an error message.

:class:`RequestShape` builds every request body from the settings once (model, budget field,
sampling, ``response_format``, logprobs, ``--extra-body``); :func:`complete` with ``fatal``, a URL where nothing listens, a
name that does not resolve or a TLS failure ends the run at the first try (as a bad key or an
unknown model always does) instead of after every item's retry budget.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import re
import socket
import ssl
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import UsageError

if TYPE_CHECKING:
    from .settings import JudgeSettings


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


class FatalAPIError(UsageError):
    """The server refused the request in a way retrying cannot fix (401, 404, ...)."""

    def __init__(self, message: str, status: int | None = None, param: str | None = None
                 ) -> None:
        super().__init__(message)
        self.status = status
        self.param = param


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


def scrub(text: str, secret: str | None) -> str:
    """``text`` with the API key (and anything shaped like an OpenAI key) masked."""
    if secret:
        text = text.replace(secret, "***")
    return re.sub(r"\bsk-[A-Za-z0-9_\-*]{6,}", "sk-***", text)


# --------------------------------------------------------------------------- transports


class FastTransport:
    """Minimal keep-alive HTTP/1.1 POST client; one TCP connection per request in flight."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float,
                 headers: dict[str, str] | None = None) -> None:
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
        for name, value in (headers or {}).items():
            self._head += f"{name}: {value}\r\n"
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
            raise TransportError(f"no answer within {self.timeout:g} s", "timeout") from None

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
_sleep = asyncio.sleep  # the retry wait; tests replace it to see the delays


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


# --------------------------------------------------------------------------- retry policy


@dataclass
class RetryPolicy:
    # The attempts and the back-off base are judge settings (their defaults live in
    # JudgeSettings); the caps are the client's own limits.
    max_attempts: int
    backoff_base: float  # seconds; attempt n waits up to base * 2**n (full jitter)
    backoff_cap: float = 60.0
    retry_after_cap: float = 120.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** attempt))


@dataclass
class Choice:
    """One answer of a reply: its text, the reasoning the server kept apart, why it ended,
    and its first tokens' log-probabilities (when asked for)."""

    content: str
    reasoning: str | None = None
    finish_reason: str | None = None
    logprobs: list[dict[str, Any]] | None = None


@dataclass
class Answer:
    """One completed request: its answers and what the server said about itself."""

    choices: list[Choice]
    model: str | None
    system_fingerprint: str | None
    usage: dict[str, Any]
    latency_s: float
    attempts: int

    @property
    def content(self) -> str:
        return self.choices[0].content


@dataclass
class Failure:
    reason: str
    attempts: int
    history: list[str] = field(default_factory=list)


# Log-probabilities kept per answer: the first few tokens are enough to find the decisive one
# behind whitespace or markup, and the log stays small.
LOGPROB_TOKENS = 4


class RequestShape:
    """The body of every chat-completion request of a run, built once from the settings.

    Only the messages differ between requests, so the body is kept as JSON text around a
    hole for them. ``token_field`` is the name the budget goes under; with ``--token-param
    auto`` it starts as ``max_tokens`` and :meth:`switch` changes it once for the whole run.
    """

    def __init__(self, settings: JudgeSettings) -> None:
        from .prompts import label_schema

        self.model = settings.model
        self.auto = settings.token_param == "auto"
        self.token_field = "max_tokens" if self.auto else settings.token_param
        self.switched_from: str | None = None
        body: dict[str, Any] = {"model": settings.model}
        sampling = dict(settings.sampling)
        self.budget = sampling.pop("max_tokens")
        body.update(sampling)
        if settings.output == "json":
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "safety_label", "strict": True, "schema": label_schema()}}
        body.update(settings.extra_body or {})
        self._fixed = body
        self._holes: dict[str, tuple[bytes, bytes]] = {}

    def _hole(self, token_field: str) -> tuple[bytes, bytes]:
        hole = self._holes.get(token_field)
        if hole is None:
            body = {**self._fixed, token_field: self.budget, "messages": None}
            text = json.dumps(body, ensure_ascii=False)
            head, _, tail = text.rpartition('"messages": null')
            hole = self._holes[token_field] = (head.encode() + b'"messages": ',
                                               tail.encode())
        return hole

    def payload(self, messages_json: bytes, token_field: str | None = None) -> bytes:
        """The request body around ``messages_json`` (the messages list as UTF-8 JSON)."""
        head, tail = self._hole(token_field or self.token_field)
        return head + messages_json + tail

    def body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """The same request as a dict (for request files that are not sent here)."""
        return {**self._fixed, self.token_field: self.budget, "messages": messages}

    def switch(self, sent: str, error: FatalAPIError) -> bool:
        """After ``error`` for a request sent with ``sent``: whether to send it again (the
        field was switched now, or by another request meanwhile)."""
        if sent != self.token_field:
            return True  # another request already switched it
        if not self.auto or self.switched_from is not None or not _unsupported(error, sent):
            return False
        self.switched_from = sent
        self.token_field = ("max_completion_tokens" if sent == "max_tokens"
                            else "max_tokens")
        return True


def _unsupported(error: FatalAPIError, name: str) -> bool:
    text = str(error).lower()
    return error.status in (400, 422) and (error.param == name or (
        name in text and ("unsupported" in text or "not supported" in text
                          or "unrecognized" in text or "unknown" in text
                          or "extra inputs" in text)))


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


def _choice(raw: Any) -> Choice:
    message = raw.get("message")
    if not isinstance(message, dict):
        raise _Retryable("malformed reply: no message in choices[0]")
    content = message.get("content")
    reasoning = message.get("reasoning_content")
    if not isinstance(reasoning, str):
        reasoning = message.get("reasoning")
    logprobs = raw.get("logprobs")
    tokens = logprobs.get("content") if isinstance(logprobs, dict) else None
    finish = raw.get("finish_reason")
    # A null content (a refusal, a tool call) is an answer that names no label, not an error.
    return Choice(content if isinstance(content, str) else "",
                  reasoning if isinstance(reasoning, str) and reasoning else None,
                  finish if isinstance(finish, str) else None,
                  tokens[:LOGPROB_TOKENS] if isinstance(tokens, list) else None)


def _interpret(reply: Reply, secret: str | None) -> tuple[list[Choice], dict[str, Any]]:
    """The answers of a reply, or :class:`_Retryable` / :class:`FatalAPIError`."""
    if reply.status == 429:
        raise _Retryable("429 rate limited", retry_after_seconds(reply.headers.get("retry-after")))
    if reply.status >= 500 or reply.status == 408:
        raise _Retryable(f"HTTP {reply.status}", retry_after_seconds(reply.headers.get("retry-after")))
    if reply.status != 200:
        detail = reply.body[:300].decode("utf-8", "replace")
        param = None
        try:
            error = json.loads(reply.body)["error"]
            detail = error["message"]
            param = error.get("param") if isinstance(error.get("param"), str) else None
        except (ValueError, KeyError, TypeError):
            pass
        what = {401: "the API key was refused", 403: "access denied",
                404: "unknown model or wrong URL"}.get(reply.status, "the server refused the "
                                                                     "request")
        raise FatalAPIError(scrub(f"{what} (HTTP {reply.status}): {detail}", secret),
                            reply.status, param)
    try:
        data = json.loads(reply.body)
    except (ValueError, UnicodeDecodeError):
        raise _Retryable("malformed reply: body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list) \
            or not data["choices"] or not isinstance(data["choices"][0], dict):
        raise _Retryable("malformed reply: no choices")
    return [_choice(c) for c in data["choices"] if isinstance(c, dict)], data


async def complete(transport: FastTransport | OpenAITransport, shape: RequestShape,
                   messages_json: bytes, policy: RetryPolicy, rng: random.Random,
                   secret: str | None = None,
                   on_retry: Callable[[str], None] | None = None,
                   fatal: Callable[[str], bool] | None = None) -> Answer | Failure:
    """Send one chat-completion request, retrying per ``policy``; never raises for a failure
    that retrying could fix (those come back as :class:`Failure`). A transport fault for
    which ``fatal(kind)`` is true raises :class:`FatalAPIError` at once: the runner says so
    for "nothing listens", DNS and TLS faults until the server has answered once, so a wrong
    URL ends the run in seconds while a server restarting mid-run is waited for."""
    history: list[str] = []
    switches = 0
    attempt = 0
    while attempt < policy.max_attempts:
        start = time.perf_counter()
        sent = shape.token_field
        try:
            reply = await transport.post("/chat/completions", shape.payload(messages_json, sent))
            choices, data = _interpret(reply, secret)
        except TransportError as exc:
            if fatal is not None and fatal(exc.kind):
                raise FatalAPIError(str(exc)) from None
            reason, wait = str(exc), None
        except _Retryable as exc:
            reason, wait = str(exc), exc.wait
        except FatalAPIError as exc:
            if switches == 0 and shape.switch(sent, exc):
                switches += 1  # the same request under the other field name, at once
                continue
            raise
        else:
            return Answer(choices, data.get("model"), data.get("system_fingerprint"),
                          data.get("usage") or {}, time.perf_counter() - start, attempt + 1)
        history.append(reason)
        attempt += 1
        if attempt < policy.max_attempts:
            if on_retry is not None:
                on_retry(reason)
            delay = (min(wait, policy.retry_after_cap) if wait is not None
                     else policy.backoff(attempt - 1, rng))
            await _sleep(delay)
    return Failure(f"gave up after {policy.max_attempts} attempts; last error: {history[-1]}",
                   policy.max_attempts, history)
