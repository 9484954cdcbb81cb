from __future__ import annotations

import time
from pathlib import Path

import click

from .options import bootstrap_options, force_option, invoked_command

REPORT_TITLE = "Dialogue safety: analysis report"


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Report folder to write (index.html, analysis.json, "
              "figures/); replaced only if an earlier report made it (see --force).")
@click.option("--data", "data_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="The dataset the runs were made on: its hash is recorded "
              "and missed items are shown with their text.")
@bootstrap_options
@click.option("--title", default=REPORT_TITLE, show_default=True,
              help="Title of the page.")
@force_option
def command(runs: tuple[Path, ...], out_dir: Path, data_path: Path | None, resamples: int,
            seed: int, level: float, title: str, force: bool) -> None:
    """Write one self-contained HTML report over prediction files or folders of them.

    The page (OUT/index.html) embeds its tables and figures and needs no server and no
    network: scores with bootstrap intervals (runs and items resampled for systems with
    several runs), significance of every pair of systems, per-class and per-node results,
    error analysis, the taxonomy and the provenance of each run.

    Given one chatbot audit instead (a `mhsafety probe` results folder, or an inspect log of
    the chatbot_safety task), it writes the audit's report: unsafe rates observed and
    corrected, comparisons, categories, risk levels, crisis handling, the grader's validity,
    the worst replies behind a content note, tokens and provenance.
    """
    from ..probe.report import TITLE, is_probe_results, write_probe_report
    from ..report.html import build_report
    from ..report.provenance import command_line

    start = time.perf_counter()
    if len(runs) == 1 and is_probe_results(runs[0]):
        audit = write_probe_report(runs[0], out_dir, force=force,
                                   title=TITLE if title == REPORT_TITLE else title,
                                   command=command_line(invoked_command()),
                                   resamples=resamples, seed=seed, level=level)
        n = len(audit.results.summary["targets"])
        click.echo(f"wrote {audit.html} (audit of {n} target{'' if n == 1 else 's'}, "
                   f"{len(audit.figures)} figure files) in {time.perf_counter() - start:.1f} s",
                   err=True)
        return
    result = build_report(runs, out_dir, data=data_path, resamples=resamples, seed=seed,
                          level=level, command=command_line(invoked_command()),
                          title=title, force=force, show_progress=True)
    n = len(result.analysis.systems)
    click.echo(f"wrote {result.html} ({n} system{'' if n == 1 else 's'}, "
               f"{len(result.figures)} figure files) in {time.perf_counter() - start:.1f} s",
               err=True)
