"""OpenAI chat streaming on the wire: read an upstream's events, write the client's.

A streamed chat completion (``"stream": true``) is a ``text/event-stream``: each event is
``data: <json>`` and a blank line; the JSON objects are ``"object": "chat.completion.chunk"``
with ``choices[i].delta`` (``role`` in the first, then ``content`` pieces) and
``finish_reason`` set in the last content chunk; ``"stream_options": {"include_usage":
true}`` adds one more chunk with ``usage`` and empty ``choices`` (some servers send
``"choices": null`` or leave it out); the stream ends with ``data: [DONE]``. An error during
the stream arrives as an object with an ``error`` field.

:class:`SSEDecoder` turns bytes into events incrementally (lines may be cut anywhere between
network reads); :func:`iter_chunks` yields the JSON chunks of an async byte stream (an
``httpx`` response's ``aiter_bytes()``) until ``[DONE]``; the ``chunk_*`` helpers read one
chunk. :func:`make_chunk` and :func:`encode_event` build what the gateway sends: the same
shapes, with a top-level ``"mhsafety"`` object on the final chunk (clients that do not know
it ignore it; the ``openai`` SDK keeps it as an extra field).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import DataError

CHUNK_OBJECT = "chat.completion.chunk"
DONE = "[DONE]"
SSE_DONE = b"data: [DONE]\n\n"
MEDIA_TYPE = "text/event-stream"


class StreamFormatError(DataError):
    """The upstream's event stream is not what an OpenAI-compatible server sends."""


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event: its data lines joined with newlines, and its type if named."""

    data: str
    event: str | None = None
    id: str | None = None


class SSEDecoder:
    """Bytes in, events out, as the WHATWG event-stream rules read them (the parts chat uses).

    Lines end in LF, CRLF or CR; ``:`` lines are comments; ``data`` lines accumulate and a
    blank line dispatches the event; ``event`` and ``id`` are kept; other fields are ignored.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None

    def feed(self, chunk: bytes | str) -> list[SSEEvent]:
        if isinstance(chunk, bytes):
            try:  # the incremental decoder keeps a character cut between reads
                text = self._utf8.decode(chunk)
            except UnicodeDecodeError:
                raise StreamFormatError("the upstream's event stream is not UTF-8") from None
        else:
            text = chunk
        self._buffer += text
        events = []
        while True:
            cut = min((i for i in (self._buffer.find("\r"), self._buffer.find("\n")) if i >= 0),
                      default=-1)
            if cut < 0:
                break
            if self._buffer[cut] == "\r" and cut == len(self._buffer) - 1:
                break  # a CR at the end may be the first half of CRLF
            line = self._buffer[:cut]
            step = 2 if self._buffer.startswith("\r\n", cut) else 1
            self._buffer = self._buffer[cut + step:]
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[SSEEvent]:
        """The stream ended: dispatch what an unterminated last event holds."""
        events = []
        if self._buffer:
            event = self._line(self._buffer.rstrip("\r"))
            self._buffer = ""
            if event is not None:
                events.append(event)
        event = self._line("")
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            if not self._data:
                self._event = None
                return None
            event = SSEEvent("\n".join(self._data), self._event, self._id)
            self._data, self._event = [], None
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        return None


async def iter_events(chunks: AsyncIterable[bytes | str]) -> AsyncIterator[SSEEvent]:
    """The events of an async byte (or text) stream."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.close():
        yield event


async def iter_chunks(chunks: AsyncIterable[bytes | str]) -> AsyncIterator[dict[str, Any]]:
    """The JSON objects of an upstream chat stream, up to ``data: [DONE]``.

    Error objects (``{"error": ...}``) are yielded like chunks (see :func:`chunk_error`);
    data that is not a JSON object raises :class:`StreamFormatError` (no text quoted).
    """
    async for event in iter_events(chunks):
        if event.data.strip() == DONE:
            return
        try:
            obj = json.loads(event.data)
        except json.JSONDecodeError:
            raise StreamFormatError("the upstream sent an event whose data is not JSON") \
                from None
        if not isinstance(obj, dict):
            raise StreamFormatError("the upstream sent an event whose data is not a JSON "
                                    "object")
        yield obj


# ---------------------------------------------------------------------- reading one chunk

def _choice(chunk: Mapping[str, Any], index: int = 0) -> Mapping[str, Any] | None:
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return None
    for choice in choices:
        if isinstance(choice, Mapping) and choice.get("index", 0) == index:
            return choice
    return None


def _delta(chunk: Mapping[str, Any], index: int = 0) -> Mapping[str, Any]:
    choice = _choice(chunk, index)
    delta = choice.get("delta") if choice else None
    return delta if isinstance(delta, Mapping) else {}


def chunk_text(chunk: Mapping[str, Any], index: int = 0) -> str:
    """The content piece in choice ``index``'s delta ("" when none)."""
    content = _delta(chunk, index).get("content")
    return content if isinstance(content, str) else ""


def chunk_role(chunk: Mapping[str, Any], index: int = 0) -> str | None:
    role = _delta(chunk, index).get("role")
    return role if isinstance(role, str) else None


def chunk_finish_reason(chunk: Mapping[str, Any], index: int = 0) -> str | None:
    choice = _choice(chunk, index)
    reason = choice.get("finish_reason") if choice else None
    return reason if isinstance(reason, str) else None


def is_usage_chunk(chunk: Mapping[str, Any]) -> bool:
    """The ``include_usage`` chunk: usage set, no choices (empty, null or absent)."""
    return bool(chunk.get("usage")) and not chunk.get("choices")


def chunk_error(chunk: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``error`` object an upstream sends mid-stream, or None."""
    error = chunk.get("error")
    return error if isinstance(error, Mapping) else None


# ---------------------------------------------------------------------- writing chunks

def make_chunk(*, id: str, model: str, created: int, content: str | None = None,
               role: str | None = None, finish_reason: str | None = None,
               usage: Mapping[str, Any] | None = None, mhsafety: Mapping[str, Any] | None = None,
               system_fingerprint: str | None = None, with_choice: bool = True,
               index: int = 0) -> dict[str, Any]:
    """One ``chat.completion.chunk`` to send downstream.

    ``with_choice=False`` gives the usage chunk's shape (``"choices": []``). ``mhsafety``
    adds the guard's decision as a top-level object (put it on the final chunk).
    """
    chunk: dict[str, Any] = {"id": id, "object": CHUNK_OBJECT, "created": created,
                             "model": model}
    if system_fingerprint is not None:
        chunk["system_fingerprint"] = system_fingerprint
    if with_choice:
        delta: dict[str, Any] = {}
        if role is not None:
            delta["role"] = role
        if content is not None:
            delta["content"] = content
        chunk["choices"] = [{"index": index, "delta": delta, "logprobs": None,
                             "finish_reason": finish_reason}]
    else:
        chunk["choices"] = []
    if usage is not None:
        chunk["usage"] = dict(usage)
    if mhsafety is not None:
        chunk["mhsafety"] = dict(mhsafety)
    return chunk


def encode_event(obj: Mapping[str, Any] | str) -> bytes:
    """``data: <json>`` and the blank line (a str is sent as is, e.g. :data:`DONE`)."""
    data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False,
                                                       separators=(",", ":"))
    return f"data: {data}\n\n".encode()
