from __future__ import annotations

from pathlib import Path

import click


@click.command("serve")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path),
              help="A saved classifier folder (any kind).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; loopback unless told otherwise.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port (0: any free port; the bound URL is printed on stderr).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Flag unsafe when P(safe) < this. Default: the checkpoint's, else 0.5.")
@click.option("--token-env", default="MHSAFETY_GUARD_TOKEN", show_default=True,
              help="Environment variable holding the bearer token; auth is on when it is set.")
@click.option("--max-body-bytes", type=click.IntRange(1), default=1 << 20, show_default=True)
@click.option("--max-batch", type=click.IntRange(1), default=64, show_default=True,
              help="Items per request.")
@click.option("--max-text-chars", type=click.IntRange(1), default=4000, show_default=True,
              help="Characters per context or response.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0, min_open=True), default=10.0,
              show_default=True, help="Seconds before a request's results become unverified.")
@click.option("--batch-wait-ms", type=click.FloatRange(0), default=1.0, show_default=True,
              help="How long an idle model waits to batch concurrent requests.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Server processes, each with its own copy of the model (uses more cores).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True)
def command(checkpoint: Path, host: str, port: int, threshold: float | None, token_env: str,
            max_body_bytes: int, max_batch: int, max_text_chars: int, timeout_s: float,
            batch_wait_ms: float, workers: int, log_level: str) -> None:
    """Serve the guard over HTTP: POST /v1/check, GET /v1/taxonomy, GET /healthz, /docs.

    Request text never reaches the logs: each line has the request id, sizes, latency,
    status and decisions.
    """
    from ..guard.service import ServiceConfig, serve_checkpoint

    config = ServiceConfig(max_body_bytes=max_body_bytes, max_batch=max_batch,
                           max_text_chars=max_text_chars, timeout_s=timeout_s,
                           batch_wait_ms=batch_wait_ms)
    serve_checkpoint(str(checkpoint), host, port, threshold, config, token_env, log_level,
                     workers)
