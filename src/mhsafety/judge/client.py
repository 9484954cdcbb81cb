"""Chat-completion requests to any OpenAI-compatible server, with our own retry policy.

The public call: :class:`ChatClient` (``await client.send(messages)``), or :func:`chat` /
:func:`achat` for one request, takes a list of chat messages and the endpoint's settings
(a :class:`~mhsafety.judge.settings.JudgeSettings`: model, URL, sampling, budget, retries,
timeout, headers, client) and returns an :class:`Answer` or a :class:`Failure`. Nothing in it
is tied to the judge's prompts: the judge, and anything else that calls a chat endpoint,
sends through it. Requests travel over a transport (:mod:`mhsafety.judge.transport`: the
built-in HTTP clients, or ``mhsafety.testing.MockTransport`` in tests).

:func:`complete` retries: ``429`` waits for ``Retry-After`` (capped) or backs off; 5xx,
408, timeouts, dropped connections and malformed bodies (not JSON, no ``choices``) back off
exponentially with full jitter; other 4xx (bad key, unknown model) stop the run, since every
request would fail the same way. A 400 saying the token-limit field is unsupported switches
the field once (``--token-param auto``). The API key never appears in an error message.

:class:`RequestShape` builds every request body from the settings once (model, budget field,
sampling, ``response_format``, logprobs, ``--extra-body``); :func:`complete` with ``fatal``, a
URL where nothing listens, a name that does not resolve or a TLS failure ends the run at the
first try (as a bad key or an unknown model always does) instead of after every item's retry
budget.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .transport import (  # noqa: F401 - re-exported: the request layer's public names
    TRANSPORTS,
    UNREACHABLE,
    FastTransport,
    OpenAITransport,
    Reply,
    Transport,
    TransportError,
    connect_error,
    make_transport,
    resolve_transport,
)

if TYPE_CHECKING:
    from .settings import JudgeSettings

_sleep = asyncio.sleep  # the retry wait; tests replace it to see the delays


class FatalAPIError(UsageError):
    """The server refused the request in a way retrying cannot fix (401, 404, ...)."""

    def __init__(self, message: str, status: int | None = None, param: str | None = None
                 ) -> None:
        super().__init__(message)
        self.status = status
        self.param = param


def scrub(text: str, secret: str | None) -> str:
    """``text`` with the API key (and anything shaped like an OpenAI key) masked."""
    if secret:
        text = text.replace(secret, "***")
    return re.sub(r"\bsk-[A-Za-z0-9_\-*]{6,}", "sk-***", text)


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

    def payload(self, messages_json: bytes, token_field: str | None = None,
                fields: Mapping[str, Any] | None = None) -> bytes:
        """The request body around ``messages_json`` (the messages list as UTF-8 JSON);
        ``fields`` are this request's own body fields (a guard model's per-call
        ``chat_template_kwargs``, say), merged over the run's."""
        if fields:
            body = {**self._fixed, (token_field or self.token_field): self.budget,
                    **fields, "messages": None}
            text = json.dumps(body, ensure_ascii=False)
            head, _, tail = text.rpartition('"messages": null')
            return head.encode() + b'"messages": ' + messages_json + tail.encode()
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


async def complete(transport: Transport, shape: RequestShape,
                   messages_json: bytes, policy: RetryPolicy, rng: random.Random,
                   secret: str | None = None,
                   on_retry: Callable[[str], None] | None = None,
                   fatal: Callable[[str], bool] | None = None,
                   fields: Mapping[str, Any] | None = None) -> Answer | Failure:
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
            reply = await transport.post("/chat/completions", shape.payload(messages_json, sent,
                                                                       fields))
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


# --------------------------------------------------------------------------- the public call


def api_key_of(settings: JudgeSettings) -> str | None:
    """The API key from the environment variable the settings name (None when unset)."""
    return os.environ.get(settings.api_key_env) or None


def run_sync(coro: Any) -> Any:
    """``asyncio.run``, also from inside a running loop (a Jupyter notebook): then in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class ChatClient:
    """One chat endpoint, ready to send: request shape, retry policy and transport, built
    once from ``settings`` (only the endpoint's fields are read: model, base URL, sampling
    and budget, token field, output format, extra body, headers, API key variable, timeout,
    attempts, back-off, client, concurrency).

    ``transport`` defaults to the built-in client ``settings.client`` names, closed by
    :meth:`aclose`; a transport passed in is the caller's (``aclose`` leaves it open).
    ``api_key`` defaults to the environment variable ``settings.api_key_env``.
    """

    def __init__(self, settings: JudgeSettings, transport: Transport | None = None, *,
                 api_key: str | None = None) -> None:
        self.settings = settings
        self.api_key = api_key if api_key is not None else api_key_of(settings)
        self.owns_transport = transport is None
        self.transport: Transport = transport or make_transport(
            settings.client, settings.base_url, self.api_key, settings.timeout,
            settings.concurrency, settings.headers)
        self.shape = RequestShape(settings)
        self.policy = RetryPolicy(max_attempts=settings.max_attempts,
                                  backoff_base=settings.backoff_base)
        self.rng = random.Random()  # back-off jitter only; it never touches what is asked

    async def send(self, messages: Sequence[dict[str, Any]] | bytes,
                   on_retry: Callable[[str], None] | None = None,
                   fatal: Callable[[str], bool] | None = None,
                   fields: Mapping[str, Any] | None = None) -> Answer | Failure:
        """Send one chat request (``messages``: the list of ``{"role", "content"}``, or that
        list already as UTF-8 JSON) with this endpoint's retries: an :class:`Answer`, or a
        :class:`Failure` once the attempts are spent. ``fields`` are body fields of this
        request only (``chat_template_kwargs``, ``logprobs``, ...), merged over the
        settings' (the guard-model kinds send one policy per call this way). Raises :class:`FatalAPIError` when the
        server refuses outright (bad key, unknown model); see :func:`complete`."""
        blob = messages if isinstance(messages, bytes) else json.dumps(
            list(messages), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return await complete(self.transport, self.shape, blob, self.policy, self.rng,
                              self.api_key, on_retry, fatal, fields)

    async def aclose(self) -> None:
        if self.owns_transport:
            await self.transport.aclose()

    async def __aenter__(self) -> ChatClient:  # noqa: PYI034
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def achat(messages: Sequence[dict[str, Any]], settings: JudgeSettings,
                transport: Transport | None = None) -> Answer | Failure:
    """One chat request to the endpoint ``settings`` describe: :class:`Answer` or
    :class:`Failure` (see :meth:`ChatClient.send`)."""
    async with ChatClient(settings, transport) as client:
        return await client.send(messages)


def chat(messages: Sequence[dict[str, Any]], settings: JudgeSettings,
         transport: Transport | None = None) -> Answer | Failure:
    """:func:`achat` from synchronous code (also inside a running event loop)."""
    return run_sync(achat(messages, settings, transport))


def refusal_message(exc: FatalAPIError, settings: JudgeSettings, api_key: str | None) -> str:
    """``exc`` with the URL in front and, for a refused key, where the key comes from."""
    hint = ""
    if "HTTP 401" in str(exc) or "HTTP 403" in str(exc):
        hint = (f" (check the API key in ${settings.api_key_env}"
                f"{'' if api_key else ', which is not set'})")
    return f"{settings.base_url}: {exc}{hint}"
