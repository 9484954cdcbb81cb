from __future__ import annotations

from typing import Any

import click

from ..guard.config import GuardConfig
from ..guard.service.config import ServiceConfig
from ..settings import click_options, given


@click.command("serve")
@click_options(GuardConfig)
@click_options(ServiceConfig, exclude=("token",))
def command(**options: Any) -> None:
    """Serve the guard over HTTP: POST /v1/check and /v1/check_dialogue, GET /v1/taxonomy,
    /v1/policy, /healthz, /readyz, /metrics, /docs and /redoc.

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
    serve_config(guard, service)
