from __future__ import annotations

import json
from pathlib import Path

import click

from .. import data
from ..settings import DEFAULT_SEED
from .options import data_option, force_option


@click.group("data")
def command() -> None:
    """Download, inspect and split datasets."""


@command.command("download")
@click.option("--url", default=data.TEST_SET_URL, show_default=True,
              help="Where to fetch the test set (a mirror of the pinned upstream file).")
@click.option("--force", is_flag=True, help="Fetch again even if a verified copy is cached.")
def download(url: str, force: bool) -> None:
    """Fetch the public test set, verify its sha256 and cache it.

    The cache is ~/.cache/mhsafety unless MHSAFETY_CACHE_DIR is set.
    """
    path = data.download_test_set(url=url, force=force)
    click.echo(f"test set ({data.TEST_SET_SHA256[:12]}…, verified) at {path}")


@command.command("stats")
@data_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def stats(data_path: Path | None, as_json: bool) -> None:
    """Label counts, turn and length distributions of a dataset."""
    examples = data.load_examples(data.resolve_data(data_path), require_label=False)
    result = data.dataset_stats(examples)
    click.echo(json.dumps(result, indent=2) if as_json else data.format_stats(result))


@command.command("split")
@data_option
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write; a rerun replaces its own, any other non-empty folder is "
                   "refused (see --force).")
@click.option("--dev-ratio", type=float, default=None,
              help="Write train.jsonl and dev.jsonl with this share in dev (stratified).")
@click.option("--folds", type=click.IntRange(2), default=None,
              help="Write fold-K/train.jsonl and fold-K/test.jsonl for stratified k-fold.")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@force_option
def split(data_path: Path | None, out_dir: Path, dev_ratio: float | None, folds: int | None,
          seed: int, force: bool) -> None:
    """Seeded stratified train/dev split or k-fold split of a dataset."""
    from ..io import atomic_directory, prepare_output_dir

    if (dev_ratio is None) == (folds is None):
        raise click.UsageError("give exactly one of --dev-ratio or --folds")
    prepare_output_dir(out_dir, command="data split", force=force, flag="--out-dir")
    examples = data.load_examples(data.resolve_data(data_path))
    if dev_ratio is not None:
        train, dev = data.train_dev_split(examples, dev_ratio, seed)
        with atomic_directory(out_dir, "data split") as tmp:
            data.write_examples(tmp / "train.jsonl", train)
            data.write_examples(tmp / "dev.jsonl", dev)
        click.echo(f"train {len(train)}, dev {len(dev)} items in {out_dir}")
        return
    with atomic_directory(out_dir, "data split") as tmp:
        for k, (train_idx, test_idx) in enumerate(data.stratified_kfold(examples, folds, seed)):
            data.write_examples(tmp / f"fold-{k}" / "train.jsonl",
                                [examples[i] for i in train_idx])
            data.write_examples(tmp / f"fold-{k}" / "test.jsonl",
                                [examples[i] for i in test_idx])
    click.echo(f"{folds} stratified folds of {len(examples)} items in {out_dir}")


@command.command("export")
@data_option
@click.option("--format", "fmt", type=click.Choice(["hf", "parquet", "jsonl"]),
              default="parquet", show_default=True,
              help="hf: datasets' save_to_disk form (load_from_disk); parquet or jsonl: "
                   "data files plus card (load_dataset).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Dataset folder to write; a rerun replaces its own, any other non-empty "
                   "folder is refused (see --force).")
@click.option("--split", "split_name", default="test", show_default=True,
              help="Split name of the --data items.")
@click.option("--train", "train_path", type=click.Path(path_type=Path), default=None,
              help="Also export this labelled file as the 'train' split (the training set's "
                   "data-use agreement then applies to the folder).")
@force_option
def export(data_path: Path | None, fmt: str, out: Path, split_name: str,
           train_path: Path | None, force: bool) -> None:
    """Write a Hugging Face dataset folder with a dataset card; --data reads it back."""
    from ..data.export import export_dataset
    from ..io import prepare_output_dir

    prepare_output_dir(out, command="data export", force=force)

    splits = {split_name: data.load_examples(data.resolve_data(data_path), require_label=False)}
    if train_path is not None:
        if split_name == "train":
            raise click.UsageError("--split train clashes with --train; name the --data split "
                                   "otherwise")
        splits["train"] = data.load_examples(train_path)
    export_dataset(splits, out, fmt)
    sizes = ", ".join(f"{name} {len(exs)}" for name, exs in splits.items())
    click.echo(f"wrote a {fmt} dataset folder ({sizes} items) with its card to {out}")
