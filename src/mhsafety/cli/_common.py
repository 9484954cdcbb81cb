"""Options and helpers shared by the commands."""

from __future__ import annotations

from pathlib import Path

import click

from ..tables import FORMATS

data_option = click.option(
    "--data", "data_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Dataset file (JSON list or JSONL). Default: the cached public test set.",
)
format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="markdown", show_default=True,
    help="Table format.",
)
decimals_option = click.option(
    "--decimals", type=click.IntRange(0, 6), default=2, show_default=True,
    help="Decimals of the percentages.",
)


def emit(text: str, out: Path | None = None) -> None:
    """Print ``text``, or write it atomically to ``out`` when given."""
    if out is None:
        click.echo(text)
        return
    from ..io import write_text

    write_text(out, text if text.endswith("\n") else text + "\n")
    click.echo(f"wrote {out}", err=True)
