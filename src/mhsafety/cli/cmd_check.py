from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..classifiers.encoder_config import EncoderConfig
from ..guard.calibrate import DEFAULT_FOLDS, DEFAULT_TARGET_RECALL
from ..guard.core import DEFAULT_THRESHOLD
from ..settings import click_options

_FILE = click.Path(dir_okay=False, path_type=Path)


def _emit_json(obj: object, pretty: bool = False) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2 if pretty else None))


def guard_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options that build a guard's tiers (shared by ``check`` and ``serve``)."""
    options = [
        click.option("--checkpoint", required=True, type=click.Path(path_type=Path),
                     help="A saved classifier folder (any kind)."),
        click.option("--threshold", type=click.FloatRange(0, 1), default=None,
                     help=f"Flag unsafe when P(safe) < this. Default: the checkpoint's, "
                          f"else {DEFAULT_THRESHOLD}."),
        click.option("--rules", "rules_file", type=_FILE, default=None,
                     help="A rule file (JSON/YAML) added to the default rules (same id "
                          "replaces)."),
        click.option("--no-default-rules", is_flag=True,
                     help="Use only the rules of --rules, not the shipped ones."),
        click.option("--no-rules", is_flag=True, help="Turn the rule tier off."),
        click.option("--policy", "policy_file", type=_FILE, default=None,
                     help="A policy file (JSON/YAML) mapping categories to allow, block, "
                          "regenerate or handover."),
        click.option("--escalate-to", type=click.Path(path_type=Path), default=None,
                     help="A second checkpoint that decides replies inside --band."),
        click.option("--band", default=None, metavar="LOW,HIGH",
                     help="With --escalate-to: escalate when the first P(safe) is in "
                          "[LOW, HIGH]."),
        click.option("--escalate-threshold", type=click.FloatRange(0, 1), default=None,
                     help=f"The second checkpoint's threshold. Default: its own, else "
                          f"{DEFAULT_THRESHOLD}."),
    ]
    for option in reversed(options):
        func = option(func)
    # Encoder tiers only: the prediction runtime, with EncoderConfig's doc and default.
    return click_options(EncoderConfig, "runtime")(func)


def guard_kwargs(rules_file: Path | None, no_default_rules: bool, no_rules: bool,
                 policy_file: Path | None, escalate_to: Path | None, band: str | None,
                 escalate_threshold: float | None, runtime: str | None = None
                 ) -> dict[str, Any]:
    """The options above as :func:`mhsafety.guard.core.build_guard` keywords (JSON-able)."""
    return {"runtime": runtime, "rules": None if rules_file is None else str(rules_file),
            "default_rules_on": not no_default_rules, "use_rules": not no_rules,
            "policy": None if policy_file is None else str(policy_file),
            "escalate_to": None if escalate_to is None else str(escalate_to), "band": band,
            "escalate_threshold": escalate_threshold}


@click.command("check")
@guard_options
@click.option("--context", default=None,
              help="The dialogue so far ([seeker]/[supporter] markers; plain text is one "
                   "seeker turn).")
@click.option("--response", default=None, help="The chatbot's candidate reply.")
@click.option("--input", "input_path", type=_FILE, default=None,
              help="Items to screen, JSON list or JSONL as every data file ('-' or "
                   "omitted: stdin).")
@click.option("--dialogues", "dialogues_path", type=_FILE, default=None,
              help="Audit whole conversations ({id?, turns}): every supporter turn against "
                   "the turns before it; prints one JSON report.")
@click.option("--exit-code", is_flag=True,
              help="Exit 1 when any reply is not verified safe (for shell pipelines).")
@click.option("--calibrate", "calibrate_path", type=_FILE, default=None,
              help="Instead of screening: pick the threshold that reaches --target-recall "
                   "of unsafe replies on this labelled file (with --escalate-to: report "
                   "every band of --bands instead).")
@click.option("--target-recall", type=click.FloatRange(0, 1, min_open=True), default=None,
              help=f"With --calibrate: the unsafe recall to reach. "
                   f"[default: {DEFAULT_TARGET_RECALL}]")
@click.option("--folds", type=click.IntRange(2), default=None,
              help=f"With --calibrate: folds for the out-of-sample estimates. "
                   f"[default: {DEFAULT_FOLDS}]")
@click.option("--bands", default=None, metavar="'L,H L,H ...'",
              help="With --calibrate and --escalate-to: the bands to report. "
                   "[default: every low of 0.1-0.4 with every high of 0.5-0.9]")
@click.option("--allow-overlap", is_flag=True,
              help="With --calibrate: accept a file that shares items with the "
                   "checkpoint's training data (the figures are then marked optimistic).")
@click.option("--write", "write_threshold", is_flag=True,
              help="With --calibrate: store the threshold as the checkpoint's default.")
@click.option("--json", "as_json", is_flag=True, help="With --calibrate: print JSON.")
def command(checkpoint: Path, threshold: float | None, context: str | None,
            response: str | None, input_path: Path | None, dialogues_path: Path | None,
            exit_code: bool, calibrate_path: Path | None, target_recall: float | None,
            folds: int | None, bands: str | None, allow_overlap: bool,
            write_threshold: bool, as_json: bool, **tier_options: Any) -> int:
    """Screen chatbot replies with a checkpoint: one (--context/--response), a file or stdin
    of items, or whole conversations (--dialogues).

    Items are read as every data file (JSON list or JSONL of {"context", "response",
    "id"?}; ids default to the 0-based index, as in `predict`); the output has one result
    object per line, in order. A reply the model could not score is "unverified", never
    "safe". Every result names the deciding tier, the node path and the policy's action.
    """
    from ..errors import UsageError
    from ..guard.core import build_guard

    options = guard_kwargs(**tier_options)
    sources = [name for name, value in (("--context/--response", context or response),
                                        ("--input", input_path),
                                        ("--dialogues", dialogues_path),
                                        ("--calibrate", calibrate_path)) if value]
    if len(sources) > 1:
        raise UsageError(f"give one of --context/--response, --input, --dialogues or "
                         f"--calibrate, not {' and '.join(sources)}")
    if calibrate_path is None:
        for flag, value in (("--write", write_threshold), ("--allow-overlap", allow_overlap),
                            ("--target-recall", target_recall), ("--folds", folds),
                            ("--bands", bands)):
            if value:
                raise UsageError(f"{flag} only works with --calibrate")
    if calibrate_path is not None:
        return _calibrate(checkpoint, threshold, options, calibrate_path, target_recall, folds,
                          bands, allow_overlap, write_threshold, as_json)
    if (context is None) != (response is None):
        raise UsageError("give both --context and --response, or neither (to read items)")
    guard = build_guard(checkpoint, threshold, **options)
    if dialogues_path is not None:
        from ..guard.dialogues import audit_dialogues

        report = audit_dialogues(guard, dialogues_path)
        _emit_json(report, pretty=True)
        flagged = report["summary"]["conversations_flagged"]
        if exit_code and flagged:
            click.get_current_context().exit(1)
        return 0
    if context is not None:
        results = [guard.check(context, response)]  # type: ignore[arg-type]
        _emit_json(results[0].to_dict(), pretty=True)
    else:
        examples = _read_items(input_path)
        results = guard.check_examples(examples)
        for result in results:
            _emit_json(result.to_dict())
    if exit_code and any(not r.safe for r in results):
        click.get_current_context().exit(1)
    return 0


def _read_items(input_path: Path | None) -> list[Any]:
    """Items from a file or stdin through the data module's one reader."""
    from ..data import load_examples, read_items_text
    from ..errors import UsageError

    if input_path is not None and str(input_path) != "-":
        return load_examples(input_path, require_label=False)
    if sys.stdin.isatty():
        raise UsageError("nothing to check: give --context and --response, --input FILE, "
                         "or pipe JSON/JSONL items on stdin")
    return read_items_text(sys.stdin.read(), "<stdin>")


def _calibrate(checkpoint: Path, threshold: float | None, options: dict[str, Any],
               data: Path, target_recall: float | None, folds: int | None,
               bands: str | None, allow_overlap: bool, write_threshold: bool,
               as_json: bool) -> int:
    from ..errors import UsageError
    from ..guard.calibrate import calibrate, calibrate_cascade, save_threshold
    from ..guard.core import ModelTier, build_guard

    if options["escalate_to"] is not None:
        if write_threshold or target_recall is not None or folds is not None:
            raise UsageError("with --escalate-to, --calibrate reports bands; --write, "
                             "--target-recall and --folds are for a single checkpoint")
        second = ModelTier.load(options["escalate_to"], options["escalate_threshold"])
        guard = build_guard(checkpoint, threshold, **{**options, "escalate_to": None,
                                                      "band": None})
        report = calibrate_cascade(guard, second, data,
                                   None if bands is None else bands.replace(";", " ").split(),
                                   allow_overlap=allow_overlap)
        if as_json:
            _emit_json(report.to_dict(), pretty=True)
        else:
            click.echo(f"{report.n_items} items ({report.n_unsafe} unsafe, {report.n_safe} "
                       f"safe), {report.rule_hits} decided by rules; first tier "
                       f"{report.first_latency_ms:.1f} ms, second {report.second_latency_ms:.1f}"
                       f" ms per single-item call; {report.protocol}")
            click.echo(report.table())
        return 0
    if bands is not None:
        raise UsageError("--bands needs --escalate-to DIR (the cascade's second checkpoint)")
    guard = build_guard(checkpoint, threshold, **options)
    result = calibrate(guard, data, DEFAULT_TARGET_RECALL if target_recall is None
                       else target_recall, folds=DEFAULT_FOLDS if folds is None else folds,
                       allow_overlap=allow_overlap)
    if write_threshold:
        save_threshold(checkpoint, result.threshold, result)
    if as_json:
        _emit_json(result.to_dict(), pretty=True)
    else:
        click.echo(result.summary())
    if write_threshold:
        click.echo(f"stored as the default threshold in {checkpoint}/manifest.json", err=True)
    return 0
