from __future__ import annotations

import time
from pathlib import Path

import click

from ..tables import TABLE2_COLUMNS, format_per_class, format_table
from ..upstream import reproduce_scores
from .options import decimals_option, force_option, format_option


@click.command("reproduce")
@click.option("--upstream", type=click.Path(path_type=Path), required=True,
              help="The upstream checkout (DialogueSafety/ or its parent) or its .tar.xz.")
@format_option
@decimals_option
@click.option("--per-class", is_flag=True, help="Also print per-class tables.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write every run's prediction records under this folder (a rerun "
                   "replaces its own; any other non-empty folder is refused, see --force).")
@force_option
def command(upstream: Path, fmt: str, decimals: int, per_class: bool, out: Path | None,
            force: bool) -> None:
    """Recompute the paper's Table 2 from the released ChatGPT answers and predictions."""
    start = time.perf_counter()
    say = lambda name: click.echo(f"reading {name} …", err=True)
    if out is None:
        scores = reproduce_scores(upstream, progress=say)
    else:
        from ..io import atomic_directory, prepare_output_dir

        prepare_output_dir(out, command="reproduce", force=force)
        with atomic_directory(out, "reproduce") as tmp:
            scores = reproduce_scores(upstream, out_dir=tmp, progress=say)
    systems = scores.systems
    click.echo(format_table(scores.rows, fmt, TABLE2_COLUMNS, decimals))
    if per_class:
        click.echo("\n" + format_per_class(systems, fmt, decimals))
    unparsed = {s.system: s.n_invalid for s in systems if s.system.startswith("ChatGPT")}
    total = sum(len(s.runs) * s.n_items for s in systems if s.system.startswith("ChatGPT"))
    click.echo(f"\nLLM answers that do not parse with the paper's rule: "
               f"{sum(unparsed.values())} of {total}", err=True)
    click.echo(f"done in {time.perf_counter() - start:.2f} s", err=True)
    if out is not None:
        click.echo(f"prediction records written under {out}", err=True)
