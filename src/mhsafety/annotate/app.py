"""The annotation web app: a small JSON API over :mod:`.store` plus static HTML/JS/CSS.

A Starlette app served by uvicorn (the guard's stack). Every store operation runs in the
worker thread pool in its own SQLite transaction, committed before the response is sent, so
annotators working at once never block each other for longer than one commit and a killed
server loses nothing it acknowledged. The taxonomy (node questions, category definitions) is
served from :mod:`mhsafety.taxonomy` as JSON; the page holds no copy of it.

Without a token the app is meant for loopback only (an annotator just enters a name); with a
token every API call must carry it in the ``X-Annotate-Token`` header.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import DataError, MhsafetyError, UsageError
from ..settings import SettingsError
from ..taxonomy import as_dict as taxonomy_dict
from ..taxonomy import label_name
from .config import AnnotateServerConfig
from .store import AnnotationStore, validate_annotator

TOKEN_HEADER = "X-Annotate-Token"
STATIC_FILES = {"app.js": "text/javascript", "walk.js": "text/javascript",
                "app.css": "text/css", "index.html": "text/html"}
# The page loads only its own script and style and talks only to this server.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", CSP.encode()),
    (b"server", b"mhsafety-annotate"),
]
JSON_TYPE = "application/json; charset=utf-8"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@cache
def _static(name: str) -> bytes:
    return resources.files("mhsafety.annotate").joinpath("static", name).read_bytes()


def item_payload(example: Any, skipped_before: bool = False) -> dict[str, Any]:
    return {"id": example.id,
            "turns": [{"role": t.role, "text": t.text} for t in example.turns],
            "response": example.response_text,
            "skipped_before": skipped_before}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(obj: Any, status: int = 200) -> Response:
    return Response(json.dumps(obj, ensure_ascii=False).encode("utf-8"), status,
                    media_type=JSON_TYPE)


class _SecurityHeaders:
    """Adds the no-store / nosniff / CSP headers to every response (pure ASGI: no overhead
    of a BaseHTTPMiddleware per request)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass
class _Api:
    """The endpoints; each returns a JSON-able dict and runs in the thread pool."""

    store: AnnotationStore
    config: AnnotateServerConfig
    token: str | None

    def progress_of(self, annotator: str) -> dict[str, Any]:
        found = self.store.progress(annotator)
        return found[0].to_dict() if found else {}

    @staticmethod
    def item_id(body: dict[str, Any]) -> str:
        item_id = body.get("item_id")
        if not isinstance(item_id, str) or not item_id:
            raise ApiError(400, "'item_id' must be a non-empty string")
        return item_id

    def settings(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"taxonomy": taxonomy_dict(), "token_required": self.token is not None,
                "break_every": self.config.break_every, "items": self.store.item_count()}

    def progress(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"progress": [p.to_dict() for p in self.store.progress()]}

    def session(self, body: dict[str, Any]) -> dict[str, Any]:
        info = self.store.register(validate_annotator(body.get("annotator")))
        return {**info, "progress": self.progress_of(info["annotator"])}

    def note(self, body: dict[str, Any]) -> dict[str, Any]:
        self.store.acknowledge_note(validate_annotator(body.get("annotator")))
        return {"ok": True}

    def next(self, body: dict[str, Any]) -> dict[str, Any]:
        name = validate_annotator(body.get("annotator"))
        found = self.store.next_item(name)
        return {"item": None if found is None else item_payload(*found),
                "progress": self.progress_of(name)}

    def annotate(self, body: dict[str, Any]) -> dict[str, Any]:
        name = validate_annotator(body.get("annotator"))
        saved = self.store.record(name, self.item_id(body), body.get("answers"),
                                  body.get("leaf"), body.get("comment", ""),
                                  body.get("seconds", 0.0))
        return {"saved": saved, "label_name": label_name(saved["label"]),
                "progress": self.progress_of(name)}

    def skip(self, body: dict[str, Any]) -> dict[str, Any]:
        name = validate_annotator(body.get("annotator"))
        saved = self.store.skip(name, self.item_id(body), body.get("comment", ""),
                                body.get("seconds", 0.0))
        return {"saved": saved, "progress": self.progress_of(name)}

    def undo(self, body: dict[str, Any]) -> dict[str, Any]:
        name = validate_annotator(body.get("annotator"))
        undone = self.store.undo(name)
        item = None if undone is None else item_payload(self.store.get_item(undone["item_id"]))
        return {"undone": undone, "item": item, "progress": self.progress_of(name)}


async def _read_body(request: Request, limit: int) -> dict[str, Any]:
    try:
        declared = int(request.headers.get("content-length") or 0)
    except ValueError:
        raise ApiError(400, "invalid Content-Length") from None
    if declared > limit:
        raise ApiError(413, f"request body over {limit} bytes")
    raw = bytearray()
    async for chunk in request.stream():  # also bounds a body sent without Content-Length
        raw += chunk
        if len(raw) > limit:
            raise ApiError(413, f"request body over {limit} bytes")
    try:
        obj = json.loads(bytes(raw) or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "the request body is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return obj


def _same_origin(request: Request) -> bool:
    """A browser sends Origin on cross-site POSTs: refuse pages of other sites driving the
    API (scripts and curl send none and are not affected)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _endpoint(api: _Api, handler: Callable[[dict[str, Any]], dict[str, Any]], *,
              post: bool, guarded: bool) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            if guarded and api.token is not None:
                given = request.headers.get(TOKEN_HEADER, "")
                if not hmac.compare_digest(given.encode("utf-8"), api.token.encode("utf-8")):
                    raise ApiError(401, "a valid access token is required")
            body: dict[str, Any] = {}
            if post:
                if not _same_origin(request):
                    raise ApiError(403, "requests from other sites are refused")
                body = await _read_body(request, api.config.max_body)
            return _json(await run_in_threadpool(handler, body))
        except ApiError as exc:
            return _json({"error": str(exc)}, exc.status)
        except DataError as exc:
            return _json({"error": str(exc)}, 404 if "no item" in str(exc) else 400)
        except (UsageError, MhsafetyError) as exc:
            return _json({"error": str(exc)}, 400)
        except Exception as exc:  # noqa: BLE001 - report, keep serving other annotators
            print(f"mhsafety annotate: internal error on {request.url.path}: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)
            return _json({"error": "internal error; the server log has details"}, 500)

    return endpoint


def _page(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return Response(_static(name), media_type=f"{STATIC_FILES[name]}; charset=utf-8")

    return endpoint


async def _no_content(request: Request) -> Response:
    return Response(status_code=204)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = (f"no such endpoint: {request.url.path}" if exc.status_code == 404
               else f"{request.method} is not allowed on {request.url.path}"
               if exc.status_code == 405 else str(exc.detail))
    return _json({"error": message}, exc.status_code)


def create_app(store: AnnotationStore, config: AnnotateServerConfig | None = None,
               token: str | None = None) -> Any:
    """The ASGI app over ``store`` (wrapped in the security-headers middleware)."""
    config = config or AnnotateServerConfig()
    api = _Api(store, config, token)
    routes = [Route(path, _page(name), methods=["GET"])
              for path, name in (("/", "index.html"), ("/index.html", "index.html"),
                                 *((f"/static/{n}", n) for n in STATIC_FILES
                                   if n != "index.html"))]
    routes += [
        Route("/healthz", _endpoint(api, lambda body: {"ok": True}, post=False, guarded=False),
              methods=["GET"]),
        Route("/favicon.ico", _no_content, methods=["GET"]),
        Route("/api/config", _endpoint(api, api.settings, post=False, guarded=False),
              methods=["GET"]),
        Route("/api/progress", _endpoint(api, api.progress, post=False, guarded=True),
              methods=["GET"]),
    ]
    routes += [Route(f"/api/{name}", _endpoint(api, getattr(api, name), post=True, guarded=True),
                     methods=["POST"])
               for name in ("session", "note", "next", "annotate", "skip", "undo")]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    return _SecurityHeaders(app)


class AnnotateServer:
    """The app bound to a listening socket, served by uvicorn.

    ``serve_forever`` blocks (Ctrl-C stops it); ``serve_in_thread`` serves from a daemon
    thread and ``shutdown`` stops it, letting requests in flight finish first.
    """

    def __init__(self, sock: socket.socket, app: Any) -> None:
        import uvicorn

        self.socket = sock
        self.app = app
        # Quiet: the terminal shows the URL and errors only (no access log: request lines
        # would say who annotated when, which is the database's business).
        self._server = uvicorn.Server(uvicorn.Config(
            app, log_level="warning", access_log=False, server_header=False,
            lifespan="off", timeout_graceful_shutdown=10))
        self._stopped = threading.Event()

    @property
    def server_address(self) -> tuple[str, int]:
        host, port = self.socket.getsockname()[:2]
        return host, port

    @property
    def url(self) -> str:
        host, port = self.server_address
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"

    def serve_forever(self) -> None:
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self, timeout: float = 30.0) -> None:
        self._server.should_exit = True
        self._stopped.wait(timeout)

    def server_close(self) -> None:
        self.socket.close()


def _listen(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.setblocking(False)
    return sock


def create_server(store: AnnotationStore, config: AnnotateServerConfig | None = None,
                  token: str | None = None) -> AnnotateServer:
    """Bind the app (port 0 picks a free port; see ``server.url``). Not yet serving."""
    config = config or AnnotateServerConfig()
    if not is_loopback(config.host) and not token:
        raise SettingsError(f"refusing to serve on {config.host} without an access token: "
                            "annotators would be reachable from the network by name alone; "
                            "give {token}, or bind 127.0.0.1", "token")
    return AnnotateServer(_listen(config.host, config.port), create_app(store, config, token))


def serve_in_thread(server: AnnotateServer) -> threading.Thread:
    """Serve from a daemon thread (tests, notebooks); stop with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, name="annotate-server", daemon=True)
    thread.start()
    return thread
