from __future__ import annotations

from pathlib import Path

import click

from ..tables import EXTRA_COLUMNS, TABLE2_COLUMNS, format_per_class, format_table
from .options import allow_overlap_option, decimals_option, emit, format_option


@click.command("evaluate")
@click.argument("runs", nargs=-1, required=True,
                type=click.Path(exists=False, path_type=Path))
@format_option
@decimals_option
@click.option("--extra", is_flag=True, help="Add macro-F1 and unsafe recall columns.")
@click.option("--per-class", is_flag=True, help="Also print per-class tables.")
@click.option("--nodes", is_flag=True, help="Also print the per-node tables: precision, recall, "
              "F1 and n of each decision of the sequential framework.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the table to this file instead of printing it.")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Check the scored items against this checkpoint's training data "
                   "[default: the checkpoint `predict` named in the records].")
@click.option("--data", "data_path", type=click.Path(path_type=Path), default=None,
              help="The scored items' file, for the overlap check of records that do not "
                   "carry their items' fingerprints (joined on ids).")
@allow_overlap_option
@click.option("--allow-different-items", is_flag=True,
              help="Average a system's runs even when they scored different item sets "
                   "(the row is marked so).")
def command(runs: tuple[Path, ...], fmt: str, decimals: int, extra: bool, per_class: bool,
            nodes: bool, out: Path | None, checkpoint: Path | None, data_path: Path | None,
            allow_overlap: bool, allow_different_items: bool) -> None:
    """Score prediction files (or folders of *.preds.jsonl) as a Table 2.

    Records are grouped into systems by their 'system' field and producer/settings
    (meta.source, meta.setup: runs of one name from different tools are different rows),
    then by 'run'; each system is one row with the mean ± sample std over its runs and n,
    the items each run scored. A system whose runs scored different items is refused
    unless --allow-different-items. P/R/F1 are support-weighted; an invalid (null)
    prediction counts as the most harmful wrong answer, and a Coverage column shows the
    share of valid answers when there are invalid ones. Records made by `predict` are
    checked against their checkpoint's training data (refused, or marked with
    --allow-overlap).
    """
    from ..data import load_examples
    from ..io import prepare_output_file
    from ..records import NOTE_OVERLAP, load_runs
    from ..scoring import score_runs
    from ..training import check_records_overlap

    if out is not None:
        prepare_output_file(out)  # before any reading
    systems = load_runs(runs, allow_different_items)
    examples = load_examples(data_path, require_label=False) if data_path else None
    shared = check_records_overlap(
        systems, checkpoint, examples, allow_overlap,
        warn=lambda text: click.echo(f"warning: {text}", err=True))
    scores = score_runs(systems, notes={name: [NOTE_OVERLAP] for name in shared})
    columns = TABLE2_COLUMNS + (EXTRA_COLUMNS if extra else ())
    parts = {"table": format_table(scores.rows, fmt, columns, decimals)}
    if per_class:
        parts["per_class"] = format_per_class(scores.systems, fmt, decimals)
    if nodes:
        from ..analysis.nodes import format_nodes

        parts["nodes"] = format_nodes(scores.systems, fmt, decimals)
    if fmt == "json" and len(parts) > 1:
        import json

        # One JSON document: {"table": [...], "per_class": ..., "nodes": [...]}.
        text = json.dumps({k: json.loads(v) for k, v in parts.items()}, ensure_ascii=False,
                          indent=2)
    else:
        text = "\n\n".join(parts.values())
    emit(text, out)
