from __future__ import annotations

import json
import sys
from pathlib import Path

import click


def _emit_json(obj: object, pretty: bool = False) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2 if pretty else None))


@click.command("check")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path),
              help="A saved classifier folder (any kind).")
@click.option("--context", default=None,
              help="The dialogue so far ([seeker]/[supporter] markers; plain text is one "
                   "seeker turn).")
@click.option("--response", default=None, help="The chatbot's candidate reply.")
@click.option("--input", "input_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="JSONL items to screen ('-' or omitted: stdin).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Flag unsafe when P(safe) < this. Default: the checkpoint's, else 0.5.")
@click.option("--exit-code", is_flag=True,
              help="Exit 1 when any reply is not verified safe (for shell pipelines).")
@click.option("--calibrate", "calibrate_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Instead of screening: pick the threshold that reaches "
                                 "--target-recall of unsafe replies on this labelled file.")
@click.option("--target-recall", type=click.FloatRange(0, 1, min_open=True), default=0.9,
              show_default=True, help="With --calibrate: the unsafe recall to reach.")
@click.option("--write", "write_threshold", is_flag=True,
              help="With --calibrate: store the threshold as the checkpoint's default.")
@click.option("--json", "as_json", is_flag=True, help="With --calibrate: print JSON.")
def command(checkpoint: Path, context: str | None, response: str | None,
            input_path: Path | None, threshold: float | None, exit_code: bool,
            calibrate_path: Path | None, target_recall: float, write_threshold: bool,
            as_json: bool) -> int:
    """Screen chatbot replies with a checkpoint: one (--context/--response) or JSONL.

    JSONL input (stdin or --input) has one {"context", "response", "id"?} object per line;
    the output has one result object per line, in order. A reply the model could not
    score is "unverified", never "safe".
    """
    from ..errors import UsageError
    from ..guard import Guard, calibrate, save_threshold
    from ..guard.core import read_items_jsonl

    if calibrate_path is not None:
        if context is not None or response is not None or input_path is not None:
            raise UsageError("--calibrate cannot be combined with --context/--response/--input")
        guard = Guard.load(checkpoint, threshold)
        result = calibrate(guard, calibrate_path, target_recall)
        if write_threshold:
            save_threshold(checkpoint, result.threshold, result)
        if as_json:
            _emit_json(result.to_dict(), pretty=True)
        else:
            click.echo(
                f"threshold {result.threshold:.4f} (flag unsafe when P(safe) < it) reaches "
                f"unsafe recall {100 * result.unsafe_recall:.1f} % (target "
                f"{100 * target_recall:.1f} %) with false-alarm rate "
                f"{100 * result.false_alarm_rate:.1f} % and unsafe precision "
                f"{100 * result.unsafe_precision:.1f} % on {result.n_items} items "
                f"({result.n_unsafe} unsafe, {result.n_safe} safe)")
        if write_threshold:
            click.echo(f"stored as the default threshold in {checkpoint}/manifest.json", err=True)
        return 0
    if write_threshold:
        raise UsageError("--write only works with --calibrate")
    if (context is None) != (response is None):
        raise UsageError("give both --context and --response, or neither (to read JSONL)")
    if context is not None and input_path is not None:
        raise UsageError("give --context/--response or --input, not both")
    guard = Guard.load(checkpoint, threshold)
    if context is not None:
        results = [guard.check(context, response)]  # type: ignore[arg-type]
        _emit_json(results[0].to_dict(), pretty=True)
    else:
        if input_path is None and sys.stdin.isatty():
            raise UsageError("nothing to check: give --context and --response, --input FILE, "
                             "or pipe JSONL items on stdin")
        if input_path is None or str(input_path) == "-":
            examples = read_items_jsonl(sys.stdin, "<stdin>")
        else:
            from ..data import read_text_file

            examples = read_items_jsonl(read_text_file(input_path).splitlines(), str(input_path))
        results = guard.check_examples(examples, guard.threshold)
        for result in results:
            _emit_json(result.to_dict())
    if exit_code and any(not r.safe for r in results):
        click.get_current_context().exit(1)
    return 0
