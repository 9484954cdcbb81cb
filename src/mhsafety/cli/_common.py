"""Options and helpers shared by the commands."""

from __future__ import annotations

from pathlib import Path

import click

from ..tables import FORMATS

data_option = click.option(
    "--data", "data_path", type=click.Path(path_type=Path), default=None,
    help="Dataset: a JSON list, JSONL or parquet file, or a folder from `mhsafety data "
         "export`. Default: the cached public test set.",
)
format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="markdown", show_default=True,
    help="Table format.",
)
decimals_option = click.option(
    "--decimals", type=click.IntRange(0, 6), default=2, show_default=True,
    help="Decimals of the percentages.",
)


def bootstrap_options(func):
    """--resamples, --seed and --level, shared by analyze and report."""
    func = click.option("--level", type=click.FloatRange(0.5, 0.999), default=0.95,
                        show_default=True, help="Confidence level of the intervals.")(func)
    func = click.option("--seed", type=int, default=0, show_default=True,
                        help="Bootstrap seed.")(func)
    return click.option("--resamples", type=click.IntRange(min=100), default=10_000,
                        show_default=True, help="Bootstrap resamples of the items.")(func)


def emit(text: str, out: Path | None = None) -> None:
    """Print ``text``, or write it atomically to ``out`` when given."""
    if out is None:
        click.echo(text)
        return
    from ..io import write_text

    write_text(out, text if text.endswith("\n") else text + "\n")
    click.echo(f"wrote {out}", err=True)
