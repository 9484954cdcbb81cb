from __future__ import annotations

from pathlib import Path

import click

from ..evaluate import evaluate_paths
from ..tables import (
    EXTRA_COLUMNS,
    TABLE2_COLUMNS,
    format_per_class,
    format_table,
    rows_from_systems,
)
from .options import decimals_option, emit, format_option


@click.command("evaluate")
@click.argument("runs", nargs=-1, required=True,
                type=click.Path(exists=False, path_type=Path))
@format_option
@decimals_option
@click.option("--extra", is_flag=True, help="Add macro-F1 and unsafe recall columns.")
@click.option("--per-class", is_flag=True, help="Also print per-class tables.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the table to this file instead of printing it.")
def command(runs: tuple[Path, ...], fmt: str, decimals: int, extra: bool, per_class: bool,
            out: Path | None) -> None:
    """Score prediction files (or folders of *.preds.jsonl) as a Table 2.

    Records are grouped by their 'system' and 'run' fields; each system is one row with the
    mean ± sample std over its runs. Invalid (null) predictions count as wrong.
    """
    systems = evaluate_paths(runs)
    columns = TABLE2_COLUMNS + (EXTRA_COLUMNS if extra else ())
    text = format_table(rows_from_systems(systems), fmt, columns, decimals)
    if per_class:
        text += "\n\n" + format_per_class(systems, fmt, decimals)
    emit(text, out)
