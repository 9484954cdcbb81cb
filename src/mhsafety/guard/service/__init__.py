"""The guard as an HTTP service (FastAPI + uvicorn): ``mhsafety serve``.

Modules: :mod:`.config` (``ServiceConfig``), :mod:`.app` (``create_app(guard, config)``, the
endpoints), :mod:`.middleware` (request id, auth, body limit, the log line), :mod:`.batching`
(micro-batching, the tiers behind batchers), :mod:`.metrics` (Prometheus), :mod:`.workers`
(running it: one process or several, which die with their parent), :mod:`.schemas` (request
and response bodies).

- Requests are micro-batched: each batched tier (a model) has an asyncio queue that collects
  concurrent requests and one long-lived worker thread that runs one call per batch. Cheap
  tiers (rules) run in the request handler.
- Fail closed: a model error, an abstention, a request past its timeout or an empty reply
  gives ``"unverified"`` results with the reason.
- Privacy: log lines and metrics carry the request id, sizes, latency, status, decisions and
  categories, never text.
- Limits (body bytes, batch size, text characters) answer 413 with a one-sentence message.
  Malformed or mistyped bodies, unknown fields and NaN or Infinity anywhere answer 422
  naming the field.
- Optional bearer token (from an environment variable): a request to ``/v1/*`` without the
  right token gets a bare 401.

Importing this package does not import FastAPI; :func:`create_app` and the serving functions
load it when called.
"""

from __future__ import annotations

from typing import Any

from .batching import MicroBatcher, Screener
from .config import LOG_LEVELS, TOKEN_ENV, ServiceConfig, with_token_from_env

__all__ = ["LOG_LEVELS", "TOKEN_ENV", "MicroBatcher", "Screener", "ServiceConfig",
           "create_app", "serve", "serve_config", "with_token_from_env"]


def create_app(guard: Any, config: ServiceConfig | None = None) -> Any:
    """The FastAPI application serving ``guard`` (see :func:`.app.create_app`)."""
    from .app import create_app as make

    return make(guard, config)


def serve(guard: Any, config: ServiceConfig | None = None, announce: Any = None) -> None:
    """Serve a loaded guard in this process (see :func:`.workers.serve`)."""
    from .workers import serve as run

    run(guard, config, announce)


def serve_config(guard_config: Any, config: ServiceConfig | None = None,
                 announce: Any = None) -> None:
    """Build the guard a ``GuardConfig`` describes and serve it, with ``config.workers``
    processes (see :func:`.workers.serve_config`)."""
    from .workers import serve_config as run

    run(guard_config, config, announce)
