"""The annotation web app: a small JSON API over :mod:`.store` plus static HTML/JS/CSS.

Built on the standard library's threading HTTP server: one thread per request, each store
operation in its own SQLite transaction, so annotators working at once never block each other
for longer than one commit. The taxonomy (node questions, category definitions) is served from
:mod:`mhsafety.taxonomy` as JSON; the page holds no copy of it.

Without ``token`` the app is meant for loopback only (an annotator just enters a name); with a
token every API call must carry it in the ``X-Annotate-Token`` header.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from ..errors import DataError, MhsafetyError, UsageError
from ..taxonomy import as_dict as taxonomy_dict
from ..taxonomy import label_name
from .store import AnnotationStore

MAX_BODY = 64 * 1024
TOKEN_HEADER = "X-Annotate-Token"
STATIC_FILES = {"app.js": "text/javascript", "app.css": "text/css", "index.html": "text/html"}
# The page loads only its own script and style and talks only to this server.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _static(name: str) -> bytes:
    return resources.files("mhsafety.annotate").joinpath("static", name).read_bytes()


def item_payload(example: Any, skipped_before: bool = False) -> dict[str, Any]:
    return {"id": example.id,
            "turns": [{"role": t.role, "text": t.text} for t in example.turns],
            "response": example.response_text,
            "skipped_before": skipped_before}


class AnnotateServer(ThreadingHTTPServer):
    daemon_threads = True
    # Many short requests from a handful of browsers; keep the accept queue generous.
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], store: AnnotationStore,
                 token: str | None = None, break_every: int = 25) -> None:
        self.store = store
        self.token = token
        self.break_every = break_every
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"


class _ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    server: AnnotateServer
    protocol_version = "HTTP/1.1"
    server_version = "mhsafety-annotate"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the terminal shows the URL and errors only

    # ------------------------------------------------------------------ plumbing

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"),
                   "application/json")

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "invalid Content-Length") from None
        if length > MAX_BODY:
            raise _ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"request body over {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length else b""
        try:
            obj = json.loads(raw or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _ApiError(HTTPStatus.BAD_REQUEST, "the request body is not valid JSON") from None
        if not isinstance(obj, dict):
            raise _ApiError(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object")
        return obj

    def _check_token(self) -> None:
        expected = self.server.token
        if expected is None:
            return
        given = self.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
            raise _ApiError(HTTPStatus.UNAUTHORIZED, "a valid access token is required")

    def _dispatch(self, routes: dict[str, Callable[[], Any]]) -> None:
        path = urlsplit(self.path).path
        try:
            handler = routes.get(path)
            if handler is None:
                raise _ApiError(HTTPStatus.NOT_FOUND, f"no such endpoint: {path}")
            if path.startswith("/api/") and path != "/api/config":
                self._check_token()
            result = handler()
            if result is not None:
                self._json(result)
        except _ApiError as exc:
            self._json({"error": str(exc)}, exc.status)
        except DataError as exc:
            self._json({"error": str(exc)}, HTTPStatus.NOT_FOUND if "no item" in str(exc)
                       else HTTPStatus.BAD_REQUEST)
        except (UsageError, MhsafetyError) as exc:
            self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
        except Exception as exc:  # noqa: BLE001 - report, keep serving other annotators
            print(f"mhsafety annotate: internal error on {path}: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
            self._json({"error": "internal error; the server log has details"},
                       HTTPStatus.INTERNAL_SERVER_ERROR)

    # ------------------------------------------------------------------ routes

    def do_GET(self) -> None:
        self._dispatch({
            "/": lambda: self._page("index.html"),
            "/index.html": lambda: self._page("index.html"),
            "/static/app.js": lambda: self._page("app.js"),
            "/static/app.css": lambda: self._page("app.css"),
            "/healthz": lambda: {"ok": True},
            "/favicon.ico": self._no_content,
            "/api/config": self._config,
            "/api/progress": lambda: {"progress": [p.to_dict()
                                                   for p in self.server.store.progress()]},
        })

    do_HEAD = do_GET

    def do_POST(self) -> None:
        self._dispatch({
            "/api/session": self._session,
            "/api/note": self._note,
            "/api/next": self._next,
            "/api/annotate": self._annotate,
            "/api/skip": self._skip,
            "/api/undo": self._undo,
        })

    def _no_content(self) -> None:
        self.send_response(HTTPStatus.NO_CONTENT)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _page(self, name: str) -> None:
        self._send(HTTPStatus.OK, _static(name), STATIC_FILES[name])

    def _config(self) -> dict[str, Any]:
        return {"taxonomy": taxonomy_dict(), "token_required": self.server.token is not None,
                "break_every": self.server.break_every,
                "items": self.server.store.item_count()}

    def _progress(self, annotator: str) -> dict[str, Any]:
        found = self.server.store.progress(annotator)
        return found[0].to_dict() if found else {}

    def _annotator(self, body: dict[str, Any]) -> str:
        from .store import validate_annotator

        return validate_annotator(body.get("annotator"))

    def _session(self) -> dict[str, Any]:
        body = self._body()
        info = self.server.store.register(self._annotator(body))
        return {**info, "progress": self._progress(info["annotator"])}

    def _note(self) -> dict[str, Any]:
        name = self._annotator(self._body())
        self.server.store.acknowledge_note(name)
        return {"ok": True}

    def _next(self) -> dict[str, Any]:
        name = self._annotator(self._body())
        found = self.server.store.next_item(name)
        item = None if found is None else item_payload(*found)
        return {"item": item, "progress": self._progress(name)}

    def _item_id(self, body: dict[str, Any]) -> str:
        item_id = body.get("item_id")
        if not isinstance(item_id, str) or not item_id:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "'item_id' must be a non-empty string")
        return item_id

    def _annotate(self) -> dict[str, Any]:
        body = self._body()
        name = self._annotator(body)
        saved = self.server.store.record(name, self._item_id(body), body.get("answers"),
                                         body.get("leaf"), body.get("comment", ""),
                                         body.get("seconds", 0.0))
        return {"saved": saved, "label_name": label_name(saved["label"]),
                "progress": self._progress(name)}

    def _skip(self) -> dict[str, Any]:
        body = self._body()
        name = self._annotator(body)
        saved = self.server.store.skip(name, self._item_id(body), body.get("comment", ""),
                                       body.get("seconds", 0.0))
        return {"saved": saved, "progress": self._progress(name)}

    def _undo(self) -> dict[str, Any]:
        name = self._annotator(self._body())
        undone = self.server.store.undo(name)
        item = None
        if undone is not None:
            item = item_payload(self.server.store.get_item(undone["item_id"]))
        return {"undone": undone, "item": item, "progress": self._progress(name)}


def create_server(store: AnnotationStore, host: str = "127.0.0.1", port: int = 8765,
                  token: str | None = None, break_every: int = 25) -> AnnotateServer:
    """Bind the app (port 0 picks a free port; see ``server.url``). Not yet serving."""
    if not is_loopback(host) and not token:
        raise UsageError(f"refusing to serve on {host} without an access token: annotators "
                         "would be reachable from the network by name alone; set one with "
                         "--token-env VAR, or bind 127.0.0.1")
    if break_every < 1:
        raise UsageError("--break-every must be at least 1")
    try:
        return AnnotateServer((host, port), store, token=token, break_every=break_every)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None


def serve_in_thread(server: AnnotateServer) -> threading.Thread:
    """Serve from a daemon thread (tests, notebooks); stop with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, name="annotate-server", daemon=True)
    thread.start()
    return thread
