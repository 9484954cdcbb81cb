"""The guard's FastAPI application: :func:`create_app` serves a loaded guard.

Endpoints: ``POST /v1/check`` (one reply or a batch), ``POST /v1/check_dialogue`` (audit whole
conversations), ``GET /v1/taxonomy``, ``GET /v1/policy``, ``GET /healthz`` (alive), ``GET
/readyz`` (model loaded and, for an LLM backend, reachable), ``GET /metrics`` (Prometheus),
``/docs`` and ``/redoc`` (Swagger UI and ReDoc served from the package, no CDN).
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.
import asyncio
import gc
import logging
import math
import uuid
from collections import Counter
from collections.abc import Sequence
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

try:
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
except ModuleNotFoundError as exc:  # pragma: no cover - the [serve] extra is missing
    from ...errors import missing_extra

    raise missing_extra(exc.name or "fastapi", "serve") from None

from ... import __version__, taxonomy
from ...errors import DataError, UsageError
from ..core import Guard
from ..dialogues import audit_plan, audit_report, dialogues_from_items
from ..items import examples_of, make_example
from ..results import CheckResult
from . import schemas
from .batching import Screener
from .config import ServiceConfig
from .metrics import Metrics
from .middleware import GuardMiddleware

LOG = logging.getLogger("mhsafety.guard")
STATIC = "static"


def _static_dir() -> str:
    return str(resources.files("mhsafety.guard").joinpath(STATIC))


def _context_chars(context: Any) -> int:
    return len(context) if isinstance(context, str) else sum(len(t.text) for t in context)


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float written as text (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with each error's field (``loc``) and message; never a 500 for an input the
    error would echo (NaN, Infinity)."""
    errors = [{"type": e.get("type"), "loc": _json_safe(e.get("loc")), "msg": e.get("msg"),
               "input": _json_safe(e.get("input"))} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


class GuardAPI:
    """The endpoints' state and handlers: the guard, its screener, the limits and metrics."""

    def __init__(self, guard: Guard, cfg: ServiceConfig) -> None:
        self.guard, self.cfg = guard, cfg
        self.screener = Screener(guard, cfg)
        self.metrics = Metrics()
        self.started = False
        # Hooks for what is mounted beside the guard (the gateway): started after the
        # screener, stopped before it, asked by /readyz.
        self.on_start: list[Any] = []
        self.on_stop: list[Any] = []
        self.ready_checks: list[Any] = []

    @asynccontextmanager
    async def lifespan(self, app: Any):
        await self.screener.start()
        await self.screener.warm_up([make_example("你好", "你好")])
        # The model and libraries are ~100k long-lived objects; a full garbage collection
        # scanning them stalls every in-flight request for ~100 ms. Freezing them keeps the
        # collector to objects created after startup.
        for start in self.on_start:
            await start()
        gc.collect()
        gc.freeze()
        self.started = True
        try:
            yield
        finally:
            self.started = False
            for stop in self.on_stop:
                await stop()
            await self.screener.stop()

    # ------------------------------------------------------------------ helpers

    def _too_long(self, what: str, n: int) -> None:
        if n > self.cfg.max_text_chars:
            raise HTTPException(413, f"{what} has {n} characters, over the limit of "
                                     f"{self.cfg.max_text_chars}")

    def _finish(self, info: dict, results: Sequence[CheckResult]) -> None:
        info["items"] = len(results)
        info["decisions"] = Counter(r.decision for r in results)
        self.metrics.observe_results(results)

    @staticmethod
    def _info(request: Request) -> dict:
        return request.scope.get("mhsafety") or {"request_id": uuid.uuid4().hex[:16]}

    # ------------------------------------------------------------------ endpoints

    async def check(self, body: schemas.CheckRequest, request: Request) -> Any:
        """Screen one reply (`context` + `response`) or a batch (`items`)."""
        info = self._info(request)
        items = body.as_items()
        if len(items) > self.cfg.max_batch:
            raise HTTPException(413, f"the batch has {len(items)} items, over the limit of "
                                     f"{self.cfg.max_batch}")
        for i, item in enumerate(items):
            self._too_long(f"item {i}: the context", _context_chars(item.context))
            self._too_long(f"item {i}: the response", len(item.response))
        try:
            examples = examples_of([item.model_dump(exclude_none=True) for item in items],
                                   "request")
        except UsageError as exc:
            raise HTTPException(422, str(exc)) from None
        results = await self.screener.screen(examples, body.threshold, info["request_id"])
        self._finish(info, results)
        # Built by hand (matches CheckResponse) to skip a second validation pass per request.
        return JSONResponse({"request_id": info["request_id"],
                             "results": [r.to_dict() for r in results]})

    async def check_dialogue(self, body: schemas.CheckDialogueRequest, request: Request) -> Any:
        """Audit whole conversations: every supporter turn against the turns before it."""
        info = self._info(request)
        try:
            dialogues = dialogues_from_items(
                [c.model_dump(exclude_none=True) for c in body.conversations], "request")
        except DataError as exc:
            raise HTTPException(422, str(exc)) from None
        for i, d in enumerate(dialogues):
            self._too_long(f"conversation {i}: a turn", max(len(t.text) for t in d.turns))
        plans, examples = audit_plan(dialogues)
        if len(examples) > self.cfg.max_dialogue_items:
            raise HTTPException(413, f"the conversations have {len(examples)} supporter turns "
                                     f"to screen, over the limit of "
                                     f"{self.cfg.max_dialogue_items}")
        results = await self.screener.screen(examples, body.threshold, info["request_id"])
        report = audit_report(self.guard, plans, results)
        self._finish(info, results)
        return JSONResponse({"request_id": info["request_id"], **report})

    async def policy(self) -> Any:
        """The action the service returns for each category (and for unverified replies)."""
        return self.guard.policy.to_dict()

    async def healthz(self) -> Any:
        """Liveness: 503 when a model call has run longer than the request timeout."""
        stuck = self.screener.stuck_for()
        body = {"status": "ok", "kind": self.guard.kind, "threshold": self.guard.threshold,
                "detail": None}
        if stuck > self.cfg.timeout_s:
            body.update(status="degraded", detail=f"a model call has run for {stuck:.0f} s")
            return JSONResponse(body, status_code=503)
        return body

    async def readyz(self) -> Any:
        """Readiness: the model is loaded and warmed up and, for a backend behind a server
        (an LLM judge), that server is reachable."""
        if not self.started:
            return JSONResponse({"ready": False, "detail": "starting"}, status_code=503)
        ok, detail = await asyncio.get_running_loop().run_in_executor(None, self._readiness)
        for check in self.ready_checks:
            if ok:
                ok, detail = await check()
        body = {"ready": ok, "detail": detail}
        return body if ok else JSONResponse(body, status_code=503)

    def _readiness(self) -> "tuple[bool, str | None]":
        for tier in self.guard.tiers:
            ok, detail = tier.readiness()
            if not ok:
                return False, f"{tier.name} tier: {detail}"
        return True, None

    async def prometheus(self) -> Any:
        """Counters and histograms in Prometheus' text format (no request text)."""
        return Response(self.metrics.render(),
                        media_type=self.metrics.prom.CONTENT_TYPE_LATEST.split(";")[0])

    def description(self) -> str:
        cfg, second = self.cfg, self.guard.escalation
        band = self.guard.model.band if second is not None else None
        cascade = (f" Cascade: a second checkpoint ({second.describe().get('kind')}) decides "
                   f"replies whose P(safe) lies in [{band[0]:g}, {band[1]:g}]."
                   if second is not None and band else "")
        return (
            "Screens a mental-health support chatbot's replies with the 8-category taxonomy of "
            "Qiu et al. (NLPCC 2023). A rule tier catches explicit cases first; then a reply is "
            "flagged unsafe when P(safe) is below the threshold; a reply the model could not "
            "score, or with no letters or digits in it, is `unverified`, never safe. Every "
            "result carries the deciding tier, the node path of the framework and the "
            f"policy's action.{cascade} "
            f"Limits: body {cfg.max_body_bytes} bytes, batch {cfg.max_batch} items, "
            f"{cfg.max_dialogue_items} supporter turns per dialogue request, "
            f"{cfg.max_text_chars} characters per context or response (413 beyond). "
            + ("Send `Authorization: Bearer <token>` to /v1/*." if cfg.token else ""))


def _error_responses(cfg: ServiceConfig) -> dict:
    errors = {400: {"model": schemas.ErrorResponse, "description": "Body is not UTF-8 text"},
              413: {"model": schemas.ErrorResponse, "description": "Over a limit"},
              422: {"model": schemas.ErrorResponse, "description": "Invalid request"}}
    if cfg.token:
        errors[401] = {"model": schemas.ErrorResponse, "description": "Missing or wrong token"}
    return errors


def _add_docs(app: FastAPI) -> None:
    """Swagger UI and ReDoc from the vendored assets (offline; never the public validator)."""
    app.mount("/_static", StaticFiles(directory=_static_dir()), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Any:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="mhsafety guard - Swagger UI",
            swagger_js_url="/_static/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/_static/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/_static/swagger-ui/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None})

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> Any:
        return get_redoc_html(openapi_url="/openapi.json", title="mhsafety guard - ReDoc",
                              redoc_js_url="/_static/redoc/redoc.standalone.js",
                              redoc_favicon_url="/_static/swagger-ui/favicon-32x32.png",
                              with_google_fonts=False)


def create_app(guard: Guard, config: "ServiceConfig | None" = None) -> FastAPI:
    """The FastAPI application serving ``guard`` (its models loaded once, by the caller)."""
    cfg = config or ServiceConfig()
    api = GuardAPI(guard, cfg)
    app = FastAPI(title="mhsafety guard", version=__version__, description=api.description(),
                  lifespan=api.lifespan, docs_url=None, redoc_url=None)
    app.state.guard, app.state.config, app.state.api = guard, cfg, api
    app.state.screener, app.state.metrics = api.screener, api.metrics
    errors = _error_responses(cfg)
    app.post("/v1/check", response_model=schemas.CheckResponse, responses=errors)(api.check)
    app.post("/v1/check_dialogue", response_model=schemas.DialogueAuditResponse,
             responses=errors)(api.check_dialogue)
    taxonomy_body = taxonomy.as_dict()

    @app.get("/v1/taxonomy", responses=errors)
    async def get_taxonomy() -> dict[str, Any]:
        """The 8 labels, the 4 nodes of the sequential framework and the binary view."""
        return taxonomy_body

    app.get("/v1/policy", response_model=schemas.PolicyOut, responses=errors)(api.policy)
    app.get("/healthz", response_model=schemas.Health,
            responses={503: {"model": schemas.Health, "description": "Model call stuck"}}
            )(api.healthz)
    app.get("/readyz", response_model=schemas.Ready,
            responses={503: {"model": schemas.Ready, "description": "Not ready"}})(api.readyz)
    app.get("/metrics", responses={200: {"content": {"text/plain": {}},
                                         "description": "Prometheus text format"}}
            )(api.prometheus)
    own_auth: tuple[str, ...] = ()
    if cfg.gateway is not None:
        from ..gateway.app import PATHS, mount

        mount(app, api, cfg)
        own_auth = PATHS
    _add_docs(app)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_middleware(GuardMiddleware, token=cfg.token, max_body_bytes=cfg.max_body_bytes,
                       max_drain_bytes=cfg.max_drain_bytes, metrics=api.metrics,
                       own_auth=own_auth)
    return app
