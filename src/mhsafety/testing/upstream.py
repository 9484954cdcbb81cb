"""A fake OpenAI-compatible model server that streams: the upstream behind a gateway, offline.

``FakeUpstream(reply)`` serves ``POST /v1/chat/completions`` (plain, or ``"stream": true`` as
``text/event-stream`` chat chunks, with the ``include_usage`` chunk when asked) and ``GET
/v1/models`` on 127.0.0.1 (port 0 by default) from a background thread. ``reply`` is a fixed
text or a function of the request's messages (and body) returning the text, or an
:class:`UpstreamFault` to answer an HTTP error instead. Every request body it received is
kept in :attr:`FakeUpstream.requests`, so a test can read what the gateway sent.

From a shell::

    python -m mhsafety.testing.upstream --port 0 --reply "Thank you for telling me."

prints ``fake upstream listening on http://127.0.0.1:PORT/v1`` on stderr and serves until
stopped (SIGTERM or Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .fakeserver import read_request

Reply = Callable[..., "str | UpstreamFault"]
MODEL = "fake-chat"


@dataclass(frozen=True)
class UpstreamFault:
    """An HTTP error the fake upstream answers with (OpenAI's error body)."""

    status: int
    message: str = "upstream error"
    type: str = "server_error"


def _last_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


def echo(messages: list[dict[str, Any]], body: dict[str, Any] | None = None) -> str:
    """A reply function: the last user turn, repeated."""
    return _last_user(messages)


class FakeUpstream:
    """An OpenAI-compatible chat server on 127.0.0.1 that can stream, in a thread.

    ``latency``: seconds before the first byte of every answer; ``piece_chars``: characters
    per streamed content chunk; ``piece_delay``: seconds between chunks; ``api_key``: when
    set, requests without ``Authorization: Bearer <api_key>`` get 401.
    """

    def __init__(self, reply: str | Reply = "I hear you. Tell me more.", *,
                 latency: float = 0.0, piece_chars: int = 4, piece_delay: float = 0.0,
                 host: str = "127.0.0.1", port: int = 0, api_key: str | None = None,
                 model: str = MODEL) -> None:
        self.reply = reply
        self.latency, self.piece_chars, self.piece_delay = latency, piece_chars, piece_delay
        self.host, self.port, self.api_key, self.model = host, port, api_key, model
        self.requests: list[dict[str, Any]] = []
        self.auth_headers: list[str | None] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """The API root, ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    # ------------------------------------------------------------------ life cycle
    def start(self) -> FakeUpstream:
        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, self.host, self.port))
                self.port = self._server.sockets[0].getsockname()[1]
            except OSError as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            loop.run_forever()
            pending = asyncio.all_tasks(loop)  # open keep-alive connections
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            loop.stop()

        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(shutdown()))
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> FakeUpstream:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    break
                method, path, headers, body = request
                keep = await self._respond(method, path.split("?")[0], headers, body, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, obj: Any) -> bool:
        payload = json.dumps(obj, ensure_ascii=False).encode()
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        await writer.drain()
        return True

    async def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes,
                       writer: asyncio.StreamWriter) -> bool:
        if self.latency:
            await asyncio.sleep(self.latency)
        self.auth_headers.append(headers.get("authorization"))
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return await self._send(writer, 401, {"error": {
                "message": "Incorrect API key provided", "type": "invalid_request_error",
                "code": "invalid_api_key"}})
        if method == "GET" and path == "/v1/models":
            return await self._send(writer, 200, {"object": "list", "data": [
                {"id": self.model, "object": "model", "created": 0, "owned_by": "fake"}]})
        if method != "POST" or path != "/v1/chat/completions":
            return await self._send(writer, 404, {"error": {"message": f"no route {path}",
                                                            "type": "invalid_request_error"}})
        try:
            request = json.loads(body)
            messages = request["messages"]
        except (ValueError, KeyError, TypeError):
            return await self._send(writer, 400, {"error": {
                "message": "'messages' is required", "type": "invalid_request_error",
                "param": "messages"}})
        self.requests.append(request)
        text = self.reply if isinstance(self.reply, str) else self.reply(messages, request)
        if isinstance(text, UpstreamFault):
            return await self._send(writer, text.status, {"error": {
                "message": text.message, "type": text.type}})
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())
        usage = {"prompt_tokens": 10, "completion_tokens": len(text),
                 "total_tokens": 10 + len(text)}
        if not request.get("stream"):
            return await self._send(writer, 200, {
                "id": ident, "object": "chat.completion", "created": created,
                "model": self.model, "choices": [{
                    "index": 0, "message": {"role": "assistant", "content": text},
                    "logprobs": None, "finish_reason": "stop"}],
                "usage": usage})
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")

        async def event(obj: Any) -> None:
            data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
            payload = f"data: {data}\n\n".encode()
            writer.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
            await writer.drain()

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"id": ident, "object": "chat.completion.chunk", "created": created,
                    "model": self.model, "choices": [{"index": 0, "delta": delta,
                                                      "logprobs": None,
                                                      "finish_reason": finish}]}

        await event(chunk({"role": "assistant", "content": ""}))
        step = max(1, self.piece_chars)
        for i in range(0, len(text), step):
            if self.piece_delay and i:
                await asyncio.sleep(self.piece_delay)
            await event(chunk({"content": text[i:i + step]}))
        await event(chunk({}, "stop"))
        if (request.get("stream_options") or {}).get("include_usage"):
            await event({"id": ident, "object": "chat.completion.chunk", "created": created,
                         "model": self.model, "choices": [], "usage": usage})
        await event("[DONE]")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mhsafety.testing.upstream",
                                     description="A fake OpenAI-compatible chat server that "
                                                 "streams (for trying the gateway offline).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reply", default="I hear you. Tell me more.",
                        help="The reply to every request.")
    parser.add_argument("--echo", action="store_true", help="Reply with the last user turn.")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--piece-chars", type=int, default=4)
    parser.add_argument("--piece-ms", type=float, default=0.0,
                        help="Milliseconds between streamed pieces.")
    args = parser.parse_args(argv)
    server = FakeUpstream(echo if args.echo else args.reply, latency=args.latency_ms / 1000,
                          piece_chars=args.piece_chars, piece_delay=args.piece_ms / 1000,
                          port=args.port).start()
    print(f"fake upstream listening on {server.url}", file=sys.stderr, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
