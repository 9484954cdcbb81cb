"""``mhsafety judge``: label items with an LLM over any OpenAI-compatible API.

The options are generated from :class:`~mhsafety.judge.settings.JudgeSettings` (defaults,
choices and help live there); only the ones the user gives are forwarded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..errors import UsageError
from ..judge.settings import JudgeSettings
from ..settings import click_options, fields_doc, given
from .options import allow_overlap_option, data_option

_DOC = {name: doc for name, _default, doc in fields_doc(JudgeSettings)}
_BY_HAND = ("model", "base_url", "headers", "extra_body")  # required, env or parsed values
# run_judge's own parameters as this command's flags (settings fields map themselves).
_RUN_FLAGS = {"train": "--train FILE", "batch_file_only": "--batch-file-only",
              "batch_results": "--batch-results", "headers": "--header"}


def _headers(values: tuple[str, ...]) -> dict[str, str] | None:
    if not values:
        return None
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--header expects NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def _is_judge_folder(folder: Path) -> bool:
    """A judge run folder written before folders carried the output marker."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(manifest, dict) and manifest.get("kind") == "mhsafety-judge-run"


def _extra_body(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--extra-body is not valid JSON ({exc.msg} at character {exc.pos})"
                         ) from None
    if not isinstance(value, dict):
        raise UsageError("--extra-body must be a JSON object, e.g. "
                         '\'{"chat_template_kwargs": {"enable_thinking": false}}\'')
    return value


@click.command("judge")
@data_option
@click.option("--model", required=True, help=_DOC["model"])
@click.option("--base-url", required=True, envvar="MHSAFETY_JUDGE_BASE_URL",
              help=_DOC["base_url"] + " (env: MHSAFETY_JUDGE_BASE_URL)")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder; rerunning with the same folder resumes.")
@click.option("--train", "train_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Labelled file to draw few-shot examples from. The judged "
                                 "item itself is never shown as its own example.")
@click.option("--header", "headers", multiple=True, metavar="NAME=VALUE",
              help=_DOC["headers"] + " Repeatable.")
@click.option("--extra-body", default=None, metavar="JSON", help=_DOC["extra_body"])
@click_options(JudgeSettings, exclude=_BY_HAND)
@click.option("--batch-file-only", is_flag=True,
              help="Only write OUT/batch/requests.jsonl (runs unchanged through "
                   "`vllm run-batch`); send nothing.")
@click.option("--batch-results", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Join a batch output file (e.g. from `vllm run-batch`) into the run.")
@allow_overlap_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(data_path: Path | None, out_dir: Path, train_path: Path | None,
            headers: tuple[str, ...], extra_body: str | None, batch_file_only: bool,
            batch_results: Path | None, allow_overlap: bool, quiet: bool,
            **options: Any) -> None:
    """Label every item with an LLM judge, zero- or few-shot, for several rounds.

    Writes prediction records per round to OUT/preds (score them with `mhsafety evaluate
    OUT`), a resumable log per round, a manifest and a summary. The API key is read from
    the environment (--api-key-env), never from the command line.
    """
    from ..data import load_examples, resolve_data
    from ..io import prepare_output_dir
    from ..judge.runner import format_batch_file, format_summary, run_judge
    from ..settings import SettingsError, build_from_options, in_flags

    values = given({**options, "headers": _headers(headers), "extra_body": _extra_body(extra_body)})
    # Checked before any file is read; errors name this command's flags.
    settings = build_from_options(JudgeSettings, values, "mhsafety judge",
                                  flags={"headers": "--header"})
    data = resolve_data(data_path)
    examples = load_examples(data)
    train = load_examples(train_path) if train_path is not None else None
    # Resumes its own folder; a folder of other files is refused (no --force: a judge
    # folder's log holds paid answers).
    prepare_output_dir(out_dir, command="judge", create=True, force_flag=None,
                       recognise=_is_judge_folder)
    try:
        result = run_judge(examples, out_dir, settings, train=train, data_source=str(data),
                           train_source=str(train_path) if train_path else None,
                           show_progress=not quiet,
                           on_message=lambda m: click.echo(m, err=True),
                           batch_file_only=batch_file_only, batch_results=batch_results,
                           allow_overlap=allow_overlap)
    except SettingsError as exc:  # the library names parameters; say them as flags
        raise in_flags(exc, JudgeSettings, flags=_RUN_FLAGS) from None
    if batch_file_only:
        click.echo(format_batch_file(result.summary, settings.model))
        return
    click.echo(format_summary(result.summary))
    click.echo(f"wrote {out_dir}/preds (score with: mhsafety evaluate {out_dir})", err=True)
    if not result.summary["answered"]:
        # Nothing usable came back: a run that answered nothing must not look like success.
        click.echo(f"error: no item was answered ({result.summary['failed']} failed; reasons "
                   f"in {out_dir}/preds); rerun the same command to retry them", err=True)
        raise click.exceptions.Exit(1)
