from __future__ import annotations

import dataclasses
from typing import Any

import click

from ..errors import UsageError
from ..guard.config import GuardConfig
from ..guard.gateway.config import GatewayConfig
from ..guard.service.config import ServiceConfig
from ..settings import build_from_options, click_options, given


@click.command("serve")
@click_options(GuardConfig)
@click_options(ServiceConfig, exclude=("token", "gateway"))
@click_options(GatewayConfig)
def command(**options: Any) -> None:
    """Serve the guard over HTTP: POST /v1/check and /v1/check_dialogue, GET /v1/taxonomy,
    /v1/policy, /healthz, /readyz, /metrics, /docs and /redoc. With --upstream BASE_URL,
    also the gateway: POST /v1/chat/completions (screened, policy carried out) and GET
    /v1/models, in front of that OpenAI-compatible model server.

    Request text never reaches the logs: each line has the request id, sizes, latency,
    status and decisions.
    """
    from ..classifiers.base import read_manifest
    from ..guard import guard_config
    from ..guard.service import serve_config
    from ..registry import classifier_class
    from ..settings import build

    guard = guard_config(given(options, GuardConfig), "serve")
    # A kind may propose its own micro-batching (an encoder's model calls are slow); what
    # the user gave wins.
    proposed = getattr(classifier_class(read_manifest(guard.checkpoint)["kind"]),
                       "serving_defaults", {})
    service = build(ServiceConfig, {**proposed, **given(options, ServiceConfig)}, "serve")
    gateway = given(options, GatewayConfig)
    if gateway:
        if "upstream" not in gateway:
            raise UsageError("the gateway's options need --upstream BASE_URL (the model "
                             "server's OpenAI API root)")
        service = dataclasses.replace(
            service, gateway=build_from_options(GatewayConfig, gateway, "serve"))
    serve_config(guard, service)
