"""An in-process transport for tests: ``MockTransport(handler)``, shaped like httpx's.

``handler`` is a function from a :class:`Request` to a :class:`Response` (plain or
``async``); no socket is opened and nothing is written. Pass the transport to the judge
(``judge_examples(items, settings, transport)``) or to a
:class:`~mhsafety.judge.client.ChatClient`; retries, the token-field switch, reasoning
fields, logprobs and parsing run exactly as over HTTP::

    from mhsafety.testing import MockTransport, chat_response

    def handler(request):
        prompt = request.json()["messages"][-1]["content"]
        return chat_response("Safe Response" if "thank" in prompt else "Nonsense")

    judgement = judge_examples(items, settings, MockTransport(handler))

A handler may also raise :class:`~mhsafety.judge.transport.TransportError` (a timeout, a
dropped connection) or return any status (``Response(429, headers={"Retry-After": "0"})``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..judge.transport import Reply

__all__ = ["MockTransport", "Request", "Response", "chat_response"]


@dataclass
class Request:
    """A request as the handler sees it (``method``, ``path``, ``content``, ``json()``)."""

    method: str
    path: str
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.content)


class Response:
    """A reply: a status and either ``json`` (an object to serialise) or raw ``content``."""

    def __init__(self, status_code: int = 200, *, json: Any = None,
                 content: bytes | str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}
        if json is not None:
            self.content = _dumps(json)
            self.headers.setdefault("content-type", "application/json")
        elif isinstance(content, str):
            self.content = content.encode("utf-8")
        else:
            self.content = content or b""


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def chat_response(content: str | None, *, model: str = "mock-model",
                  reasoning: str | None = None, finish_reason: str = "stop",
                  usage: dict[str, int] | None = None, n: int = 1) -> Response:
    """A 200 chat-completions reply whose ``n`` choices say ``content`` (``reasoning`` goes
    in the ``reasoning_content`` field, as reasoning servers keep it)."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    choices = [{"index": i, "message": message, "finish_reason": finish_reason}
               for i in range(n)]
    body = {"id": "chatcmpl-mock", "object": "chat.completion", "model": model,
            "choices": choices,
            "usage": usage or {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}
    return Response(200, json=body)


Handler = Callable[[Request], "Response | Awaitable[Response]"]


class MockTransport:
    """A transport that hands each request to ``handler`` in-process (see the module doc).
    ``requests`` keeps every request it saw, in order."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []

    async def post(self, path: str, payload: bytes) -> Reply:
        request = Request("POST", path, payload, {"content-type": "application/json"})
        self.requests.append(request)
        response = self.handler(request)
        if inspect.isawaitable(response):
            response = await response
        return Reply(response.status_code, dict(response.headers), response.content)

    async def aclose(self) -> None:
        return None
