"""A small OpenAI-compatible chat-completions server for tests, benchmarks and dry runs.

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

    python -m mhsafety.judge.fakeserver --latency 0.1          # prints its base URL
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

FAULTS = ("429", "500", "503", "hang", "nonjson", "nochoices", "drop")
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
        self.responder = responder or constant("Safe Response")
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

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> FakeServer:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, self.host, self.port, backlog=1024))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait(10)
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
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = h.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                reply = await self._respond(method, path, headers, body)
                if reply is None:  # "drop" or "hang": close without answering
                    return
                status, extra, payload = reply
                reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests",
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


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m mhsafety.judge.fakeserver",
                                 description="A fake OpenAI-compatible chat server.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    ap.add_argument("--answer", default="Safe Response", help="the canned answer")
    ap.add_argument("--replay", default=None,
                    help="answer with an upstream release folder's answers, e.g. "
                         "DialogueSafety/ChatGPT_gen/0301/zero_shot")
    ap.add_argument("--fault", action="append", default=[], choices=FAULTS,
                    help="inject this fault into the next request (repeatable, in order)")
    args = ap.parse_args(argv)
    responder: Responder = (ReplayResponder(args.replay) if args.replay
                            else constant(args.answer))
    model = responder.model if isinstance(responder, ReplayResponder) else "fake-judge"
    server = FakeServer(responder, latency=args.latency, faults=args.fault, host=args.host,
                        port=args.port, model=model).start()
    print(f"listening on {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
