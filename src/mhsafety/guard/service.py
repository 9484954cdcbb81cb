"""The guard as an HTTP service (FastAPI + uvicorn).

Endpoints: ``POST /v1/check`` (one reply or a batch), ``POST /v1/check_dialogue`` (audit whole
conversations), ``GET /v1/taxonomy``, ``GET /healthz`` (alive), ``GET /readyz`` (model loaded
and, for an LLM backend, reachable), ``GET /metrics`` (Prometheus), ``/docs`` and ``/redoc``
(Swagger UI and ReDoc served from the package, no CDN).

- Requests are micro-batched: an asyncio queue per model tier collects concurrent requests and
  one long-lived worker thread runs one model call per batch. The rule tier runs in the
  request handler, before any model.
- Fail closed: a model error, an abstention or a request past its timeout gives
  ``"unverified"`` results with the reason.
- Privacy: log lines and metrics carry the request id, sizes, latency, status, decisions and
  categories, never text.
- Limits (body bytes, batch size, text characters) answer 413 with a one-sentence message; an
  oversized body is read (up to ``max_drain_bytes``) before the answer, so every client reads
  the 413 instead of a reset connection. Malformed or mistyped bodies and unknown fields
  answer 422.
- Optional bearer token (from an environment variable): a request to ``/v1/*`` without the
  right token gets a bare 401.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations, which
# name classes imported inside create_app().
import asyncio
import concurrent.futures
import dataclasses
import gc
import hmac
import json
import logging
import re
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from ..data import Example
from ..errors import DataError, UsageError
from ..settings import at_least, positive, setting, tcp_port
from .core import CheckResult, Guard, ModelTier, _failed, examples_of

LOG = logging.getLogger("mhsafety.guard")
TOKEN_ENV = "MHSAFETY_GUARD_TOKEN"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
LOG_LEVELS = ("debug", "info", "warning", "error")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class ServiceConfig:
    """Every default of the guard service, once; ``mhsafety serve``'s options come from here.

    ``token`` (never an option: secrets come from the environment variable ``token_env``)
    enables bearer auth on ``/v1/*``.
    """

    host: str = setting("127.0.0.1", "Interface to bind; loopback unless told otherwise.")
    port: int = setting(8000, "Port (0: any free port; the bound URL is printed on stderr).",
                        check=tcp_port)
    token_env: str = setting(TOKEN_ENV, "Environment variable holding the bearer token; auth "
                             "is on when it is set.")
    max_body_bytes: int = setting(1 << 20, "Largest request body in bytes (413 beyond).",
                                  check=at_least(1))
    max_drain_bytes: int = setting(16 << 20, "An oversized body is read up to this many "
                                   "bytes before the 413, so the client can read it.",
                                   check=at_least(1))
    max_batch: int = setting(64, "Items per /v1/check request.", check=at_least(1))
    max_dialogue_items: int = setting(256, "Supporter turns per /v1/check_dialogue request.",
                                      check=at_least(1))
    max_text_chars: int = setting(4000, "Characters per context or response.",
                                  check=at_least(1))
    timeout_s: float = setting(10.0, "Seconds before a request's results become unverified.",
                               check=positive, cli="--timeout")
    max_model_batch: int = setting(256, "Most items in one model call.", check=at_least(1))
    batch_wait_ms: float = setting(1.0, "How long an idle model waits to batch concurrent "
                                   "requests.", check=at_least(0))
    workers: int = setting(1, "Server processes, each with its own copy of the model (uses "
                           "more cores).", check=at_least(1))
    log_level: str = setting("info", "Log level of the service's lines.", choices=LOG_LEVELS)
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            error = check(getattr(self, f.name)) if check else None
            if error:
                raise UsageError(f"{f.name} {error}")
        if self.log_level not in LOG_LEVELS:
            raise UsageError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        self.max_drain_bytes = max(self.max_drain_bytes, self.max_body_bytes)
        if self.token is not None and not self.token.strip():
            raise UsageError("the bearer token is empty; unset it or give a real token")


class LimitError(Exception):
    """A request over a configured limit (answered 413)."""


# ---------------------------------------------------------------------- micro-batching


@dataclass
class _Job:
    examples: list[Example]
    future: asyncio.Future


def _slice(result: Any, start: int, end: int) -> Any:
    """Rows start..end of a model answer: an array, or a Predictions-like dataclass whose
    per-item fields are sliced alike."""
    if isinstance(result, np.ndarray):
        return result[start:end]
    n = len(result)
    values = {}
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        values[f.name] = value[start:end] if value is not None and len(value) == n else value
    return type(result)(**values)


class MicroBatcher:
    """Collects concurrent requests and scores them in one model call on one worker thread.

    Whatever is queued when the worker is free goes into the next call (up to
    ``max_batch`` examples); when the queue is empty it waits ``wait_s`` for company.
    """

    def __init__(self, score: "Callable[[Sequence[Example]], Any]", max_batch: int,
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

    async def score(self, examples: list[Example], timeout: float) -> Any:
        """The model's answer for ``examples``; raises TimeoutError or the model's exception."""
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
                result = await loop.run_in_executor(self._executor, self._score, examples)
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
                    job.future.set_result(_slice(result, start, end))
                start = end

    def stuck_for(self) -> float:
        """Seconds the current model call has been running (0 when idle)."""
        since = self.busy_since
        return 0.0 if since is None else time.monotonic() - since


# ---------------------------------------------------------------------- metrics


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (never any text)."""

    ENDPOINTS = ("/v1/check", "/v1/check_dialogue", "/v1/taxonomy", "/v1/policy", "/healthz",
                 "/readyz",
                 "/metrics", "/docs", "/redoc", "/openapi.json")

    def __init__(self) -> None:
        try:
            import prometheus_client as prom
        except ModuleNotFoundError:
            from ..errors import missing_extra

            raise missing_extra("prometheus-client", "serve") from None
        self.prom = prom
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.requests = prom.Counter("mhsafety_guard_requests", "HTTP requests answered.",
                                     ["endpoint", "status"], registry=r)
        self.latency = prom.Histogram(
            "mhsafety_guard_request_seconds", "Time from request to answer.", ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        self.decisions = prom.Counter(
            "mhsafety_guard_decisions", "Screened replies by decision, category and tier.",
            ["decision", "category", "tier"], registry=r)
        self.actions = prom.Counter("mhsafety_guard_actions", "Policy actions returned.",
                                    ["action"], registry=r)
        self.unverified = prom.Counter("mhsafety_guard_unverified",
                                       "Replies that could not be verified, by cause.",
                                       ["cause"], registry=r)
        self.escalations = prom.Counter("mhsafety_guard_escalations",
                                        "Replies decided by the escalation tier.", registry=r)
        self.rule_hits = prom.Counter("mhsafety_guard_rule_hits", "Replies decided by a rule.",
                                      ["rule_id"], registry=r)

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        endpoint = path if path in self.ENDPOINTS else "other"
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_results(self, results: Sequence[CheckResult]) -> None:
        for r in results:
            self.decisions.labels(r.decision, r.label_name or "none", r.tier).inc()
            self.actions.labels(r.action or "none").inc()
            if r.decision == "unverified":
                # The cause is the reason's fixed prefix ("timeout", "model error", ...).
                self.unverified.labels((r.reason or "unknown").split(":")[0][:40]).inc()
            if r.tier == "escalation":
                self.escalations.inc()
            if r.rule_id:
                self.rule_hits.labels(r.rule_id).inc()

    def render(self) -> bytes:
        return self.prom.generate_latest(self.registry)


# ---------------------------------------------------------------------- ASGI middleware


async def _send_json(send: Send, status: int, body: Any,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(body).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())] + (headers or [])})
    await send({"type": "http.response.body", "body": payload})


class GuardMiddleware:
    """Request id, bearer auth, body-size limit, metrics and the privacy-safe log line.

    Pure ASGI (no per-request task), and it runs before the body is parsed, so an
    unauthenticated or oversized request costs nothing and reveals nothing.
    """

    def __init__(self, app: Callable, token: str | None, max_body_bytes: int,
                 max_drain_bytes: int, metrics: "Metrics | None" = None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        self.max_body_bytes = max_body_bytes
        self.max_drain_bytes = max(max_drain_bytes, max_body_bytes)
        self.metrics = metrics

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
            elapsed = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.observe_request(scope.get("path", ""), info["status"], elapsed)
            self._log(scope, info, elapsed)

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
            if int(declared) <= self.max_drain_bytes:
                await self._drain(receive, 0)
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
                more = message.get("more_body", False)
                info["bytes"] = await self._drain(receive, size) if more else size
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

    async def _drain(self, receive: Receive, size: int) -> int:
        """Read and drop the rest of an oversized body, up to the drain cap: a client that
        is still sending when the answer comes would otherwise see a reset, not the 413."""
        while size <= self.max_drain_bytes:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return size

    async def _too_large(self, send: Send) -> None:
        await _send_json(send, 413, {"detail": f"the request body is over the limit of "
                                               f"{self.max_body_bytes} bytes"},
                         [(b"connection", b"close")])

    @staticmethod
    def _log(scope: Scope, info: dict[str, Any], elapsed: float) -> None:
        if not LOG.isEnabledFor(logging.INFO):
            return
        decisions = info["decisions"]
        summary = ",".join(f"{k}:{v}" for k, v in sorted(decisions.items())) if decisions else "-"
        LOG.info("request_id=%s method=%s path=%s status=%s bytes=%d items=%d "
                 "latency_ms=%.1f decisions=%s", info["request_id"], scope.get("method"),
                 scope.get("path"), info["status"], info["bytes"], info["items"],
                 1000 * elapsed, summary)


# ---------------------------------------------------------------------- the app


def _context_chars(context: Any) -> int:
    return len(context) if isinstance(context, str) else sum(len(t.text) for t in context)


STATIC = "static"


def _static_dir() -> str:
    return str(resources.files(__package__).joinpath(STATIC))


class Screener:
    """The guard's tiers behind micro-batchers: rules inline, each model tier batched."""

    def __init__(self, guard: Guard, cfg: ServiceConfig) -> None:
        self.guard, self.cfg = guard, cfg
        wait = cfg.batch_wait_ms / 1000.0
        self.batchers = [MicroBatcher(tier.predictions, cfg.max_model_batch, wait)
                         for tier in guard.tiers()]

    async def start(self) -> None:
        for batcher in self.batchers:
            await batcher.start()

    async def stop(self) -> None:
        for batcher in self.batchers:
            await batcher.stop()

    def stuck_for(self) -> float:
        return max(b.stuck_for() for b in self.batchers)

    async def _ask(self, batcher: MicroBatcher, examples: list[Example], deadline: float,
                   request_id: str) -> Any:
        if not examples:
            return _failed([], "")
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            if remaining <= 0:
                raise TimeoutError
            return await batcher.score(examples, remaining)
        except (asyncio.TimeoutError, TimeoutError):
            return _failed(examples, f"timeout: the model did not answer within "
                                     f"{self.cfg.timeout_s:g} s")
        except Exception as exc:  # noqa: BLE001 - fail closed, never "safe"
            LOG.warning("request_id=%s model error: %s", request_id, type(exc).__name__)
            return _failed(examples, f"model error: {type(exc).__name__}")

    async def screen(self, examples: list[Example], threshold: float | None,
                     request_id: str) -> list[CheckResult]:
        """Every tier, within one deadline of ``timeout_s`` for the whole request."""
        deadline = asyncio.get_running_loop().time() + self.cfg.timeout_s
        plan = self.guard.plan(examples, threshold)
        first = [plan.examples[i] for i in plan.to_model]
        self.guard.apply_first(plan, await self._ask(self.batchers[0], first, deadline,
                                                     request_id))
        if plan.to_escalate:
            second = [plan.examples[i] for i in plan.to_escalate]
            self.guard.apply_second(plan, await self._ask(self.batchers[1], second, deadline,
                                                          request_id))
        return plan.done()


def _readiness(tiers: Sequence[ModelTier]) -> tuple[bool, str | None]:
    for n, tier in enumerate(tiers):
        ok, detail = tier.readiness()
        if not ok:
            return False, f"{'escalation' if n else 'model'} tier: {detail}"
    return True, None


def create_app(guard: Guard, config: "ServiceConfig | None" = None) -> Any:
    """The FastAPI application serving ``guard`` (model loaded once, by the caller)."""
    try:
        from fastapi import FastAPI, HTTPException, Request
        from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
        from fastapi.responses import JSONResponse, Response
        from fastapi.staticfiles import StaticFiles
    except ModuleNotFoundError as exc:
        from ..errors import missing_extra

        raise missing_extra(exc.name or "fastapi", "serve") from None
    from .. import __version__, taxonomy
    from . import schemas
    from .dialogues import audit_plan, audit_report, dialogues_from_items

    cfg = config or ServiceConfig()
    screener = Screener(guard, cfg)
    metrics = Metrics()
    state = {"started": False}

    @asynccontextmanager
    async def lifespan(app: Any):
        await screener.start()
        # One call per tier before the first request: lazy imports and caches inside the
        # model would otherwise land on the first client (seconds for the baseline).
        from .core import make_example

        warm = [make_example("你好", "你好")]
        for batcher in screener.batchers:
            try:
                await batcher.score(warm, cfg.timeout_s)
            except Exception as exc:  # noqa: BLE001 - requests will fail closed on their own
                LOG.warning("warm-up call failed: %s", type(exc).__name__)
        # The model and libraries are ~100k long-lived objects; a full garbage collection
        # scanning them stalls every in-flight request for ~100 ms. Freezing them keeps the
        # collector to objects created after startup.
        gc.collect()
        gc.freeze()
        state["started"] = True
        try:
            yield
        finally:
            state["started"] = False
            await screener.stop()

    cascade = (f" Cascade: a second checkpoint ({guard.second.kind}) decides replies whose "
               f"P(safe) lies in [{guard.band[0]:g}, {guard.band[1]:g}]."
               if guard.second is not None and guard.band else "")
    description = (
        "Screens a mental-health support chatbot's replies with the 8-category taxonomy of "
        "Qiu et al. (NLPCC 2023). A rule tier catches explicit cases first; then a reply is "
        "flagged unsafe when P(safe) is below the threshold; a reply the model could not "
        "score is `unverified`, never safe. Every result carries the deciding tier, the node "
        f"path of the framework and the policy's action.{cascade} "
        f"Limits: body {cfg.max_body_bytes} bytes, batch {cfg.max_batch} items, "
        f"{cfg.max_dialogue_items} supporter turns per dialogue request, "
        f"{cfg.max_text_chars} characters per context or response (413 beyond). "
        + ("Send `Authorization: Bearer <token>` to /v1/*." if cfg.token else "")
    )
    app = FastAPI(title="mhsafety guard", version=__version__, description=description,
                  lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.guard = guard
    app.state.batcher = screener.batchers[0]
    app.state.screener = screener
    app.state.config = cfg
    app.state.metrics = metrics
    app.mount("/_static", StaticFiles(directory=_static_dir()), name="static")
    errors = {400: {"model": schemas.ErrorResponse, "description": "Body is not UTF-8 text"},
              413: {"model": schemas.ErrorResponse, "description": "Over a limit"},
              422: {"model": schemas.ErrorResponse, "description": "Invalid request"}}
    if cfg.token:
        errors[401] = {"model": schemas.ErrorResponse, "description": "Missing or wrong token"}

    def check_lengths(i: int, name: str, n: int) -> None:
        if n > cfg.max_text_chars:
            raise HTTPException(413, f"item {i}: the {name} has {n} characters, over the "
                                     f"limit of {cfg.max_text_chars}")

    def finish(info: dict[str, Any], results: Sequence[CheckResult]) -> None:
        from collections import Counter

        info["items"] = len(results)
        info["decisions"] = Counter(r.decision for r in results)
        metrics.observe_results(results)

    @app.post("/v1/check", response_model=schemas.CheckResponse, responses=errors)
    async def check(body: schemas.CheckRequest, request: Request) -> Any:
        """Screen one reply (`context` + `response`) or a batch (`items`)."""
        info = request.scope.get("mhsafety") or {"request_id": uuid.uuid4().hex[:16]}
        items = body.as_items()
        if len(items) > cfg.max_batch:
            raise HTTPException(413, f"the batch has {len(items)} items, over the limit of "
                                     f"{cfg.max_batch}")
        for i, item in enumerate(items):
            check_lengths(i, "context", _context_chars(item.context))
            check_lengths(i, "response", len(item.response))
        raw = [item.model_dump(exclude_none=True) for item in items]
        try:
            examples = examples_of(raw, "request")
        except UsageError as exc:
            raise HTTPException(422, str(exc)) from None
        results = await screener.screen(examples, body.threshold, info["request_id"])
        finish(info, results)
        # Built by hand (matches CheckResponse) to skip a second validation pass per request.
        return JSONResponse({"request_id": info["request_id"],
                             "results": [r.to_dict() for r in results]})

    @app.post("/v1/check_dialogue", response_model=schemas.DialogueAuditResponse,
              responses=errors)
    async def check_dialogue(body: schemas.CheckDialogueRequest, request: Request) -> Any:
        """Audit whole conversations: every supporter turn against the turns before it."""
        info = request.scope.get("mhsafety") or {"request_id": uuid.uuid4().hex[:16]}
        raw = [c.model_dump(exclude_none=True) for c in body.conversations]
        try:
            dialogues = dialogues_from_items(raw, "request")
        except DataError as exc:
            raise HTTPException(422, str(exc)) from None
        for i, d in enumerate(dialogues):
            longest = max(len(t.text) for t in d.turns)
            if longest > cfg.max_text_chars:
                raise HTTPException(413, f"conversation {i}: a turn has {longest} characters, "
                                         f"over the limit of {cfg.max_text_chars}")
        plans, examples = audit_plan(dialogues)
        if len(examples) > cfg.max_dialogue_items:
            raise HTTPException(413, f"the conversations have {len(examples)} supporter turns "
                                     f"to screen, over the limit of {cfg.max_dialogue_items}")
        results = await screener.screen(examples, body.threshold, info["request_id"])
        report = audit_report(guard, plans, results)
        finish(info, results)
        return JSONResponse({"request_id": info["request_id"], **report})

    taxonomy_body = taxonomy.as_dict()

    @app.get("/v1/taxonomy", responses=errors)
    async def get_taxonomy() -> dict[str, Any]:
        """The 8 labels, the 4 nodes of the sequential framework and the binary view."""
        return taxonomy_body

    @app.get("/v1/policy", response_model=schemas.PolicyOut, responses=errors)
    async def get_policy() -> Any:
        """The action the service returns for each category (and for unverified replies)."""
        return guard.policy.to_dict()

    @app.get("/healthz", response_model=schemas.Health,
             responses={503: {"model": schemas.Health, "description": "Model call stuck"}})
    async def healthz() -> Any:
        """Liveness: 503 when a model call has run longer than the request timeout."""
        stuck = screener.stuck_for()
        body = {"status": "ok", "kind": guard.kind, "threshold": guard.threshold,
                "detail": None}
        if stuck > cfg.timeout_s:
            body.update(status="degraded", detail=f"a model call has run for {stuck:.0f} s")
            return JSONResponse(body, status_code=503)
        return body

    @app.get("/readyz", response_model=schemas.Ready,
             responses={503: {"model": schemas.Ready, "description": "Not ready"}})
    async def readyz() -> Any:
        """Readiness: the model is loaded and warmed up and, for a backend behind a server
        (an LLM judge), that server is reachable."""
        if not state["started"]:
            return JSONResponse({"ready": False, "detail": "starting"}, status_code=503)
        ok, detail = await asyncio.get_running_loop().run_in_executor(
            None, _readiness, guard.tiers())
        body = {"ready": ok, "detail": detail}
        return body if ok else JSONResponse(body, status_code=503)

    @app.get("/metrics", include_in_schema=True,
             responses={200: {"content": {"text/plain": {}},
                              "description": "Prometheus text format"}})
    async def get_metrics() -> Any:
        """Counters and histograms in Prometheus' text format (no request text)."""
        return Response(metrics.render(),
                        media_type=metrics.prom.CONTENT_TYPE_LATEST.split(";")[0])

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Any:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="mhsafety guard - Swagger UI",
            swagger_js_url="/_static/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/_static/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/_static/swagger-ui/favicon-32x32.png",
            # Never send the schema to the public validator (offline; and it is ours).
            swagger_ui_parameters={"validatorUrl": None})

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> Any:
        return get_redoc_html(openapi_url="/openapi.json", title="mhsafety guard - ReDoc",
                              redoc_js_url="/_static/redoc/redoc.standalone.js",
                              redoc_favicon_url="/_static/swagger-ui/favicon-32x32.png",
                              with_google_fonts=False)

    app.add_middleware(GuardMiddleware, token=cfg.token, max_body_bytes=cfg.max_body_bytes,
                       max_drain_bytes=cfg.max_drain_bytes, metrics=metrics)
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


def _announce(sock: socket.socket, cfg: ServiceConfig,
              announce: Callable[[str], None] | None) -> None:
    host = cfg.host
    shown_host = f"[{host}]" if ":" in host else host
    if host not in ("127.0.0.1", "localhost", "::1") and not cfg.token:
        LOG.warning("listening on %s without a token: anyone who can reach it can use it", host)
    url = f"http://{shown_host}:{sock.getsockname()[1]}"
    (announce or (lambda u: print(f"mhsafety guard listening on {u}", file=sys.stderr,
                                  flush=True)))(url)


def _uvicorn_options(log_level: str) -> dict[str, Any]:
    return {"log_level": log_level, "access_log": False, "lifespan": "on",
            "timeout_graceful_shutdown": 5, "timeout_keep_alive": 30}


def serve(guard: Guard, config: ServiceConfig | None = None,
          announce: Callable[[str], None] | None = None) -> None:
    """Run the service in this process until interrupted. ``announce`` gets the bound URL
    (port 0 picks a free port)."""
    uvicorn = _uvicorn()
    cfg = config or ServiceConfig()
    configure_logging(cfg.log_level)
    app = create_app(guard, cfg)
    sock = _bind(cfg.host, cfg.port)
    server = uvicorn.Server(uvicorn.Config(app, **_uvicorn_options(cfg.log_level)))
    _announce(sock, cfg, announce)
    server.run(sockets=[sock])


def app_from_env() -> Any:
    """App factory for worker processes: each loads its own copy of the model."""
    import os

    from .core import build_guard

    spec = json.loads(os.environ[_SPEC_ENV])
    cfg = ServiceConfig(**spec["config"])
    configure_logging(cfg.log_level)
    token = os.environ.get(cfg.token_env) or None
    cfg = dataclasses.replace(cfg, token=token)
    return create_app(build_guard(**spec["guard"]), cfg)


def serve_checkpoint(checkpoint: str, threshold: float | None = None,
                     config: ServiceConfig | None = None, **guard_options: Any) -> None:
    """Load a checkpoint (and the tiers ``guard_options`` name, see
    :func:`~mhsafety.guard.core.build_guard`) and serve it; the bearer token comes from the
    environment variable ``config.token_env``.

    ``config.workers`` > 1 runs that many processes on one socket, each with its own model and
    micro-batcher, so HTTP handling and model calls use several cores.
    """
    import os

    from .core import build_guard

    cfg = config or ServiceConfig()
    token = os.environ.get(cfg.token_env)
    if token is not None:
        if not token.strip():
            raise UsageError(f"the environment variable {cfg.token_env} is set but empty; "
                             "unset it to serve without auth, or give a real token")
        cfg = dataclasses.replace(cfg, token=token)
    options = {"checkpoint": str(checkpoint), "threshold": threshold,
               "timeout": None, **guard_options}
    guard = build_guard(**options)  # fail here, once, on a bad checkpoint or rule file
    if cfg.workers == 1:
        serve(guard, cfg)
        return
    uvicorn = _uvicorn()
    from uvicorn.supervisors import Multiprocess

    configure_logging(cfg.log_level)
    settings = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
                if f.name != "token"}
    # The spec travels to the spawned workers in the environment; the token stays in its
    # own variable and is never written into the spec.
    os.environ[_SPEC_ENV] = json.dumps({"guard": options, "config": settings})
    del guard
    sock = _bind(cfg.host, cfg.port)
    config_ = uvicorn.Config("mhsafety.guard.service:app_from_env", factory=True,
                             workers=cfg.workers, **_uvicorn_options(cfg.log_level))
    _announce(sock, cfg, None)
    Multiprocess(config_, sockets=[sock]).run()
