from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path),
              help="An encoder checkpoint folder written by `mhsafety train`.")
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True,
              help="What to export to.")
@click.option("--quantize", type=click.Choice(["int8"]), default=None,
              help="Also write a dynamically quantized int8 copy and use it.")
def command(checkpoint: Path, fmt: str, quantize: str | None) -> None:
    """Add an ONNX model to an encoder checkpoint.

    On CPU, predict (--runtime auto, its default), check and serve then score with ONNX
    Runtime, with PyTorch as the fallback.
    """
    from ..classifiers.encoder_export import export_onnx
    from ..io import mark_output_dir, output_writer

    path = export_onnx(checkpoint, quantize)
    if output_writer(checkpoint) == "train":  # the ONNX files belong to the checkpoint now
        mark_output_dir(checkpoint, "train", entries=[p.name for p in checkpoint.iterdir()])
    click.echo(f"wrote {path} ({quantize or 'fp32'}); recorded in {checkpoint}/manifest.json",
               err=True)
