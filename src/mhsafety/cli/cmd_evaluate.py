from __future__ import annotations

from pathlib import Path

import click

from ..tables import EXTRA_COLUMNS, TABLE2_COLUMNS, format_per_class, format_table
from .options import decimals_option, emit, format_option


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
def command(runs: tuple[Path, ...], fmt: str, decimals: int, extra: bool, per_class: bool,
            nodes: bool, out: Path | None) -> None:
    """Score prediction files (or folders of *.preds.jsonl) as a Table 2.

    Records are grouped by their 'system' and 'run' fields; each system is one row with the
    mean ± sample std over its runs. P/R/F1 are support-weighted; an invalid (null)
    prediction counts as the most harmful wrong answer, and a Coverage column shows the
    share of valid answers when there are invalid ones.
    """
    from ..io import prepare_output_file
    from ..scoring import score_paths

    if out is not None:
        prepare_output_file(out)
    scores = score_paths(runs)
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
