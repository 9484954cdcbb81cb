"""``mhsafety check``: screen replies with a guard, one subcommand per job.

``reply`` (one reply), ``items`` (a file or stdin of items), ``dialogues`` (whole
conversations), ``calibrate`` (pick the threshold on labelled data) and ``bands`` (what a
cascade does for each band). Every subcommand's guard options come from ``GuardConfig``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..guard.calibrate import DEFAULT_FOLDS, DEFAULT_TARGET_RECALL
from ..guard.config import GuardConfig
from ..settings import click_options, given

_FILE = click.Path(dir_okay=False, path_type=Path)
_CASCADE = ("escalate_to", "band", "escalate_threshold")
_EXIT_CODE = click.option("--exit-code", is_flag=True,
                          help="Exit 1 when any reply is not verified safe (for pipelines).")


def _emit_json(obj: object, pretty: bool = False) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2 if pretty else None))


def _guard(options: dict[str, Any], **changes: Any) -> Any:
    """The guard the command's ``GuardConfig`` options describe (``changes`` applied)."""
    from ..guard import Guard, guard_config

    return Guard.from_config(guard_config({**given(options, GuardConfig), **changes}))


def _exit_if(flag: bool, failed: bool) -> None:
    if flag and failed:
        click.get_current_context().exit(1)


@click.group("check")
def command() -> None:
    """Screen chatbot replies with a guard (any checkpoint, a rule tier, an optional
    cascade). A reply the guard could not verify is "unverified", never "safe"; every
    result names the deciding tier, the node path and the policy's action."""


@command.command("reply")
@click_options(GuardConfig)
@click.option("--context", required=True,
              help="The dialogue so far ([seeker]/[supporter] markers; plain text is one "
                   "seeker turn).")
@click.option("--response", required=True, help="The chatbot's candidate reply.")
@_EXIT_CODE
def reply(context: str, response: str, exit_code: bool, **options: Any) -> None:
    """Screen one reply; prints one JSON result."""
    result = _guard(options).check(context, response)
    _emit_json(result.to_dict(), pretty=True)
    _exit_if(exit_code, not result.safe)


@command.command("items")
@click_options(GuardConfig)
@click.option("--input", "input_path", type=_FILE, default=None,
              help="Items to screen, JSON list or JSONL as every data file ('-' or "
                   "omitted: stdin).")
@_EXIT_CODE
def items(input_path: Path | None, exit_code: bool, **options: Any) -> None:
    """Screen items ({"context", "response", "id"?}; ids default to the 0-based index, as in
    `predict`); prints one JSON result per line, in order."""
    examples = _read_items(input_path)
    results = _guard(options).check_examples(examples)
    for result in results:
        _emit_json(result.to_dict())
    _exit_if(exit_code, any(not r.safe for r in results))


@command.command("dialogues")
@click_options(GuardConfig)
@click.argument("path", type=_FILE)
@_EXIT_CODE
def dialogues(path: Path, exit_code: bool, **options: Any) -> None:
    """Audit whole conversations ({id?, turns}) in PATH: every supporter turn against the
    turns before it; prints one JSON report (exit 1 with --exit-code when any is flagged)."""
    from ..guard import audit_dialogues

    report = audit_dialogues(_guard(options), path)
    _emit_json(report, pretty=True)
    _exit_if(exit_code, bool(report["summary"]["conversations_flagged"]))


_ALLOW_OVERLAP = click.option(
    "--allow-overlap", is_flag=True,
    help="Accept a file that shares items with the checkpoint's training data (the figures "
         "are then marked optimistic).")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@command.command("calibrate")
@click_options(GuardConfig, exclude=_CASCADE)
@click.argument("path", type=_FILE)
@click.option("--target-recall", type=click.FloatRange(0, 1, min_open=True),
              default=DEFAULT_TARGET_RECALL, show_default=True,
              help="The unsafe recall to reach.")
@click.option("--folds", type=click.IntRange(2), default=DEFAULT_FOLDS, show_default=True,
              help="Folds for the out-of-sample estimates.")
@_ALLOW_OVERLAP
@click.option("--write", "write_threshold", is_flag=True,
              help="Store the threshold as the checkpoint's default.")
@_JSON
def calibrate(path: Path, target_recall: float, folds: int, allow_overlap: bool,
              write_threshold: bool, as_json: bool, **options: Any) -> None:
    """Pick the threshold that reaches --target-recall of unsafe replies on the labelled
    file PATH, with cross-fitted out-of-sample recall and false-alarm rates."""
    from ..guard import calibrate as run
    from ..guard import save_threshold

    result = run(_guard(options), path, target_recall, folds=folds,
                 allow_overlap=allow_overlap)
    if write_threshold:
        save_threshold(options["checkpoint"], result.threshold, result)
    if as_json:
        _emit_json(result.to_dict(), pretty=True)
    else:
        click.echo(result.summary())
    if write_threshold:
        click.echo(f"stored as the default threshold in {options['checkpoint']}/manifest.json",
                   err=True)


@command.command("bands")
@click_options(GuardConfig, exclude=("band",))
@click.argument("path", type=_FILE)
@click.option("--bands", default=None, metavar="'L,H L,H ...'",
              help="The bands to report. [default: every low of 0.1-0.4 with every high of "
                   "0.5-0.9]")
@_ALLOW_OVERLAP
@_JSON
def bands(path: Path, bands: str | None, allow_overlap: bool, as_json: bool,
          **options: Any) -> None:
    """What a cascade (--checkpoint first, --escalate-to second) does on the labelled file
    PATH for each band: unsafe recall, false-alarm rate, share escalated, latency."""
    from ..errors import UsageError
    from ..guard import ModelTier, calibrate_cascade

    if options.get("escalate_to") is None:
        raise UsageError("bands needs the cascade's second checkpoint (--escalate-to DIR)")
    second = ModelTier.load(options["escalate_to"], options.get("escalate_threshold"),
                            runtime=options.get("runtime"))
    guard = _guard(options, escalate_to=None, escalate_threshold=None)
    report = calibrate_cascade(guard, second, path,
                               None if bands is None else bands.replace(";", " ").split(),
                               allow_overlap=allow_overlap)
    if as_json:
        _emit_json(report.to_dict(), pretty=True)
        return
    click.echo(f"{report.n_items} items ({report.n_unsafe} unsafe, {report.n_safe} safe), "
               f"{report.rule_hits} decided by rules; first tier "
               f"{report.first_latency_ms:.1f} ms, second {report.second_latency_ms:.1f} ms "
               f"per single-item call; {report.protocol}")
    click.echo(report.table())


def _read_items(input_path: Path | None) -> list[Any]:
    """Items from a file or stdin through the data module's one reader."""
    from ..data import load_examples, read_items_text
    from ..errors import UsageError

    if input_path is not None and str(input_path) != "-":
        return load_examples(input_path, require_label=False)
    if sys.stdin.isatty():
        raise UsageError("nothing to check: give --input FILE or pipe JSON/JSONL items on "
                         "stdin (one reply: `mhsafety check reply`)")
    return read_items_text(sys.stdin.read(), "<stdin>")
