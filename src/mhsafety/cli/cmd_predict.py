from __future__ import annotations

from pathlib import Path

import click

from ._encoder_options import encoder_predict_options
from .options import data_option


@click.command("predict")
@click.option("--checkpoint", type=click.Path(path_type=Path), required=True,
              help="A checkpoint folder written by `mhsafety train` (any kind).")
@data_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Prediction records to write (JSONL, with probabilities).")
@click.option("--system", default=None,
              help="System name in the records (default: the checkpoint folder's name).")
@click.option("--run", default="0", show_default=True, help="Run name in the records.")
@encoder_predict_options
def command(checkpoint: Path, data_path: Path | None, out: Path, system: str | None,
            run: str, **encoder: object) -> None:
    """Predict a dataset with a saved classifier; write prediction records (JSONL)."""
    from ..classifiers.base import read_manifest
    from ..errors import UsageError
    from ..training import predict_file

    settings = {k: v for k, v in encoder.items() if v is not None}
    if settings and read_manifest(checkpoint)["kind"] != "encoder":
        flags = ", ".join("--" + k.replace("eval_", "").replace("_", "-") for k in settings)
        raise UsageError(f"{flags} only apply to encoder checkpoints")
    n = predict_file(checkpoint, data_path, out, system, run, settings)
    click.echo(f"wrote {n} prediction records to {out}", err=True)
