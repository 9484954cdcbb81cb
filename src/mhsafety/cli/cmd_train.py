from __future__ import annotations

from pathlib import Path

import click

from ..training import DEFAULT_TRAIN_SEEDS
from .options import (
    SpacedListCommand,
    allow_overlap_option,
    config_option,
    encoder_config,
    encoder_train_options,
    force_option,
    parse_config,
    seeds_option,
    split_train_selection,
)


@click.command("train", cls=SpacedListCommand)
@click.option("--model", default="baseline", show_default=True,
              help="'baseline' (offline, CPU) or a classifier spec kind:ARG; a value without a "
                   "colon is read as a Hugging Face encoder name or path.")
@click.option("--train", "train_path", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="Labelled training data (JSON list or JSONL).")
@click.option("--dev", "dev_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Labelled dev data for model selection (never the test set).")
@click.option("--dev-ratio", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=None, help="Split this share of --train off as the dev set instead.")
@seeds_option(DEFAULT_TRAIN_SEEDS)
@config_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Checkpoint folder (with several seeds: one OUT/seed-N per seed); a rerun "
                   "replaces its own, any other non-empty folder is refused (see --force).")
@force_option
@allow_overlap_option
@encoder_train_options
def command(model: str, train_path: Path, dev_path: Path | None, dev_ratio: float | None,
            seeds: list[int], config: tuple[str, ...], out: Path, force: bool,
            allow_overlap: bool, **encoder: object) -> None:
    """Train a classifier and save it as a checkpoint folder.

    The options from --head on apply to fine-tuned encoders only.
    """
    from ..training import model_spec, train_checkpoints

    settings = parse_config(config)
    spec = model_spec(model)
    if spec.startswith("encoder:"):
        settings = {**encoder_config(encoder, spec), **settings}
        settings, dev_path = split_train_selection(settings, out, dev_path, dev_ratio)
    else:
        encoder_config(encoder, spec)  # encoder options given to another kind: an error
    train_checkpoints(model, train_path, out, seeds, dev_path, dev_ratio,
                      settings, log=lambda msg: click.echo(msg, err=True),
                      allow_overlap=allow_overlap, force=force)
