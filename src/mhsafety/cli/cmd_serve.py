from __future__ import annotations

from typing import Any

import click

from ..guard.service import ServiceConfig
from ..settings import click_options, given
from .cmd_check import guard_kwargs, guard_options


@click.command("serve")
@guard_options
@click_options(ServiceConfig, exclude=("token",))
def command(checkpoint: str, threshold: float | None, rules_file: Any, no_default_rules: bool,
            no_rules: bool, policy_file: Any, escalate_to: Any, band: str | None,
            escalate_threshold: float | None, runtime: str | None, **service: Any) -> None:
    """Serve the guard over HTTP: POST /v1/check and /v1/check_dialogue, GET /v1/taxonomy,
    /v1/policy, /healthz, /readyz, /metrics, /docs and /redoc.

    Request text never reaches the logs: each line has the request id, sizes, latency,
    status and decisions.
    """
    from ..classifiers.base import read_manifest
    from ..guard.service import serve_checkpoint
    from ..registry import classifier_class
    from ..settings import build

    # A kind may propose its own micro-batching (an encoder's model calls are slow); what
    # the user gave wins.
    kind = classifier_class(read_manifest(checkpoint)["kind"])
    proposed = getattr(kind, "serving_defaults", {})
    config = build(ServiceConfig, {**proposed, **given(service)}, "serve")
    serve_checkpoint(str(checkpoint), threshold, config,
                     **guard_kwargs(rules_file, no_default_rules, no_rules, policy_file,
                                    escalate_to, band, escalate_threshold, runtime))
