"""The guard inline: an OpenAI-compatible gateway (``mhsafety serve --upstream BASE_URL``).

A team points its OpenAI client at the gateway instead of its model server. Each
``POST /v1/chat/completions`` is screened twice: the seeker's turns before the upstream is
called (:mod:`..tiers.seeker`), the upstream's reply before it reaches the client, whole or
while it streams (:mod:`..streaming`, :mod:`..sse`); the policy is carried out (allow, block,
regenerate, hand over with :mod:`..webhook`, fallbacks from :mod:`..fallbacks`) and the
decision travels in a top-level ``mhsafety`` object and an ``X-Mhsafety-Action`` header.

Modules: :mod:`.config` (``GatewayConfig``), :mod:`.messages` (the request's messages as the
guard reads them; conversation ids), :mod:`.upstream` (the model server's client),
:mod:`.chat` (one request: ``ChatGateway``), :mod:`.metrics` (Prometheus), :mod:`.app` (the
routes, mounted on the service app; imports FastAPI).
"""

from .config import CLIENT_TOKENS_ENV, UPSTREAM_KEY_ENV, GatewayConfig

__all__ = ["CLIENT_TOKENS_ENV", "UPSTREAM_KEY_ENV", "GatewayConfig"]
