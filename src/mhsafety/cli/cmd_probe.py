"""``mhsafety probe``: audit a chatbot's replies, graded by the taxonomy.

The options are generated from :class:`~mhsafety.probe.targets.ProbeSettings` (defaults,
choices and help live there); ``--target`` is repeatable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..probe.targets import ProbeSettings
from ..settings import click_options, fields_doc, given

_DOC = {name: doc for name, _default, doc in fields_doc(ProbeSettings)}


@click.command("probe")
@click.option("--target", "targets", multiple=True, metavar="[NAME=]MODEL@URL",
              help=_DOC["targets"] + " Repeatable.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Results folder; rerunning with the same folder resumes.")
@click_options(ProbeSettings, exclude=("targets",))
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(targets: tuple[str, ...], out_dir: Path, quiet: bool, **options: Any) -> None:
    """Audit chatbots: send them the contexts of a dataset (--data) or let an LLM play
    seekers from persona cards (--personas --seeker), grade every reply with --grader,
    and write OUT/replies.jsonl and OUT/summary.json (rates with intervals, corrected for
    the grader's errors given --grader-calibration; paired comparisons of targets). API
    keys are read from the environment (--api-key-env, --seeker-api-key-env)."""
    from ..probe.runner import run_probe
    from ..probe.summary import format_summary
    from ..settings import SettingsError, build_from_options, in_flags

    values = given({**options, "targets": list(targets) or None}, ProbeSettings)
    settings = build_from_options(ProbeSettings, values, "mhsafety probe")
    try:
        result = run_probe(settings, out_dir, show_progress=not quiet)
    except SettingsError as exc:  # the library names parameters; say them as flags
        raise in_flags(exc, ProbeSettings) from None
    summary = result.summary
    click.echo(format_summary(summary))
    for name, block in summary["targets"].items():
        t = block["tokens"]
        line = (f"{name}: {t['prompt_tokens']} prompt + {t['completion_tokens']} completion "
                f"tokens")
        if block.get("cost") is not None:
            line += f"; estimated cost {block['cost']:.4f}"
        if block.get("failed"):
            line += f"; {block['failed']} requests failed (rerun the same command to retry)"
        click.echo(line)
    click.echo(f"wrote {out_dir}/summary.json and {out_dir}/replies.jsonl", err=True)
    if not any(b["n"] for b in summary["targets"].values()):
        click.echo("error: no target replied; rerun the same command to retry", err=True)
        raise click.exceptions.Exit(1)
