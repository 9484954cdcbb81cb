"""Options of ``train`` / ``predict`` that only fine-tuned encoders take, generated from
:class:`~mhsafety.classifiers.encoder_config.EncoderConfig` (help shows its defaults).

Every option defaults to None ("not given"), so only what the user set reaches the
classifier's config, and the config class's own defaults apply to the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..classifiers.encoder_config import EncoderConfig
from ..errors import UsageError
from ..settings import click_options, fields_doc, given

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
