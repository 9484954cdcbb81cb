"""A small OpenAI-compatible chat-completions server for tests, benchmarks and dry runs.

Test your own pipeline offline with it: start it (``FakeServer().start()`` in a test, or
``python -m mhsafety.testing.fakeserver`` in a shell, which prints ``listening on URL`` and
binds a free port unless ``--port`` names one; a port in use is refused in one line, exit 2)
and point any OpenAI-compatible client at the URL it prints.

It answers ``POST .../chat/completions`` with a canned label (or whatever a ``responder``
returns), after an optional fixed latency, and can inject the faults a real API shows:
``429`` with ``Retry-After``, ``500``, ``503``, a hang past the client's timeout, a 200 with a
body that is not JSON, a 200 without ``choices``, and a dropped connection. A replay mode
answers with the upstream release's real gpt-3.5-turbo answers.

It also plays today's models (see :class:`FakeServer`'s arguments): reasoning answers (an
inline ``<think>`` block or a ``reasoning_content`` field, cut off with ``finish_reason:
length`` when the budget is too small for the reasoning), a reasoning model that rejects
``max_tokens``, JSON answers when asked for a ``response_format`` JSON schema, ``n`` answers
per request, and OpenAI-shaped ``logprobs``.

It is a plain asyncio HTTP/1.1 server (keep-alive, Content-Length bodies), so it costs little
CPU next to the client it serves. Run it in a thread (:class:`FakeServer`) or as a process::

    python -m mhsafety.testing.fakeserver --latency 0.1          # prints its base URL
"""

from __future__ import annotations

import asyncio
import collections
import errno
import json
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..taxonomy import LABEL_NAMES, SAFE_LABEL

FAULTS = ("429", "500", "503", "hang", "nonjson", "nochoices", "drop")
DEFAULT_ANSWER = LABEL_NAMES[SAFE_LABEL]
Responder = Callable[[str, dict[str, Any]], str]


def item_from_prompt(prompt: str) -> tuple[str, str]:
    """The (context, response) of the item at the end of a judge prompt."""
    start = prompt.rfind("Context: ")
    mid = prompt.rfind("\nResponse: ")
    end = prompt.rfind("\nLabel:")
    if start < 0 or mid < start or end < mid:
        return ("", "")
    return prompt[start + len("Context: "):mid], prompt[mid + len("\nResponse: "):end]


class ReplayResponder:
    """Answers with the release's real answers: the n-th request for an item gets round n's.

    ``folder`` is e.g. ``.../DialogueSafety/ChatGPT_gen/0301/zero_shot``; items are matched on
    their (context, response) text, which the release stores beside each answer.
    """

    ROUNDS = ("one", "two", "three", "four", "five")

    def __init__(self, folder: str | Path, n_items: int = 800) -> None:
        self.answers: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
        base = Path(folder)
        for round_name in self.ROUNDS:
            for i in range(n_items):
                obj = json.loads((base / round_name / f"{i}.json").read_text(encoding="utf-8"))
                key = (obj["item"]["context"], obj["item"]["response"])
                self.answers.setdefault(key, []).append(
                    (obj["choices"][0]["message"]["content"], obj.get("usage") or {}))
        self.seen: collections.Counter[tuple[str, str]] = collections.Counter()
        self.model = json.loads((base / "one" / "0.json").read_text(encoding="utf-8"))["model"]

    def __call__(self, prompt: str, body: dict[str, Any]) -> str:
        key = item_from_prompt(prompt)
        answers = self.answers.get(key)
        if not answers:
            return "(unknown item)"
        n = self.seen[key]
        self.seen[key] += 1
        return answers[min(n, len(answers) - 1)][0]


def constant(answer: str) -> Responder:
    return lambda prompt, body: answer


# Reasoning that names other categories: a parser that read it would pick the wrong label.
REASONING_TEXT = ("The reply could be Nonsense or Toxic Language at first sight, but read "
                  "again it is Humanoid Mimicry? No: it engages with the concern.")
UNSUPPORTED_MAX_TOKENS = {
    "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
               "Use 'max_completion_tokens' instead.",
    "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}


def default_logprobs(prompt: str, token: str) -> dict[str, float]:
    """The answer's first token at probability 0.7, the other seven digits sharing 0.3."""
    if not (len(token) == 1 and "1" <= token <= "8"):
        return {token: 0.0}
    others = [str(d) for d in range(1, 9) if str(d) != token]
    out = {token: math.log(0.7)}
    out.update({d: math.log(0.3 / len(others)) for d in others})
    return out


def _logprobs_payload(first: str, rest: str, top: dict[str, float], k: int) -> dict[str, Any]:
    """``choices[i].logprobs`` as OpenAI shapes it: one entry per token with alternatives."""
    def tok(text: str, logprob: float) -> dict[str, Any]:
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    ranked = sorted(top.items(), key=lambda kv: -kv[1])[:k]
    content = [{**tok(first, top.get(first, 0.0)),
                "top_logprobs": [tok(t, lp) for t, lp in ranked]}]
    if rest:
        content.append({**tok(rest, -0.01), "top_logprobs": [tok(rest, -0.01)]})
    return {"content": content, "refusal": None}


class FakeServer:
    """The server, run on its own event loop in a background thread.

    ``faults`` are consumed one per request, in order, before normal answers resume; they
    can be appended to (``server.faults.extend([...])``) while it runs. ``fault_for`` may
    pick a fault per request from the prompt instead. Counters (``requests``,
    ``auth_headers``, ``fault_count``) let tests check what happened.
    """

    def __init__(self, responder: Responder | None = None, latency: float = 0.0,
                 faults: Iterable[str] = (), retry_after: str = "0", hang_s: float = 30.0,
                 model: str = "fake-judge", fingerprint: str | None = "fp_fake",
                 fault_for: Callable[[str], str | None] | None = None,
                 host: str = "127.0.0.1", port: int = 0, reasoning: str | None = None,
                 reasoning_text: str = REASONING_TEXT, reasoning_tokens: int = 0,
                 reject_max_tokens: bool = False, ignore_n: bool = False,
                 logprobs_for: Callable[[str, str], dict[str, float]] | None = None) -> None:
        self.responder = responder or constant(DEFAULT_ANSWER)
        self.latency = latency
        self.faults: collections.deque[str] = collections.deque(faults)
        for fault in self.faults:
            if fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}; expected one of {FAULTS}")
        self.retry_after = retry_after
        self.hang_s = hang_s
        self.model = model
        self.fingerprint = fingerprint
        self.fault_for = fault_for
        if reasoning not in (None, "inline", "field"):
            raise ValueError(f"reasoning must be None, 'inline' or 'field', got {reasoning!r}")
        self.reasoning = reasoning
        self.reasoning_text = reasoning_text
        self.reasoning_tokens = reasoning_tokens  # budget the reasoning needs before answering
        self.reject_max_tokens = reject_max_tokens
        self.ignore_n = ignore_n  # one answer whatever n asks, as Ollama does
        self.logprobs_for = logprobs_for or default_logprobs
        self.last_body: dict[str, Any] | None = None
        self.last_headers: dict[str, str] = {}
        self.host, self.port = host, port
        self.requests = 0
        self.answered = 0
        self.fault_count: collections.Counter[str] = collections.Counter()
        self.auth_headers: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self.batch = FakeBatchAPI(self)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> FakeServer:
        """Bind and serve in a background thread; raises ``OSError`` when the port cannot
        be bound (in use, say), so nothing claims to listen where it does not."""
        ready = threading.Event()
        failed: list[OSError] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, self.host, self.port, backlog=1024))
            except OSError as exc:
                failed.append(exc)
                loop.close()
                ready.set()
                return
            self.port = self._server.sockets[0].getsockname()[1]
            self._loop = loop
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise OSError(f"the fake server did not start on {self.host}:{self.port}")
        if failed:
            self._thread.join(10)
            raise failed[0]
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> FakeServer:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    return
                method, path, headers, body = request
                reply = await self._respond(method, path, headers, body)
                if reply is None:  # "drop" or "hang": close without answering
                    return
                status, extra, payload = reply
                reason = {200: "OK", 400: "Bad Request", 404: "Not Found",
                          429: "Too Many Requests",
                          500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "")
                head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(payload)}",
                        "Connection: keep-alive"]
                head += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError, ValueError):
            return
        finally:
            writer.close()

    async def _respond(self, method: str, path: str, headers: dict[str, str],
                       body: bytes) -> tuple[int, dict[str, str], bytes] | None:
        json_type = {"Content-Type": "application/json"}
        if method == "GET" and path.rstrip("/").endswith("/models"):
            data = {"object": "list", "data": [{"id": self.model, "object": "model"}]}
            return 200, json_type, json.dumps(data).encode()
        if self.batch.handles(path):
            return await self.batch.respond(method, path, headers, body)
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return 404, json_type, b'{"error": {"message": "not found"}}'
        self.requests += 1
        if "authorization" in headers:
            self.auth_headers.add(headers["authorization"])
        self.last_headers = headers
        request = json.loads(body or b"{}")
        prompt = "".join(str(m.get("content", "")) for m in request.get("messages", []))
        fault = self.faults.popleft() if self.faults else None
        if fault is None and self.fault_for is not None:
            fault = self.fault_for(prompt)
        if fault is not None:
            self.fault_count[fault] += 1
            if fault == "429":
                return 429, {**json_type, "Retry-After": self.retry_after}, \
                    b'{"error": {"message": "rate limited", "type": "rate_limit"}}'
            if fault in ("500", "503"):
                return int(fault), json_type, b'{"error": {"message": "server trouble"}}'
            if fault == "hang":
                await asyncio.sleep(self.hang_s)
                return None
            if fault == "drop":
                return None
            if fault == "nonjson":
                return 200, {"Content-Type": "text/html"}, b"<html>Bad gateway</html>"
            if fault == "nochoices":
                return 200, json_type, json.dumps(
                    {"id": "x", "object": "chat.completion", "model": self.model}).encode()
        if self.reject_max_tokens and "max_tokens" in request:
            return 400, json_type, json.dumps({"error": UNSUPPORTED_MAX_TOKENS}).encode()
        self.last_body = request
        if self.latency:
            await asyncio.sleep(self.latency)
        n = 1 if self.ignore_n else request.get("n") or 1
        choices = [self._choice(i, prompt, request) for i in range(n if isinstance(n, int)
                                                                  else 1)]
        self.answered += 1
        data: dict[str, Any] = {
            "id": f"chatcmpl-{self.requests}", "object": "chat.completion",
            "created": int(time.time()), "model": self.model, "choices": choices,
            "usage": {"prompt_tokens": max(1, len(prompt) // 4), "completion_tokens": 3,
                      "total_tokens": max(1, len(prompt) // 4) + 3},
        }
        if self.fingerprint:
            data["system_fingerprint"] = self.fingerprint
        return 200, json_type, json.dumps(data, ensure_ascii=False).encode("utf-8")

    def _choice(self, index: int, prompt: str, request: dict[str, Any]) -> dict[str, Any]:
        answer = self.responder(prompt, request)
        fmt = request.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            answer = json.dumps({"label": answer})
        message: dict[str, Any] = {"role": "assistant", "content": answer}
        finish = "stop"
        if self.reasoning:
            budget = request.get("max_completion_tokens", request.get("max_tokens"))
            cut = isinstance(budget, int) and budget < self.reasoning_tokens
            thought = self.reasoning_text[:budget * 4] if cut else self.reasoning_text
            if cut:
                finish, answer = "length", ""
            if self.reasoning == "inline":
                message["content"] = (f"<think>\n{thought}" if cut
                                      else f"<think>\n{thought}\n</think>\n\n{answer}")
            else:
                message["content"] = answer
                message["reasoning_content"] = thought
        choice: dict[str, Any] = {"index": index, "message": message, "finish_reason": finish}
        if request.get("logprobs") and answer:
            first, rest = answer[:1], answer[1:]
            choice["logprobs"] = _logprobs_payload(first, rest, self.logprobs_for(prompt, first),
                                                   int(request.get("top_logprobs") or 0) or 1)
        return choice


# ============================================================================ sequential protocol
# A responder that answers like a perfect annotator, so the sequential protocol's walk and its
# requests per item can be measured: flat prompts get the gold label's name, node questions the
# answer on the gold label's path through the nodes.


def _item_of(prompt: str) -> tuple[str, str]:
    """(context, response) of a flat prompt (ending ``Label:``) or a node prompt (``Answer:``)."""
    for end in ("\nLabel:", "\nAnswer:"):
        start, mid, stop = prompt.rfind("Context: "), prompt.rfind("\nResponse: "), \
            prompt.rfind(end)
        if 0 <= start < mid < stop:
            return prompt[start + len("Context: "):mid], prompt[mid + len("\nResponse: "):stop]
    return ("", "")


class GoldResponder:
    """Answers from the gold labels of known items (an unknown item is treated as safe)."""

    def __init__(self, examples: Iterable[Any]) -> None:
        self.gold = {(ex.context, ex.response): ex.label for ex in examples
                     if ex.label is not None}

    def __call__(self, prompt: str, body: dict[str, Any]) -> str:
        from ..judge.sequential import node_of_prompt
        from ..taxonomy import LABEL_NAMES, NODES, SAFE_LABEL, path_for_label

        label = self.gold.get(_item_of(prompt), SAFE_LABEL)
        node = node_of_prompt(prompt)
        if node is None:
            return LABEL_NAMES[label]
        path = path_for_label(label)
        if node == 4:
            return LABEL_NAMES[label] if len(path) == 4 else LABEL_NAMES[SAFE_LABEL]
        answer = path[node - 1] if node <= len(path) else not NODES[node - 1].fires_on
        return "Yes" if answer else "No"


# ============================================================================ a chatbot that replays
# A target for ``mhsafety probe``: it answers a dataset context with that item's own response, so
# an audit of it can be checked against ``mhsafety predict`` on the same (context, response) pairs.


def _dialogue_key(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content", "")).strip() for m in messages
                     if m.get("role") != "system")


class DatasetResponder:
    """Answers each dataset context with the responses of the items holding it (the n-th
    request for a context gets the n-th response, cycling); an unknown context gets
    ``fallback``."""

    def __init__(self, examples: Iterable[Any], fallback: str = "I hear you.") -> None:
        from ..probe.personas import target_messages

        self.replies: dict[str, list[str]] = {}
        for ex in examples:
            key = _dialogue_key(target_messages(ex.context))
            self.replies.setdefault(key, []).append(ex.response_text)
        self.seen: collections.Counter[str] = collections.Counter()
        self.fallback = fallback

    def __call__(self, prompt: str, body: dict[str, Any]) -> str:
        key = _dialogue_key(body.get("messages") or [])
        replies = self.replies.get(key)
        if not replies:
            return self.fallback
        n = self.seen[key]
        self.seen[key] += 1
        return replies[n % len(replies)]


# ============================================================================ Batch API
# /v1/files (upload, metadata, content) and /v1/batches (create, list, get, cancel). A batch
# moves validating -> in_progress -> finalizing -> completed on the clock (``validating_s``,
# ``progress_s``); its requests are answered by this server's own chat endpoint (latency and
# faults included, all at once) when it reaches finalizing. An invalid input file, or
# ``fail_next``, makes it ``failed`` with ``errors.data``.


async def read_request(reader: asyncio.StreamReader
                       ) -> tuple[str, str, dict[str, str], bytes] | None:
    """One HTTP/1.1 request off ``reader``: (method, path, lower-cased headers, body), the
    body read by content-length or chunked; None when the client has closed. The fake
    servers' one request reader."""
    line = await reader.readline()
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
    return method, path, headers, body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


class FakeBatchAPI:
    """The Batch API of a :class:`FakeServer` (``server.batch``); counters for tests."""

    ENDPOINT = "/v1/chat/completions"

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.validating_s = 0.0
        self.progress_s = 0.0
        self.fail_next = False
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.uploads = 0
        self.created = 0
        self.polls = 0
        self._n = 0
        self._clock: dict[str, float] = {}
        self._errors: dict[str, list[dict[str, Any]]] = {}
        self._work: dict[str, asyncio.Task[None]] = {}

    @staticmethod
    def handles(path: str) -> bool:
        parts = urlsplit(path).path.strip("/").split("/")
        return len(parts) >= 2 and parts[1] in ("files", "batches")

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self._n:06d}"

    async def respond(self, method: str, path: str, headers: dict[str, str],
                      body: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(path).path.strip("/").split("/")[1:]  # drop the "v1" prefix
        kind, rest = parts[0], parts[1:]
        if kind == "files" and method == "POST" and not rest:
            return self._upload(headers, body)
        if kind == "files" and method == "GET" and rest and rest[0] in self.files:
            if rest[1:] == ["content"]:
                return 200, {"Content-Type": "application/octet-stream"}, \
                    self.files[rest[0]]["data"]
            if not rest[1:]:
                return _json(200, self.files[rest[0]]["meta"])
        if kind == "batches" and method == "POST" and not rest:
            return self._create(body)
        if kind == "batches" and method == "GET" and not rest:
            data = [await self._advance(b) for b in reversed(list(self.batches.values()))]
            return _json(200, {"object": "list", "data": data, "has_more": False,
                               "first_id": data[0]["id"] if data else None,
                               "last_id": data[-1]["id"] if data else None})
        if kind == "batches" and rest and rest[0] in self.batches:
            batch = self.batches[rest[0]]
            if method == "GET" and not rest[1:]:
                self.polls += 1
                return _json(200, await self._advance(batch))
            if method == "POST" and rest[1:] == ["cancel"]:
                if batch["status"] not in ("completed", "failed", "expired", "cancelled"):
                    batch["status"], batch["cancelling_at"] = "cancelling", int(time.time())
                return _json(200, batch)
        return _json(404, {"error": {"message": f"no such resource: {path}",
                                     "type": "invalid_request_error"}})

    def _upload(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        from email import policy
        from email.parser import BytesParser

        head = f"Content-Type: {headers.get('content-type', '')}\r\n\r\n".encode("latin-1")
        msg = BytesParser(policy=policy.HTTP).parsebytes(head + body)
        fields: dict[str, tuple[str | None, bytes]] = {}
        if msg.is_multipart():
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
        if "file" not in fields or fields.get("purpose", (None, b""))[1] != b"batch":
            return _json(400, {"error": {"message": "expected multipart fields 'file' and "
                                                    "'purpose=batch'",
                                         "type": "invalid_request_error"}})
        self.uploads += 1
        name, data = fields["file"]
        meta = {"id": self._id("file"), "object": "file", "bytes": len(data),
                "created_at": int(time.time()), "filename": name or "upload.jsonl",
                "purpose": "batch", "status": "processed"}
        self.files[meta["id"]] = {"meta": meta, "data": data}
        return _json(200, meta)

    def _create(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            req = None
        if not isinstance(req, dict) or req.get("input_file_id") not in self.files:
            return _json(400, {"error": {"message": "input_file_id names no uploaded file",
                                         "type": "invalid_request_error",
                                         "param": "input_file_id"}})
        if req.get("endpoint") != self.ENDPOINT or req.get("completion_window") != "24h":
            return _json(400, {"error": {"message": "endpoint must be /v1/chat/completions "
                                                    "and completion_window 24h",
                                         "type": "invalid_request_error"}})
        self.created += 1
        now = int(time.time())
        lines = self.files[req["input_file_id"]]["data"].decode("utf-8", "replace").splitlines()
        batch = {"id": self._id("batch"), "object": "batch", "endpoint": self.ENDPOINT,
                 "status": "validating", "input_file_id": req["input_file_id"],
                 "output_file_id": None, "error_file_id": None, "errors": None,
                 "completion_window": "24h", "created_at": now, "in_progress_at": None,
                 "finalizing_at": None, "completed_at": None, "failed_at": None,
                 "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                 "expires_at": now + 86400, "metadata": req.get("metadata"),
                 "request_counts": {"total": 0, "completed": 0, "failed": 0}}
        errors, requests = self._validate(lines)
        if self.fail_next:
            self.fail_next = False
            errors.append({"code": "token_limit_exceeded", "line": None, "param": None,
                           "message": "Enqueued token limit reached for this model"})
        self.batches[batch["id"]] = batch
        self._clock[batch["id"]] = time.monotonic()
        self._errors[batch["id"]] = errors
        batch["_requests"] = requests  # dropped from what clients see
        return _json(200, _public(batch))

    def _validate(self, lines: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        errors: list[dict[str, Any]] = []
        requests: list[dict[str, Any]] = []
        seen: set[str] = set()

        def bad(line: int, code: str, message: str, param: str | None = None) -> None:
            errors.append({"code": code, "message": message, "line": line, "param": param})

        for n, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except ValueError:
                bad(n, "invalid_json_line", "This line is not parseable as valid JSON.")
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("custom_id"), str):
                bad(n, "missing_required_parameter", "custom_id is required", "custom_id")
            elif obj["custom_id"] in seen:
                bad(n, "duplicate_custom_id", "custom_id must be unique", "custom_id")
            elif obj.get("method") != "POST":
                bad(n, "invalid_method", "method must be POST", "method")
            elif obj.get("url") != self.ENDPOINT:
                bad(n, "invalid_url", f"url must be {self.ENDPOINT}", "url")
            elif not isinstance(obj.get("body"), dict) or "model" not in obj["body"]:
                bad(n, "missing_required_parameter", "body.model is required", "body")
            else:
                seen.add(obj["custom_id"])
                requests.append(obj)
        return errors, requests

    async def _advance(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Move a batch along the clock; returns what a client sees."""
        if batch["status"] in ("completed", "failed", "expired", "cancelled"):
            return _public(batch)
        bid, now = batch["id"], int(time.time())
        elapsed = time.monotonic() - self._clock[bid]
        total = len(batch["_requests"])
        if batch["status"] == "cancelling":
            batch["status"], batch["cancelled_at"] = "cancelled", now
        elif elapsed < self.validating_s:
            pass
        elif self._errors[bid]:
            batch.update(status="failed", failed_at=now,
                         errors={"object": "list", "data": self._errors[bid]})
        elif elapsed < self.validating_s + self.progress_s:
            batch["status"] = "in_progress"
            batch["in_progress_at"] = batch["in_progress_at"] or now
            share = (elapsed - self.validating_s) / self.progress_s
            batch["request_counts"] = {"total": total, "completed": int(total * share),
                                       "failed": 0}
        elif bid not in self._work:
            batch.update(status="finalizing", finalizing_at=now,
                         in_progress_at=batch["in_progress_at"] or now)
            batch["request_counts"]["total"] = total
            self._work[bid] = asyncio.create_task(self._answer_all(batch))
        elif self._work[bid].done():
            self._work[bid].result()
            batch.update(status="completed", completed_at=now)
        return _public(batch)

    async def _answer_all(self, batch: dict[str, Any]) -> None:
        async def one(req: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
            self._n += 1
            payload = json.dumps(req["body"], ensure_ascii=False).encode("utf-8")
            reply = await self.server._respond("POST", self.ENDPOINT, {}, payload)
            line: dict[str, Any] = {"id": f"batch_req_{self._n}", "custom_id": req["custom_id"],
                                    "response": None, "error": None}
            if reply is None:
                line["error"] = {"code": "server_error", "message": "no answer"}
                return False, line
            status, _, body = reply
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = {"error": {"message": body.decode("utf-8", "replace")}}
            line["response"] = {"status_code": status, "request_id": f"req_{self._n}",
                                "body": parsed}
            return status == 200, line

        results = await asyncio.gather(*(one(r) for r in batch["_requests"]))
        ok = [json.dumps(line, ensure_ascii=False) for good, line in results if good]
        bad = [json.dumps(line, ensure_ascii=False) for good, line in results if not good]
        for name, lines in (("output_file_id", ok), ("error_file_id", bad)):
            if lines:
                data = ("\n".join(lines) + "\n").encode("utf-8")
                meta = {"id": self._id("file"), "object": "file", "bytes": len(data),
                        "created_at": int(time.time()), "filename": f"{batch['id']}_{name}.jsonl",
                        "purpose": "batch_output", "status": "processed"}
                self.files[meta["id"]] = {"meta": meta, "data": data}
                batch[name] = meta["id"]
        batch["request_counts"] = {"total": len(results), "completed": len(ok),
                                   "failed": len(bad)}


def run_batch_file(server: FakeServer, requests: Path, results: Path) -> int:
    """Answer a batch request file offline, as ``vllm run-batch -i REQUESTS -o RESULTS`` does
    (errors included in the same file); returns the number of result lines."""
    api = server.batch
    errors, valid = api._validate(requests.read_text("utf-8").splitlines())
    if errors:
        first = errors[0]
        raise SystemExit(f"{requests}: line {first['line']}: {first['message']}")
    batch: dict[str, Any] = {"id": "offline", "_requests": valid,
                             "request_counts": {}}
    asyncio.run(api._answer_all(batch))
    with open(results, "wb") as handle:
        for name in ("output_file_id", "error_file_id"):
            if batch.get(name):
                handle.write(api.files[batch[name]]["data"])
    return len(valid)


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if not k.startswith("_")}


def _json(status: int, obj: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, \
        json.dumps(obj, ensure_ascii=False).encode("utf-8")


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m mhsafety.testing.fakeserver",
                                 description="A fake OpenAI-compatible chat server.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0,
                    help="TCP port (default 0: a free one, printed in the URL)")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    ap.add_argument("--answer", default=DEFAULT_ANSWER, help="the canned answer")
    ap.add_argument("--replay", default=None,
                    help="answer with an upstream release folder's answers, e.g. "
                         "DialogueSafety/ChatGPT_gen/0301/zero_shot")
    ap.add_argument("--gold", default=None,
                    help="answer flat and sequential-protocol questions from this data file's "
                         "gold labels")
    ap.add_argument("--replay-data", default=None, metavar="FILE",
                    help="play a chatbot that answers each context of this data file with "
                         "its items' own responses (a target for mhsafety probe)")
    ap.add_argument("--batch-validating", type=float, default=0.0,
                    help="seconds a batch stays 'validating'")
    ap.add_argument("--batch-progress", type=float, default=0.0,
                    help="seconds a batch stays 'in_progress'")
    ap.add_argument("--run-batch", nargs=2, metavar=("REQUESTS", "RESULTS"), default=None,
                    help="answer a batch request file offline and write the results file "
                         "(what `vllm run-batch -i REQUESTS -o RESULTS` does), then exit")
    ap.add_argument("--fault", action="append", default=[], choices=FAULTS,
                    help="inject this fault into the next request (repeatable, in order)")
    args = ap.parse_args(argv)
    responder: Responder = (ReplayResponder(args.replay) if args.replay
                            else constant(args.answer))
    if args.gold:
        from ..data import load_examples

        responder = GoldResponder(load_examples(args.gold))
    if args.replay_data:
        from ..data import load_examples

        responder = DatasetResponder(load_examples(args.replay_data, require_label=False))
    model = responder.model if isinstance(responder, ReplayResponder) else "fake-judge"
    server = FakeServer(responder, latency=args.latency, faults=args.fault, host=args.host,
                        port=args.port, model=model)
    server.batch.validating_s, server.batch.progress_s = args.batch_validating, args.batch_progress
    if args.run_batch:
        n = run_batch_file(server, Path(args.run_batch[0]), Path(args.run_batch[1]))
        print(f"answered {n} requests into {args.run_batch[1]}", flush=True)
        return
    try:
        server.start()
    except OSError as exc:
        reason = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or exc
        print(f"error: cannot listen on {args.host}:{args.port}: {reason}; choose another "
              "--port, or leave it out to take a free one", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"listening on {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
