"""Options shared by several commands: data, table format, seeds, KEY=VALUE settings,
bootstrap settings, the encoder options of train / predict (generated from EncoderConfig),
and writing a command's text output.

Nothing heavy is imported here; every command file imports from this one module.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ..classifiers.encoder_config import EncoderConfig
from ..errors import UsageError
from ..settings import click_options, fields_doc, given
from ..tables import DEFAULT_DECIMALS, FORMATS

data_option = click.option(
    "--data", "data_path", type=click.Path(path_type=Path), default=None,
    help="Dataset: a JSON list, JSONL or parquet file, or a folder from `mhsafety data "
         "export`. Default: the cached public test set.",
)
format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="markdown", show_default=True,
    help="Table format.",
)
decimals_option = click.option(
    "--decimals", type=click.IntRange(0, 6), default=DEFAULT_DECIMALS, show_default=True,
    help="Decimals of the percentages.",
)
allow_overlap_option = click.option(
    "--allow-overlap", is_flag=True,
    help="Run even when the training (or example) items share items with the scored ones; "
         "every table row of the run is then marked so.",
)
force_option = click.option(
    "--force", is_flag=True,
    help="Replace the output folder even when this command did not write it (what it holds "
         "is lost). Without it such a folder is refused.",
)


# --------------------------------------------------------------------------- seeds


class IntList(click.ParamType):
    """A list of integers written ``42,43,44`` (or, with :class:`SpacedListCommand`,
    ``42 43 44``)."""

    name = "ints"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> list[int]:
        if isinstance(value, (list, tuple)):
            return [int(v) for v in value]
        flag = param.opts[0] if param is not None and param.opts else "the value"
        # A UsageError (not click's) keeps the project's one-line "mhsafety: error:" form.
        try:
            out = [int(part) for part in str(value).replace(",", " ").split()]
        except ValueError:
            raise UsageError(f"{flag} must be integers (e.g. 42,43 or 42 43), "
                             f"got {value!r}") from None
        if not out:
            raise UsageError(f"{flag} is empty")
        return out


class SpacedListCommand(click.Command):
    """A command whose :class:`IntList` options also take space-separated values.

    Seeds are commonly written ``--seeds 42 43 44`` (as in the paper's scripts); the integer
    tokens after such an option are joined into its value before click parses the line.
    The commands using this take no positional arguments, so nothing is ambiguous.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        names = {name for p in self.params if isinstance(p, click.Option)
                 and isinstance(p.type, IntList) for name in p.opts}
        out: list[str] = []
        i = 0
        while i < len(args):
            token = args[i]
            name, eq, value = token.partition("=")
            if token in names and i + 1 < len(args):
                values, i = [args[i + 1]], i + 2
            elif eq and name in names:
                values, i = [value], i + 1
            else:
                out.append(token)
                i += 1
                continue
            while i < len(args) and args[i].isdigit():
                values.append(args[i])
                i += 1
            out += [name if eq else token, ",".join(values)]
        return super().parse_args(ctx, out)


def seeds_option(default: Sequence[int]):
    """``--seeds``: one run (or checkpoint) per seed; use with ``cls=SpacedListCommand``."""
    return click.option("--seeds", type=IntList(), default=",".join(map(str, default)),
                        show_default=True,
                        help="Seeds, one run (or checkpoint) per seed: '42,43,44' or '42 43 44'.")


# --------------------------------------------------------------------------- KEY=VALUE settings

config_option = click.option(
    "--config", multiple=True, metavar="KEY=VALUE",
    help="A classifier setting (repeatable), checked against the classifier's settings; VALUE "
         "is read as JSON if it parses, else as text, e.g. --config C=2 or --config "
         "c_grid=[1,4]. In benchmark, SYSTEM.KEY=VALUE sets it for one system only (SYSTEM: "
         "its name or its kind, e.g. encoder.epochs=1).",
)


def parse_config(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as a dict; values parsed as JSON when they parse."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--config expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


# --------------------------------------------------------------------------- bootstrap


def bootstrap_options(func):
    """--resamples, --seed and --level, shared by analyze and report."""
    from ..analysis.stats import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED

    func = click.option("--level", type=click.FloatRange(0.5, 0.999), default=DEFAULT_LEVEL,
                        show_default=True, help="Confidence level of the intervals.")(func)
    func = click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True,
                        help="Bootstrap seed.")(func)
    return click.option("--resamples", type=click.IntRange(min=100), default=DEFAULT_RESAMPLES,
                        show_default=True, help="Bootstrap resamples of the items.")(func)


# --------------------------------------------------------------------------- output


def invoked_command() -> list[str]:
    """The words of the running command line (``mhsafety report ...``), as given."""
    from . import _STATE

    return list(_STATE["argv"])  # type: ignore[call-overload]


def emit(text: str, out: Path | None = None) -> None:
    """Print ``text``, or write it atomically to ``out`` when given."""
    if out is None:
        click.echo(text)
        return
    from ..io import write_text

    write_text(out, text if text.endswith("\n") else text + "\n")
    click.echo(f"wrote {out}", err=True)


# --------------------------------------------------------------------------- encoders
# Options that only fine-tuned encoders take, generated from EncoderConfig (light: no torch),
# so their help shows its defaults. Each defaults to None ("not given"): only what the user
# set reaches the classifier's config.

ENCODER_TRAIN_KEYS = ("head", "max_length", "epochs", "batch_size", "gradient_accumulation",
                      "learning_rate", "weight_decay", "warmup_ratio", "class_weights",
                      "select_metric", "patience", "group_by_length", "precision", "device",
                      "max_steps", "work_dir")
# predict's --batch-size is the prediction batch (eval_batch_size), written by hand below.
ENCODER_PREDICT_KEYS = ("precision", "device", "runtime")


def _help(name: str) -> str:
    doc, default = next((d, v) for n, v, d in fields_doc(EncoderConfig) if n == name)
    return f"{doc} [default: {default}]"


def encoder_train_options(func):
    func = click.option(
        "--select-on-test", "select_on_test", default=None,
        type=click.Path(dir_okay=False, path_type=Path),
        help="The paper's leaky protocol: pick the epoch by its score on this TEST "
             "file (instead of --dev / --dev-ratio). Such runs are marked 'epoch picked on "
             "the test set' in the checkpoint, records and tables.")(func)
    return click_options(EncoderConfig, *ENCODER_TRAIN_KEYS)(func)


def encoder_predict_options(func):
    func = click_options(EncoderConfig, *ENCODER_PREDICT_KEYS)(func)
    return click.option("--batch-size", "eval_batch_size", type=int, default=None,
                        help=_help("eval_batch_size"))(func)


def encoder_config(values: dict[str, Any], spec: str) -> dict[str, Any]:
    """The encoder settings the user gave, as classifier config; an error when given for a
    system that is not an encoder. ``select_on_test`` stays a Path here."""
    chosen = given(values)
    if chosen and not spec.startswith("encoder:"):
        flags = ", ".join("--" + k.replace("_", "-") for k in chosen)
        raise UsageError(f"{flags} only apply to fine-tuned encoders, not to {spec!r}")
    return chosen


def split_train_selection(config: dict[str, Any], out: Path, dev_path: Path | None,
                          dev_ratio: float | None) -> tuple[dict[str, Any], Path | None]:
    """Turn ``--select-on-test FILE`` into the selection set plus the config flag, and give
    encoders a work folder beside ``out`` by default."""
    config = dict(config)
    test_file = config.pop("select_on_test", None)
    if test_file is not None:
        if dev_path is not None or dev_ratio is not None:
            raise UsageError("--select-on-test replaces --dev / --dev-ratio; give only one")
        config["select_on_test"] = True
        dev_path = Path(test_file)
    work = config.get("work_dir")
    if work is None:
        resolved = out.resolve()  # "--out ." has no name of its own
        work = resolved.with_name(resolved.name + ".work")
    config["work_dir"] = str(work)
    return config, dev_path
