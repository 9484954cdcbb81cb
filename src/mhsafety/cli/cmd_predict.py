from __future__ import annotations

from pathlib import Path

import click

from .options import allow_overlap_option, data_option, encoder_predict_options, force_option


@click.command("predict")
@click.option("--checkpoint", type=click.Path(path_type=Path), required=True,
              help="A checkpoint folder written by `mhsafety train` (any kind).")
@data_option
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Prediction records to write (JSONL, with probabilities); with --engine "
                   "ray, the folder of screened shards.")
@click.option("--system", default=None,
              help="System name in the records (default: the checkpoint folder's name).")
@click.option("--run", default="0", show_default=True, help="Run name in the records.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
              show_default=True,
              help="ray: screen many shards (--data 'logs/*.parquet', JSONL too) on a Ray "
                   "cluster ($RAY_ADDRESS, else a local one), adding label, label_name, "
                   "p_safe, decision, node and reason columns.")
@click.option("--ray-actors", type=click.IntRange(1), default=None,
              help="Ray actors, each loading the checkpoint once [default: CPUs - 1, at most "
                   "one per shard].")
@click.option("--ray-batch-size", type=click.IntRange(1), default=None,
              help="Rows per Ray batch [default: 256].")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="With --engine ray: flag a row unsafe when P(safe) is below this "
                   "[default: the checkpoint's guard threshold, else 0.5].")
@allow_overlap_option
@encoder_predict_options
@force_option
def command(checkpoint: Path, data_path: Path | None, out: Path, system: str | None,
            run: str, engine: str, ray_actors: int | None, ray_batch_size: int | None,
            threshold: float | None, allow_overlap: bool, force: bool,
            **encoder: object) -> None:
    """Predict a dataset with a saved classifier; write prediction records (JSONL).

    Items the checkpoint was trained on (near-duplicates included) are refused unless
    --allow-overlap, which marks the records so every table row shows it.

    --batch-size, --precision, --device and --runtime apply to encoder checkpoints only.
    """
    from ..classifiers.base import read_manifest
    from ..errors import UsageError
    from ..io import prepare_output_dir, prepare_output_file
    from ..training import predict_file

    if engine == "ray":
        from ..integrations.ray import DEFAULT_BATCH_SIZE, screen_files

        if data_path is None:
            raise UsageError("--engine ray needs --data PATTERN (e.g. 'logs/*.parquet')")
        prepare_output_dir(out, command="predict", force=force, create=True, fresh=True)
        n = screen_files(str(data_path), checkpoint, out, threshold=threshold,
                         batch_size=ray_batch_size or DEFAULT_BATCH_SIZE,
                         concurrency=ray_actors)
        click.echo(f"screened {n} rows into {out}", err=True)
        return
    ray_only = [flag for flag, value in (("--ray-actors", ray_actors),
                                         ("--ray-batch-size", ray_batch_size),
                                         ("--threshold", threshold)) if value is not None]
    if ray_only:
        raise UsageError(f"{', '.join(ray_only)}: for --engine ray only")
    if force:
        raise UsageError("--force: for --engine ray only (its --out is a folder)")
    prepare_output_file(out)  # before the model loads

    settings = {k: v for k, v in encoder.items() if v is not None}
    if settings and read_manifest(checkpoint)["kind"] != "encoder":
        flags = ", ".join("--" + k.replace("eval_", "").replace("_", "-") for k in settings)
        raise UsageError(f"{flags} only apply to encoder checkpoints")
    n = predict_file(checkpoint, data_path, out, system, run, settings, allow_overlap,
                     warn=lambda text: click.echo(f"warning: {text}", err=True))
    click.echo(f"wrote {n} prediction records to {out}", err=True)
