"""Options of ``train`` / ``predict`` / ``benchmark`` that only fine-tuned encoders take.

Defaults are left unset here (None) so that the library's defaults, the paper's recipe, apply;
only options the user gave reach the classifier's config. Nothing heavy is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import UsageError

_TRAIN_OPTIONS = [
    click.option("--head", type=click.Choice(["cls", "roberta", "pooler"]), default=None,
                 help="Encoder head: cls (BERT: dropout + linear on [CLS], the default), "
                      "roberta (dropout, dense, tanh, dropout, linear on [CLS]) or pooler."),
    click.option("--max-length", type=click.IntRange(8), default=None,
                 help="Encoder: tokens per (context, response) pair  [default: 512]"),
    click.option("--epochs", type=click.IntRange(1), default=None,
                 help="Encoder: training epochs  [default: 5]"),
    click.option("--batch-size", type=click.IntRange(1), default=None,
                 help="Encoder: items per optimizer step, over all processes  [default: 16]"),
    click.option("--gradient-accumulation", type=click.IntRange(1), default=None,
                 help="Encoder: split each batch into this many accumulated steps  [default: 1]"),
    click.option("--learning-rate", type=click.FloatRange(0), default=None,
                 help="Encoder: AdamW learning rate  [default: 2e-5]"),
    click.option("--weight-decay", type=click.FloatRange(0), default=None,
                 help="Encoder: AdamW weight decay, none on biases and LayerNorm  [default: 0.01]"),
    click.option("--warmup-ratio", type=click.FloatRange(0, 1), default=None,
                 help="Encoder: share of steps of linear warm-up  [default: 0.1]"),
    click.option("--class-weights", default=None, metavar="W0,...,W7",
                 help="Encoder: loss weights of labels 0..7  [default: 2,2,0.5,2,2,2,2,0.5]"),
    click.option("--select-metric",
                 type=click.Choice(["f1", "accuracy", "macro_f1", "precision", "unsafe_f1"]),
                 default=None, help="Encoder: dev score that picks the epoch (f1 is "
                                    "support-weighted F1)  [default: f1]"),
    click.option("--patience", type=click.IntRange(0), default=None,
                 help="Encoder: stop after this many epochs without a better dev score; "
                      "0 never stops early  [default: 2]"),
    click.option("--select-on-test", "select_on_test", default=None,
                 type=click.Path(dir_okay=False, path_type=Path),
                 help="Encoder: the paper's leaky protocol: pick the epoch by its score on "
                      "this TEST file (instead of --dev / --dev-ratio). Such runs are marked "
                      "'epoch picked on the test set' in the checkpoint, records and tables."),
    click.option("--group-by-length/--no-group-by-length", default=None,
                 help="Encoder: batch items of similar length (less padding)  [default: on]"),
    click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
                 default=None, help="Encoder: auto = bf16 (or fp16) on a GPU, fp32 on CPU."),
    click.option("--device", default=None,
                 help="Encoder: auto, cpu, cuda, cuda:N or mps  [default: auto]"),
    click.option("--max-steps", type=click.IntRange(1), default=None,
                 help="Encoder: stop after this many optimizer steps (smoke tests)."),
    click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Encoder: per-epoch training state, so rerunning the same command after "
                      "a crash resumes; removed once the checkpoint is saved  "
                      "[default: OUT.work]"),
]

_PREDICT_OPTIONS = [
    click.option("--batch-size", "eval_batch_size", type=click.IntRange(1), default=None,
                 help="Encoder: items per forward pass  [default: 64]"),
    click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
                 default=None, help="Encoder: auto = bf16 (or fp16) on a GPU, fp32 on CPU."),
    click.option("--device", default=None,
                 help="Encoder: auto, cpu, cuda, cuda:N or mps  [default: auto]"),
    click.option("--runtime", type=click.Choice(["auto", "torch", "onnx"]), default=None,
                 help="Encoder: onnx = the checkpoint's ONNX model (mhsafety export), torch = "
                      "PyTorch, auto = ONNX on CPU when there is one  [default: auto]"),
]


def _apply(options: list[Callable]) -> Callable:
    def decorate(func: Callable) -> Callable:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


encoder_train_options = _apply(_TRAIN_OPTIONS)
encoder_predict_options = _apply(_PREDICT_OPTIONS)
ENCODER_TRAIN_KEYS = ("head", "max_length", "epochs", "batch_size", "gradient_accumulation",
                      "learning_rate", "weight_decay", "warmup_ratio", "class_weights",
                      "select_metric", "patience", "select_on_test", "group_by_length",
                      "precision", "device", "max_steps", "work_dir")
ENCODER_PREDICT_KEYS = ("eval_batch_size", "precision", "device", "runtime")


def _parse_weights(text: str) -> list[float]:
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"--class-weights must be 8 comma-separated numbers, got {text!r}") \
            from None
    if len(weights) != 8:
        raise UsageError(f"--class-weights needs 8 numbers (labels 0..7), got {len(weights)}")
    return weights


def encoder_config(values: dict[str, Any], spec: str) -> dict[str, Any]:
    """The encoder settings the user gave, as classifier config; an error when given for a
    system that is not an encoder. ``select_on_test`` and ``work_dir`` stay Paths here."""
    given = {k: v for k, v in values.items() if v is not None}
    if not given:
        return {}
    if not spec.startswith("encoder:"):
        flags = ", ".join("--" + k.replace("_", "-").replace("eval-", "") for k in given)
        raise UsageError(f"{flags} only apply to fine-tuned encoders, not to {spec!r}")
    if "class_weights" in given:
        given["class_weights"] = _parse_weights(given["class_weights"])
    return given


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
