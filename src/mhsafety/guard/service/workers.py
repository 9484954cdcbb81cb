"""Running the service: one process (:func:`serve`), or several workers on one socket
(:func:`serve_config` with ``workers`` > 1), each with its own copy of the models.

Workers are spawned processes that receive the :class:`~mhsafety.guard.GuardConfig` and
the :class:`ServiceConfig` as objects (pickled by :mod:`multiprocessing`; the bearer token
never travels: each worker reads it from the environment, as the parent did). A worker dies
with its parent: on Linux the kernel sends it SIGTERM when the parent dies
(``PR_SET_PDEATHSIG``), and on every platform a watchdog thread stops it when its parent's
pid changes, so a ``kill -9`` of ``mhsafety serve`` leaves no worker holding the port. The
socket is bound with ``SO_REUSEADDR``, so a restart on the same port binds at once.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ...errors import UsageError
from ..config import GuardConfig
from ..core import Guard
from .config import ServiceConfig, with_token_from_env

LOG = logging.getLogger("mhsafety.guard")
# A worker that exits this soon after it started is failing to start, not crashing later:
# the parent stops instead of restarting it in a loop.
_EARLY_EXIT_S = 10.0
_WATCH_EVERY_S = 0.5
_PR_SET_PDEATHSIG = 1


def configure_logging(level: str = "info") -> None:
    """One stderr handler for the guard's log lines (idempotent)."""
    if not any(getattr(h, "_mhsafety", False) for h in LOG.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler._mhsafety = True  # type: ignore[attr-defined]
        LOG.addHandler(handler)
    LOG.setLevel(level.upper())
    LOG.propagate = False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; ``SO_REUSEADDR`` so a restart after a crash binds at once."""
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


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ModuleNotFoundError:
        from ...errors import missing_extra

        raise missing_extra("uvicorn", "serve") from None
    return uvicorn


def _uvicorn_config(app: Any, log_level: str) -> Any:
    return _uvicorn().Config(app, log_level=log_level, access_log=False, lifespan="on",
                             timeout_graceful_shutdown=5, timeout_keep_alive=30)


def _announce(sock: socket.socket, cfg: ServiceConfig,
              announce: Callable[[str], None] | None) -> None:
    host = cfg.host
    shown_host = f"[{host}]" if ":" in host else host
    if host not in ("127.0.0.1", "localhost", "::1") and not cfg.token:
        LOG.warning("listening on %s without a token: anyone who can reach it can use it", host)
    url = f"http://{shown_host}:{sock.getsockname()[1]}"
    (announce or (lambda u: print(f"mhsafety guard listening on {u}", file=sys.stderr,
                                  flush=True)))(url)


def _run(guard: Guard, cfg: ServiceConfig, sock: socket.socket,
         on_server: Callable[[Any], None] | None = None) -> None:
    from .app import create_app

    server = _uvicorn().Server(_uvicorn_config(create_app(guard, cfg), cfg.log_level))
    if on_server is not None:
        on_server(server)
    server.run(sockets=[sock])


def serve(guard: Guard, config: ServiceConfig | None = None,
          announce: Callable[[str], None] | None = None) -> None:
    """Run the service for a loaded ``guard`` in this process until interrupted.
    ``announce`` gets the bound URL (port 0 picks a free port)."""
    cfg = config or ServiceConfig()
    configure_logging(cfg.log_level)
    sock = bind(cfg.host, cfg.port)
    _announce(sock, cfg, announce)
    _run(guard, cfg, sock)


def serve_config(guard_config: GuardConfig, config: ServiceConfig | None = None,
                 announce: Callable[[str], None] | None = None) -> None:
    """Build the guard ``guard_config`` describes and serve it; the bearer token comes from
    the environment variable ``config.token_env``.

    ``config.workers`` > 1 runs that many processes on one socket, each with its own models
    and micro-batchers, so HTTP handling and model calls use several cores.
    """
    cfg = with_token_from_env(config or ServiceConfig())
    if cfg.gateway is not None:
        from ..gateway.config import check_access

        check_access(cfg.gateway, cfg.host)
    guard = Guard.from_config(guard_config)  # fail here, once, on a bad checkpoint or file
    if cfg.workers == 1:
        serve(guard, cfg, announce)
        return
    guard.close()
    del guard
    configure_logging(cfg.log_level)
    sock = bind(cfg.host, cfg.port)
    _announce(sock, cfg, announce)
    run_workers(guard_config, cfg, sock)


# ---------------------------------------------------------------------- workers


def die_with_parent(parent_pid: int, on_orphan: Callable[[], None],
                    grace_s: float = 10.0) -> None:
    """Make this process stop when ``parent_pid`` dies, however it dies.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGTERM)``, so the kernel signals us. Everywhere: a
    daemon thread that calls ``on_orphan`` (a graceful stop) once our parent pid changes,
    and ends the process ``grace_s`` later if it is still running.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl here: the watchdog still works
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_WATCH_EVERY_S)
        on_orphan()
        time.sleep(grace_s)
        os._exit(1)

    threading.Thread(target=watch, name="mhsafety-parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the watch began
        os._exit(1)


def worker_main(guard_config: GuardConfig, cfg: ServiceConfig, sock: socket.socket,
                parent_pid: int) -> None:
    """One worker process: its own guard from ``guard_config``, serving on ``sock``."""
    servers: list[Any] = []

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    die_with_parent(parent_pid, stop)
    configure_logging(cfg.log_level)
    cfg = with_token_from_env(cfg)
    _run(Guard.from_config(guard_config), cfg, sock, servers.append)


def run_workers(guard_config: GuardConfig, cfg: ServiceConfig, sock: socket.socket) -> None:
    """``cfg.workers`` worker processes on ``sock`` until SIGINT or SIGTERM; a worker that
    dies is replaced (one that dies right after starting stops the service instead)."""
    context = multiprocessing.get_context("spawn")
    shared = dataclasses.replace(cfg, token=None)  # each worker reads the token itself

    def start() -> tuple[Any, float]:
        process = context.Process(target=worker_main, name="mhsafety-guard-worker",
                                  args=(guard_config, shared, sock, os.getpid()))
        process.start()
        return process, time.monotonic()

    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    workers = [start() for _ in range(cfg.workers)]
    failed: str | None = None
    try:
        while not stopping.wait(_WATCH_EVERY_S):
            for i, (process, started) in enumerate(workers):
                if process.is_alive():
                    continue
                if time.monotonic() - started < _EARLY_EXIT_S:
                    failed = (f"a worker exited with code {process.exitcode} while starting; "
                              "see the lines above")
                    stopping.set()
                    break
                LOG.warning("worker pid %s exited with code %s; starting another",
                            process.pid, process.exitcode)
                workers[i] = start()
    finally:
        for process, _ in workers:
            if process.is_alive():
                process.terminate()
        for process, _ in workers:
            process.join(15)
            if process.is_alive():
                process.kill()
                process.join()
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        raise UsageError(failed)
