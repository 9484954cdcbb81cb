"""The guard as an HTTP service (FastAPI + uvicorn): ``POST /v1/check`` and friends.

- Requests are micro-batched: an asyncio queue collects concurrent requests and one
  long-lived worker thread runs one ``predict_proba`` per batch.
- Fail closed: a model error or a request past its timeout gives ``"unverified"`` results.
- Privacy: log lines carry the request id, sizes, latency, status and decisions, never text.
- Limits (body bytes, batch size, text characters) answer 413 with a one-sentence message;
  malformed or mistyped bodies and unknown fields answer 422.
- Optional bearer token (from an environment variable): a request to ``/v1/*`` without the
  right token gets a bare 401.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations, which
# name classes imported inside create_app().
import asyncio
import concurrent.futures
import gc
import hmac
import json
import logging
import re
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data import Example
from ..errors import UsageError
from .core import Guard, decide, make_example, unverified

LOG = logging.getLogger("mhsafety.guard")
TOKEN_ENV = "MHSAFETY_GUARD_TOKEN"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class ServiceConfig:
    """Limits and tuning of the service. ``token`` enables bearer auth on ``/v1/*``."""

    max_body_bytes: int = 1 << 20
    max_batch: int = 64
    max_text_chars: int = 4000
    timeout_s: float = 10.0
    max_model_batch: int = 256
    batch_wait_ms: float = 1.0
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_batch", "max_text_chars", "max_model_batch"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.timeout_s <= 0 or self.batch_wait_ms < 0:
            raise UsageError("timeout_s must be positive and batch_wait_ms not negative")
        if self.token is not None and not self.token.strip():
            raise UsageError("the bearer token is empty; unset it or give a real token")


class LimitError(Exception):
    """A request over a configured limit (answered 413)."""


# ---------------------------------------------------------------------- micro-batching


@dataclass
class _Job:
    examples: list[Example]
    future: asyncio.Future


class MicroBatcher:
    """Collects concurrent requests and scores them in one model call on one worker thread.

    Whatever is queued when the worker is free goes into the next call (up to
    ``max_batch`` examples); when the queue is empty it waits ``wait_s`` for company.
    """

    def __init__(self, score: "Callable[[Sequence[Example]], np.ndarray]", max_batch: int,
                 wait_s: float) -> None:
        self._score = score
        self._max_batch = max_batch
        self._wait_s = wait_s
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="mhsafety-guard-model")
        self.busy_since: float | None = None
        self.batches = 0

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="mhsafety-guard-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        # A hung model call must not keep the process alive at shutdown.
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def score(self, examples: list[Example], timeout: float) -> np.ndarray:
        """Probabilities for ``examples``; raises TimeoutError or the model's exception."""
        if self._queue is None:
            raise RuntimeError("the batcher is not running")
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(examples, future))
        return await asyncio.wait_for(future, timeout)

    async def _collect(self) -> "list[_Job]":
        assert self._queue is not None
        jobs = [await self._queue.get()]
        size = len(jobs[0].examples)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_s
        while size < self._max_batch:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except (asyncio.TimeoutError, TimeoutError):
                    break
            jobs.append(job)
            size += len(job.examples)
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [j for j in await self._collect() if not j.future.done()]
            if not jobs:
                continue
            examples = [ex for job in jobs for ex in job.examples]
            self.busy_since = time.monotonic()
            try:
                probs = await loop.run_in_executor(self._executor, self._score, examples)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            finally:
                self.busy_since = None
                self.batches += 1
            start = 0
            for job in jobs:
                end = start + len(job.examples)
                if not job.future.done():
                    job.future.set_result(probs[start:end])
                start = end

    def stuck_for(self) -> float:
        """Seconds the current model call has been running (0 when idle)."""
        since = self.busy_since
        return 0.0 if since is None else time.monotonic() - since


# ---------------------------------------------------------------------- ASGI middleware


async def _send_json(send: Send, status: int, body: Any,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(body).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())] + (headers or [])})
    await send({"type": "http.response.body", "body": payload})


class GuardMiddleware:
    """Request id, bearer auth, body-size limit and the privacy-safe log line.

    Pure ASGI (no per-request task), and it runs before the body is parsed, so an
    unauthenticated or oversized request costs nothing and reveals nothing.
    """

    def __init__(self, app: Callable, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID_RE.match(given) else uuid.uuid4().hex[:16]
        info: dict[str, Any] = {"request_id": request_id, "status": 500, "bytes": 0,
                                "items": 0, "decisions": None}
        scope["mhsafety"] = info
        id_header = (b"x-request-id", request_id.encode())

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                info["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [id_header]
            await send(message)

        try:
            await self._handle(scope, receive, send_wrapper, headers, info)
        finally:
            self._log(scope, info, started)

    async def _handle(self, scope: Scope, receive: Receive, send: Send,
                      headers: dict[bytes, bytes], info: dict[str, Any]) -> None:
        path = scope.get("path", "")
        if self.expected is not None and path.startswith("/v1/"):
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await _send_json(send, 401, {"detail": "unauthorized"},
                                 [(b"www-authenticate", b"Bearer")])
                return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            info["bytes"] = int(declared)
            await self._too_large(send)
            return
        # Buffer the body (it is small by construction) and replay it to the app.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                info["bytes"] = size
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        info["bytes"] = size
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await _send_json(send, 413, {"detail": f"the request body is over the limit of "
                                               f"{self.max_body_bytes} bytes"})

    @staticmethod
    def _log(scope: Scope, info: dict[str, Any], started: float) -> None:
        if not LOG.isEnabledFor(logging.INFO):
            return
        decisions = info["decisions"]
        summary = ",".join(f"{k}:{v}" for k, v in sorted(decisions.items())) if decisions else "-"
        LOG.info("request_id=%s method=%s path=%s status=%s bytes=%d items=%d "
                 "latency_ms=%.1f decisions=%s", info["request_id"], scope.get("method"),
                 scope.get("path"), info["status"], info["bytes"], info["items"],
                 1000 * (time.perf_counter() - started), summary)


# ---------------------------------------------------------------------- the app


def _context_chars(context: Any) -> int:
    return len(context) if isinstance(context, str) else sum(len(t.text) for t in context)


def create_app(guard: Guard, config: "ServiceConfig | None" = None) -> Any:
    """The FastAPI application serving ``guard`` (model loaded once, by the caller)."""
    try:
        from fastapi import FastAPI, HTTPException, Request
        from fastapi.responses import JSONResponse
    except ModuleNotFoundError as exc:
        from ..errors import missing_extra

        raise missing_extra(exc.name or "fastapi", "serve") from None
    from .. import __version__, taxonomy
    from . import schemas

    cfg = config or ServiceConfig()
    batcher = MicroBatcher(guard.score, cfg.max_model_batch, cfg.batch_wait_ms / 1000.0)

    @asynccontextmanager
    async def lifespan(app: Any):
        await batcher.start()
        # One call before the first request: lazy imports and caches inside the model
        # would otherwise land on the first client (seconds for the baseline).
        try:
            await batcher.score([make_example("你好", "你好")], cfg.timeout_s)
        except Exception as exc:  # noqa: BLE001 - requests will fail closed on their own
            LOG.warning("warm-up call failed: %s", type(exc).__name__)
        # The model and libraries are ~100k long-lived objects; a full garbage collection
        # scanning them stalls every in-flight request for ~100 ms. Freezing them keeps the
        # collector to objects created after startup.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await batcher.stop()

    description = (
        "Screens a mental-health support chatbot's replies with the 8-category taxonomy of "
        "Qiu et al. (NLPCC 2023). A reply is flagged unsafe when P(safe) is below the "
        "threshold; a reply the model could not score is `unverified`, never safe. "
        f"Limits: body {cfg.max_body_bytes} bytes, batch {cfg.max_batch} items, "
        f"{cfg.max_text_chars} characters per context or response (413 beyond). "
        + ("Send `Authorization: Bearer <token>` to /v1/*." if cfg.token else "")
    )
    app = FastAPI(title="mhsafety guard", version=__version__, description=description,
                  lifespan=lifespan)
    app.state.guard = guard
    app.state.batcher = batcher
    app.state.config = cfg
    errors = {400: {"model": schemas.ErrorResponse, "description": "Body is not UTF-8 text"},
              413: {"model": schemas.ErrorResponse, "description": "Over a limit"},
              422: {"model": schemas.ErrorResponse, "description": "Invalid request"}}
    if cfg.token:
        errors[401] = {"model": schemas.ErrorResponse, "description": "Missing or wrong token"}

    @app.post("/v1/check", response_model=schemas.CheckResponse, responses=errors)
    async def check(body: schemas.CheckRequest, request: Request) -> Any:
        """Screen one reply (`context` + `response`) or a batch (`items`)."""
        info = request.scope.get("mhsafety") or {"request_id": uuid.uuid4().hex[:16]}
        items = body.as_items()
        if len(items) > cfg.max_batch:
            raise HTTPException(413, f"the batch has {len(items)} items, over the limit of "
                                     f"{cfg.max_batch}")
        examples = []
        for i, item in enumerate(items):
            for name, n in (("context", _context_chars(item.context)),
                            ("response", len(item.response))):
                if n > cfg.max_text_chars:
                    raise HTTPException(413, f"item {i}: the {name} has {n} characters, over "
                                             f"the limit of {cfg.max_text_chars}")
            context = (item.context if isinstance(item.context, str)
                       else [(t.role, t.text) for t in item.context])
            try:
                examples.append(make_example(context, item.response, item.id, f"item {i}"))
            except UsageError as exc:
                raise HTTPException(422, str(exc)) from None
        threshold = guard.threshold if body.threshold is None else body.threshold
        try:
            probs = await batcher.score(examples, cfg.timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            reason = f"timeout: the model did not answer within {cfg.timeout_s:g} s"
            results = [unverified(reason, threshold, ex.id) for ex in examples]
        except Exception as exc:  # noqa: BLE001 - fail closed, never "safe"
            reason = f"model error: {type(exc).__name__}"
            LOG.warning("request_id=%s model error: %s", info["request_id"], type(exc).__name__)
            results = [unverified(reason, threshold, ex.id) for ex in examples]
        else:
            results = [decide(row, threshold, ex.id) for ex, row in zip(examples, probs)]
        info["items"] = len(results)
        info["decisions"] = Counter(r.decision for r in results)
        # Built by hand (matches CheckResponse) to skip a second validation pass per request.
        return JSONResponse({"request_id": info["request_id"],
                             "results": [r.to_dict() for r in results]})

    taxonomy_body = taxonomy.as_dict()

    @app.get("/v1/taxonomy", responses=errors)
    async def get_taxonomy() -> dict[str, Any]:
        """The 8 labels, the 4 nodes of the sequential framework and the binary view."""
        return taxonomy_body

    @app.get("/healthz", response_model=schemas.Health,
             responses={503: {"model": schemas.Health, "description": "Model call stuck"}})
    async def healthz() -> Any:
        """Liveness: 503 when a model call has run longer than the request timeout."""
        stuck = batcher.stuck_for()
        body = {"status": "ok", "kind": guard.kind, "threshold": guard.threshold,
                "detail": None}
        if stuck > cfg.timeout_s:
            body.update(status="degraded", detail=f"a model call has run for {stuck:.0f} s")
            return JSONResponse(body, status_code=503)
        return body

    app.add_middleware(GuardMiddleware, token=cfg.token, max_body_bytes=cfg.max_body_bytes)
    return app


# ---------------------------------------------------------------------- running it


def configure_logging(level: str = "info") -> None:
    """One stderr handler for the guard's log lines (idempotent)."""
    if not any(getattr(h, "_mhsafety", False) for h in LOG.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler._mhsafety = True  # type: ignore[attr-defined]
        LOG.addHandler(handler)
    LOG.setLevel(level.upper())
    LOG.propagate = False


_SPEC_ENV = "MHSAFETY_GUARD_SERVE_SPEC"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _uvicorn():
    try:
        import uvicorn
    except ModuleNotFoundError:
        from ..errors import missing_extra

        raise missing_extra("uvicorn", "serve") from None
    return uvicorn


def _announce(sock: socket.socket, host: str, cfg: ServiceConfig,
              announce: Callable[[str], None] | None) -> None:
    shown_host = f"[{host}]" if ":" in host else host
    if host not in ("127.0.0.1", "localhost", "::1") and not cfg.token:
        LOG.warning("listening on %s without a token: anyone who can reach it can use it", host)
    url = f"http://{shown_host}:{sock.getsockname()[1]}"
    (announce or (lambda u: print(f"mhsafety guard listening on {u}", file=sys.stderr,
                                  flush=True)))(url)


def _uvicorn_options(log_level: str) -> dict[str, Any]:
    return {"log_level": log_level, "access_log": False, "lifespan": "on",
            "timeout_graceful_shutdown": 5, "timeout_keep_alive": 30}


def serve(guard: Guard, host: str = "127.0.0.1", port: int = 8000,
          config: ServiceConfig | None = None, log_level: str = "info",
          announce: Callable[[str], None] | None = None) -> None:
    """Run the service in this process until interrupted. ``announce`` gets the bound URL
    (port 0 picks a free port)."""
    uvicorn = _uvicorn()
    cfg = config or ServiceConfig()
    configure_logging(log_level)
    app = create_app(guard, cfg)
    sock = _bind(host, port)
    server = uvicorn.Server(uvicorn.Config(app, **_uvicorn_options(log_level)))
    _announce(sock, host, cfg, announce)
    server.run(sockets=[sock])


def app_from_env() -> Any:
    """App factory for worker processes: each loads its own copy of the model."""
    import os

    spec = json.loads(os.environ[_SPEC_ENV])
    configure_logging(spec["log_level"])
    token = os.environ.get(spec["token_env"]) or None
    cfg = ServiceConfig(**spec["config"], token=token)
    return create_app(Guard.load(spec["checkpoint"], spec["threshold"]), cfg)


def serve_checkpoint(checkpoint: str, host: str = "127.0.0.1", port: int = 8000,
                     threshold: float | None = None, config: ServiceConfig | None = None,
                     token_env: str = TOKEN_ENV, log_level: str = "info",
                     workers: int = 1) -> None:
    """Load a checkpoint and serve it; the bearer token comes from ``token_env``.

    ``workers`` > 1 runs that many processes on one socket, each with its own model and
    micro-batcher, so HTTP handling and model calls use several cores.
    """
    import os
    from dataclasses import asdict, replace

    cfg = config or ServiceConfig()
    token = os.environ.get(token_env)
    if token is not None:
        if not token.strip():
            raise UsageError(f"the environment variable {token_env} is set but empty; unset "
                             "it to serve without auth, or give a real token")
        cfg = replace(cfg, token=token)
    if workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")
    guard = Guard.load(checkpoint, threshold)  # fail here, once, on a bad checkpoint
    if workers == 1:
        serve(guard, host, port, cfg, log_level)
        return
    uvicorn = _uvicorn()
    from uvicorn.supervisors import Multiprocess

    configure_logging(log_level)
    settings = {k: v for k, v in asdict(cfg).items() if k != "token"}
    # The spec travels to the spawned workers in the environment; the token stays in its
    # own variable and is never written into the spec.
    os.environ[_SPEC_ENV] = json.dumps({"checkpoint": str(checkpoint), "threshold":
                                        guard.threshold, "config": settings,
                                        "token_env": token_env, "log_level": log_level})
    del guard
    sock = _bind(host, port)
    config_ = uvicorn.Config("mhsafety.guard.service:app_from_env", factory=True,
                             workers=workers, **_uvicorn_options(log_level))
    _announce(sock, host, cfg, None)
    Multiprocess(config_, sockets=[sock]).run()
