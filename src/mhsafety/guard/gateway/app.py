"""The gateway's routes on the guard service's FastAPI app: ``POST /v1/chat/completions``
and ``GET /v1/models`` (passed through), mounted by
:func:`mhsafety.guard.service.create_app` when the service config carries a gateway.

Auth: a client sends ``Authorization: Bearer <token>`` with one of the tokens in the
environment variable ``client_tokens_env`` (comma-separated); with none set the routes answer
loopback clients only, and the service refuses to start on another interface. Overload: more
than ``max_concurrent`` chat requests in flight get a 503 at once, with ``Retry-After``.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.
import hmac
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from .chat import ROUTE, Answer, ChatGateway, error_body
from .config import LOOPBACK, GatewayConfig, check_access, client_tokens
from .metrics import GatewayMetrics

PATHS = ("/v1/chat/completions", "/v1/models")


def _response(answer: Answer) -> Response:
    if isinstance(answer.body, (bytes, bytearray)):
        return Response(answer.body, answer.status, answer.headers, answer.media_type)
    if isinstance(answer.body, AsyncIterator):
        return StreamingResponse(answer.body, answer.status, answer.headers,
                                 answer.media_type)
    return JSONResponse(answer.body, answer.status, answer.headers)


def mount(app: FastAPI, api: Any, service_cfg: Any) -> ChatGateway:
    """Add the gateway's routes and life cycle to the guard service ``app``."""
    cfg: GatewayConfig = service_cfg.gateway
    check_access(cfg, service_cfg.host)
    tokens = tuple(f"Bearer {t}".encode() for t in client_tokens(cfg))
    metrics = GatewayMetrics(api.metrics.prom, api.metrics.registry)
    gateway = ChatGateway(cfg, api.screener, api.guard.policy, api.guard.rules, metrics)
    api.on_start.append(gateway.start)
    api.on_stop.append(gateway.stop)
    api.ready_checks.append(gateway.readiness)

    def refused(request: Request) -> Response | None:
        if tokens:
            given = request.headers.get("authorization", "").encode("latin-1")
            if not any(hmac.compare_digest(given, t) for t in tokens):
                metrics.rejected.labels(request.url.path, "auth").inc()
                return JSONResponse(error_body("a valid bearer token is needed", "auth_error",
                                               code="invalid_api_key"), 401,
                                    {"WWW-Authenticate": "Bearer"})
        elif request.client is None or request.client.host not in LOOPBACK:
            metrics.rejected.labels(request.url.path, "not_loopback").inc()
            return JSONResponse(error_body("this gateway answers loopback clients only "
                                           "(no client tokens are configured)", "auth_error"),
                                403)
        return None

    @app.post("/v1/chat/completions", tags=["gateway"])
    async def chat_completions(request: Request) -> Any:
        """An OpenAI chat completion, screened: the seeker's turns before the upstream is
        called, the reply before it reaches the client (plain or streamed), the policy
        carried out; the decision in the `mhsafety` object."""
        denied = refused(request)
        if denied is not None:
            return denied
        if gateway.in_flight >= cfg.max_concurrent:
            metrics.rejected.labels(ROUTE, "overloaded").inc()
            return JSONResponse(error_body(
                f"the gateway is at its limit of {cfg.max_concurrent} requests in flight; "
                "retry shortly", "overloaded", code="overloaded"), 503, {"Retry-After": "1"})
        gateway.in_flight += 1
        release = True
        try:
            info = request.scope.get("mhsafety") or {}
            answer = await gateway.complete(await request.body(),
                                            request.headers.get(cfg.conversation_header),
                                            info.get("request_id", "-"))
            if isinstance(answer.body, AsyncIterator):
                release = False  # the stream holds its place until it ends
                answer.body = _released(answer.body, gateway)
            return _response(answer)
        finally:
            if release:
                gateway.in_flight -= 1

    @app.get("/v1/models", tags=["gateway"])
    async def models(request: Request) -> Any:
        """The upstream's model list, passed through."""
        denied = refused(request)
        if denied is not None:
            return denied
        from .upstream import UpstreamError

        assert gateway.upstream is not None
        try:
            response = await gateway.upstream.get("/models")
        except UpstreamError as exc:
            return JSONResponse(error_body(str(exc), "upstream_error"), exc.status)
        return Response(response.content, response.status_code,
                        media_type=response.headers.get("content-type", "application/json"))

    return gateway


async def _released(events: AsyncIterator[bytes], gateway: ChatGateway) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            yield event
    finally:
        gateway.in_flight -= 1
