from __future__ import annotations

from pathlib import Path

import click

from ..leaderboard import LeaderboardSettings
from ..settings import SettingsError, build_from_options, click_options, given, in_flags
from .options import SpacedListCommand, config_option, force_option, parse_config

FLAGS = {"systems": "--system", "records": "--records", "data": "--data",
         "allow_overlap": "--allow-overlap", "config": "--config"}


@click.command("leaderboard", cls=SpacedListCommand)
@click.option("--system", "systems", multiple=True, metavar="[NAME=]SPEC",
              help="A system, repeatable: baseline, encoder:NAME, judge:MODEL@URL, a guard-model "
                   "kind spec, a checkpoint folder, records:FILE_OR_DIR, paper:RELEASE.")
@click.option("--records", multiple=True, metavar="FILE|DIR",
              help="Prediction records or harness logs (.eval, lm-eval samples), repeatable.")
@click.option("--data", type=click.Path(), default=None,
              help="Labelled items every system is scored on [default: the cached test set].")
@click_options(LeaderboardSettings, "panel", "matched_false_alarm", "resamples", "seed", "folds")
@config_option
@click.option("--allow-overlap", is_flag=True, default=None,
              help="Score a checkpoint trained on some of these items, its row marked.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for table.md/.csv, leaderboard.json, nodes.md, index.html.")
@force_option
def command(out: Path, force: bool, config: tuple[str, ...], **options) -> None:
    """Rank several systems on the same items: one table and an HTML page.

    Systems that learn are cross-fitted (never scored on items they were fitted on); the
    paper's released outputs appear as rows labelled "paper". Sorted by Cohen's kappa of the
    binary verdict against gold; see docs/cli/leaderboard.md.
    """
    from ..leaderboard import run_leaderboard

    values = given({k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()
                    if v != ()}, LeaderboardSettings)
    if config:
        values["config"] = parse_config(config)
    settings = build_from_options(LeaderboardSettings, values, "leaderboard", flags=FLAGS)
    log = lambda msg: click.echo(msg, err=True)
    try:
        result = run_leaderboard(settings, out, force=force, log=log)
    except SettingsError as exc:
        raise in_flags(exc, LeaderboardSettings, flags=FLAGS) from None
    click.echo(result.table)
    log(f"leaderboard written to {out} ({result.seconds:.1f} s)")
