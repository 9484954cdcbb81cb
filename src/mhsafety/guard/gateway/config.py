"""``GatewayConfig``: every setting of the gateway, once. ``mhsafety serve --upstream URL``
generates its gateway options from these fields; the service's workers receive it inside
:class:`~mhsafety.guard.service.ServiceConfig` (``gateway``). Secrets never travel in it:
the upstream's key and the clients' tokens are read from the environment variables it names.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ...errors import UsageError
from ...settings import Settings, SettingsError, at_least, defaults, positive, setting
from ..streaming import StreamSettings
from ..webhook import WEBHOOK_SECRET_ENV, WebhookSettings

UPSTREAM_KEY_ENV = "MHSAFETY_UPSTREAM_API_KEY"
CLIENT_TOKENS_ENV = "MHSAFETY_GATEWAY_TOKENS"
CONVERSATION_HEADER = "X-Conversation-Id"
SEEKER_ACTIONS = ("handover", "allow")
_STREAM = defaults(StreamSettings)


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def client_tokens(cfg: GatewayConfig) -> tuple[str, ...]:
    """The clients' tokens from the environment variable the config names (none: the
    gateway answers loopback clients only)."""
    raw = os.environ.get(cfg.client_tokens_env, "")
    return tuple(t.strip() for t in raw.split(",") if t.strip())


def check_access(cfg: GatewayConfig, host: str) -> None:
    """Refuse, before anything listens, a gateway open to the network without client tokens
    and a webhook without its signing secret."""
    if host not in LOOPBACK and not client_tokens(cfg):
        raise UsageError(f"the gateway on {host} needs client tokens: set "
                         f"${cfg.client_tokens_env} (comma-separated), or listen on 127.0.0.1")
    if cfg.webhook_url and not os.environ.get(WEBHOOK_SECRET_ENV):
        raise UsageError(f"webhook_url needs a signing secret: set ${WEBHOOK_SECRET_ENV}")


def _http_url(value: Any) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// URL, got {value!r}"
    return None


@dataclass(frozen=True)
class GatewayConfig(Settings):
    """The guard inline in OpenAI-compatible traffic: where the model server is, how replies
    are streamed and screened, what the policy does and where hand-overs go."""

    upstream: str = setting(dataclasses.MISSING, "The model server's OpenAI API root, e.g. "
                                  "http://127.0.0.1:9000/v1 (turns the gateway on).",
                            check=_http_url, metavar="BASE_URL")
    upstream_key_env: str = setting(UPSTREAM_KEY_ENV, "Environment variable holding the "
                                    "upstream's API key (sent as a bearer token when set).")
    client_tokens_env: str = setting(CLIENT_TOKENS_ENV, "Environment variable holding the "
                                     "clients' bearer tokens, comma-separated; unset: the "
                                     "gateway answers loopback clients only.")
    upstream_timeout_s: float = setting(60.0, "Seconds for one upstream call (504 beyond).",
                                        check=positive)
    max_concurrent: int = setting(256, "Chat requests in flight at most (503 beyond).",
                                  check=at_least(1))
    regenerate_attempts: int = setting(2, "Upstream retries for a reply the policy "
                                       "regenerates, each screened; then the fallback.",
                                       check=at_least(0))
    hold_back: int = setting(_STREAM["hold_back"], "Streaming: characters held back until "
                             "the checks have read past them.", check=at_least(0))
    window_every: int = setting(_STREAM["window_every"], "Streaming: the model tiers read a "
                                "window every this many characters.", check=positive)
    window_chars: int = setting(_STREAM["window_chars"], "Streaming: characters in each window "
                                "(at least window_every).", check=positive)
    seeker_rules: bool = setting(True, "Screen every user turn with the seeker rules before "
                                 "the upstream is called.")
    seeker_rules_file: Path | None = setting(None, "A seeker rule file added to the shipped "
                                             "rules.", metavar="FILE")
    seeker_action: str = setting("handover", "What a seeker at high or imminent risk "
                                 "triggers: handover (the reply goes out with the crisis line, "
                                 "the webhook fires) or allow (recorded only).",
                                 choices=SEEKER_ACTIONS)
    seeker_model: str | None = setting(None, "An LLM that also rates the seeker's risk (none, "
                                       "low, high, imminent; it can only raise the rules' "
                                       "level): its model name at seeker_model_url.")
    seeker_model_url: str | None = setting(None, "The seeker model's OpenAI API root (none: "
                                           "the upstream).", check=_http_url,
                                           metavar="BASE_URL")
    seeker_model_key_env: str = setting("OPENAI_API_KEY", "Environment variable holding the "
                                        "seeker model's API key.")
    seeker_model_timeout_s: float = setting(10.0, "Seconds for the seeker model's answer "
                                            "(beyond: the rules' level stands).",
                                            check=positive)
    fallbacks_file: Path | None = setting(None, "A file overriding the fallback texts and "
                                          "crisis lines per locale.", metavar="FILE")
    webhook_url: str | None = setting(None, "Where hand-over events are POSTed (signed with "
                                      "$MHSAFETY_WEBHOOK_SECRET).", check=_http_url,
                                      metavar="URL")
    webhook_attempts: int = setting(defaults(WebhookSettings)["max_attempts"],
                                    "Tries per hand-over event.", check=positive)
    conversation_header: str = setting(CONVERSATION_HEADER, "Request header naming the "
                                       "conversation (else metadata.conversation_id, else "
                                       "a keyed hash).")

    def check_together(self) -> None:
        if self.seeker_model_url is not None and self.seeker_model is None:
            raise SettingsError("{seeker_model_url} needs {seeker_model} (the model's name)",
                                "seeker_model_url", "seeker_model")
        if self.window_chars < self.window_every:
            raise SettingsError("{window_chars} must be at least {window_every}, or some "
                                "text is never read by a window check", "window_chars",
                                "window_every")

    @property
    def stream_settings(self) -> StreamSettings:
        return StreamSettings(self.hold_back, self.window_every, self.window_chars)

    @property
    def webhook_settings(self) -> WebhookSettings:
        return WebhookSettings(max_attempts=self.webhook_attempts)
