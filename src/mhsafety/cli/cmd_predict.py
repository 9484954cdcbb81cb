from __future__ import annotations

from pathlib import Path

import click

from ._common import data_option


@click.command("predict")
@click.option("--checkpoint", type=click.Path(path_type=Path), required=True,
              help="A checkpoint folder written by `mhsafety train` (any kind).")
@data_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Prediction records to write (JSONL, with probabilities).")
@click.option("--system", default=None,
              help="System name in the records (default: the checkpoint folder's name).")
@click.option("--run", default="0", show_default=True, help="Run name in the records.")
def command(checkpoint: Path, data_path: Path | None, out: Path, system: str | None,
            run: str) -> None:
    """Predict a dataset with a saved classifier; write prediction records (JSONL)."""
    from ..benchmark import predict_file

    n = predict_file(checkpoint, data_path, out, system, run)
    click.echo(f"wrote {n} prediction records to {out}", err=True)
