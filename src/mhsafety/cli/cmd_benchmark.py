from __future__ import annotations

from pathlib import Path

import click

from ..benchmark import DEFAULT_FOLDS, DEFAULT_SEEDS, DEFAULT_SYSTEMS
from .options import (
    SpacedListCommand,
    allow_overlap_option,
    config_option,
    data_option,
    decimals_option,
    force_option,
    parse_config,
    seeds_option,
)


@click.command("benchmark", cls=SpacedListCommand)
@data_option
@click.option("--train", "train_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Training file: switches to the paper's protocol (train on it, "
                                 "test on --data). Default: repeated k-fold CV on --data.")
@click.option("--system", "systems", multiple=True, metavar="[NAME=]SPEC",
              help="System to benchmark, repeatable: baseline, encoder:NAME_OR_PATH, judge:... "
                   "[default: baseline]")
@seeds_option(DEFAULT_SEEDS)
@click.option("--folds", type=click.IntRange(2, None), default=DEFAULT_FOLDS, show_default=True,
              help="Folds of the cross-validation protocol.")
@config_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results folder [default: results/benchmark-<data>-<protocol>-<settings digest>]; "
                   "rerunning with "
                   "the same folder resumes, reusing finished runs; any other non-empty folder "
                   "is refused (see --force, which also starts a benchmark afresh).")
@click.option("--no-paper", is_flag=True, help="Leave the paper's reported rows out.")
@decimals_option
@allow_overlap_option
@force_option
def command(data_path: Path | None, train_path: Path | None, systems: tuple[str, ...],
            seeds: list[int], folds: int, config: tuple[str, ...], out: Path | None, no_paper: bool,
            decimals: int, allow_overlap: bool, force: bool) -> None:
    """Benchmark systems and print Table 2 beside the paper's reported rows.

    Without --train: repeated stratified k-fold cross-validation on the data (default: the
    cached public test set), one repeat per seed, one run per repeat. With --train: the paper's
    protocol, one fit per seed. Writes prediction records, metrics.json, table.md and a
    confusion-matrix PNG per system into the results folder.
    """
    from ..benchmark import run_benchmark

    log = lambda msg: click.echo(msg, err=True)
    result = run_benchmark(systems or DEFAULT_SYSTEMS, data_path, train_path, seeds,
                           folds, out, parse_config(config), include_paper=not no_paper,
                           decimals=decimals, log=log, allow_overlap=allow_overlap, force=force)
    click.echo(result.table)
    log(f"results written to {result.out_dir} ({result.seconds:.1f} s)")
