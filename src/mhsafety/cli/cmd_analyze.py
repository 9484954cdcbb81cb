from __future__ import annotations

import json
from pathlib import Path

import click

from .options import bootstrap_options, emit, force_option


@click.command("analyze")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--data", "data_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="The dataset the runs were made on: items every system "
              "misses are shown with their response.")
@bootstrap_options
@click.option("--top", "top_k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Confusion pairs kept per system.")
@click.option("--json", "as_json", is_flag=True, help="Print the full analysis as JSON.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Also save the figures (PNG and SVG) in this folder (a "
              "rerun replaces its own; any other non-empty folder is refused, see --force).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the analysis to this file instead of printing it.")
@force_option
def command(runs: tuple[Path, ...], data_path: Path | None, resamples: int, seed: int,
            level: float, top_k: int, as_json: bool, plots_dir: Path | None,
            out: Path | None, force: bool) -> None:
    """Confidence intervals, paired tests, per-node scores and error analysis of prediction files.

    Systems with several runs are bootstrapped over runs and items; McNemar compares
    majority votes over runs.

    RUNS are *.preds.jsonl files or folders of them (e.g. the output of `mhsafety reproduce
    --out` or `mhsafety benchmark`); records are grouped into systems and runs and joined
    by item id.
    """
    from ..analysis import analyze, format_analysis
    from ..io import atomic_directory, prepare_output_dir, prepare_output_file
    from ..progress import step_printer

    # Outputs are checked before the analysis (seconds to minutes) starts.
    if out is not None:
        prepare_output_file(out)
    if plots_dir is not None:
        prepare_output_dir(plots_dir, command="analyze", force=force, flag="--plots")
    result = analyze(runs, resamples=resamples, seed=seed, level=level, data=data_path,
                     top_k=top_k, on_progress=step_printer("analyze"))
    if plots_dir is not None:
        from ..report.figures import save_all_figures

        with atomic_directory(plots_dir, "analyze") as tmp:
            written = save_all_figures(result, tmp)
        click.echo(f"wrote {len(written)} figure files under {plots_dir}", err=True)
    text = (json.dumps(result.to_dict(), ensure_ascii=False, indent=2) if as_json
            else format_analysis(result))
    emit(text, out)
