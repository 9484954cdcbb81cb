"""``ServiceConfig``: every default of the guard service, once; ``mhsafety serve``'s service
options come from here (the guard's own from :class:`~mhsafety.guard.GuardConfig`)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from ...settings import Settings, SettingsError, at_least, positive, setting, tcp_port
from ..gateway.config import GatewayConfig

TOKEN_ENV = "MHSAFETY_GUARD_TOKEN"
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass
class ServiceConfig(Settings):
    """Every default of the guard service, once; ``mhsafety serve``'s options come from here.

    ``token`` (never an option: secrets come from the environment variable ``token_env``,
    see :func:`with_token_from_env`) enables bearer auth on ``/v1/*``.
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
    # The gateway (``mhsafety serve --upstream``): its own settings, none when off.
    gateway: GatewayConfig | None = field(default=None)

    def check_together(self) -> None:
        # An oversized body is always drained at least as far as the limit it broke.
        self.max_drain_bytes = max(self.max_drain_bytes, self.max_body_bytes)
        # The one empty-token check (a token read from the environment comes through here).
        if self.token is not None and not self.token.strip():
            raise SettingsError(f"the bearer token is empty ({self.token_env} is set but "
                                "empty?); unset it to serve without auth, or give a real token")


def with_token_from_env(cfg: ServiceConfig) -> ServiceConfig:
    """``cfg`` with the bearer token read from its environment variable (if set)."""
    token = os.environ.get(cfg.token_env)
    return cfg if token is None else dataclasses.replace(cfg, token=token)
