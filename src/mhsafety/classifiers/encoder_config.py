"""The encoder classifier's settings: the one home of their defaults, checks and docs.

Defaults are the paper's recipe (benchmark.md section 4) plus the project's model-selection
settings. :class:`~mhsafety.classifiers.encoder.EncoderClassifier` builds its config from this
class, and the ``train`` / ``predict`` options are generated from it (help texts show these
defaults, never a copy). Light on purpose: no torch, so the CLI can read it at start.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import DEFAULT_SEED, Settings, at_least, setting
from ..taxonomy import NUM_LABELS

HEADS = ("cls", "roberta", "pooler")
SELECT_METRICS = ("f1", "accuracy", "macro_f1", "precision", "unsafe_f1")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
RUNTIMES = ("auto", "torch", "onnx")


def _within(low: float, high: float, open_high: bool = False):
    def check(v: float) -> str | None:
        if low <= v < high or (not open_high and v == high):
            return None
        return f"must be in [{low:g}, {high:g}{')' if open_high else ']'}, got {v}"
    return check


def _class_weights(weights: list[float]) -> str | None:
    if len(weights) != NUM_LABELS or any(w < 0 for w in weights):
        return (f"must be {NUM_LABELS} non-negative numbers, one per label "
                f"0..{NUM_LABELS - 1}")
    return None


@dataclass(frozen=True)
class EncoderConfig(Settings):
    """Settings of a fine-tuned encoder (BERT / RoBERTa family)."""

    model: str | None = setting(None, "Hugging Face model name or local folder.")
    head: str = setting("cls", "Head on [CLS]: cls (dropout + linear), roberta (dropout, dense, "
                        "tanh, dropout, linear) or pooler (the library's pooler output).",
                        choices=HEADS)
    max_length: int = setting(512, "Tokens per (context, response) pair; longer pairs lose "
                              "their oldest context turns.", check=at_least(8))
    class_weights: list[float] = setting([2.0, 2.0, 0.5, 2.0, 2.0, 2.0, 2.0, 0.5],
                                         "Loss weights of labels 0..7.", check=_class_weights,
                                         metavar="W0,...,W7")
    learning_rate: float = setting(2e-5, "AdamW learning rate.", check=at_least(0))
    weight_decay: float = setting(0.01, "AdamW weight decay (none on biases and LayerNorm).",
                                  check=at_least(0))
    warmup_ratio: float = setting(0.1, "Share of steps of linear warm-up (linear decay after).",
                                  check=_within(0, 1))
    epochs: int = setting(5, "Training epochs.", check=at_least(1))
    batch_size: int = setting(16, "Items per optimizer step, over all processes.",
                              check=at_least(1))
    gradient_accumulation: int = setting(1, "Split each batch into this many accumulated "
                                         "steps.", check=at_least(1))
    seed: int = setting(DEFAULT_SEED, "Random seed (order, dropout, head initialisation).")
    dev_ratio: float = setting(0.1, "Share of the training items held out for model "
                               "selection when no dev set is given; 0: no selection.",
                               check=_within(0, 1, open_high=True))
    select_metric: str = setting("f1", "Dev score that picks the epoch (f1 is "
                                 "support-weighted F1).", choices=SELECT_METRICS)
    patience: int = setting(2, "Stop after this many epochs without a better dev score; 0 "
                            "never stops early.", check=at_least(0))
    select_on_test: bool = setting(False, "The paper's leaky protocol: the selection set is "
                                   "the test set (marked in checkpoint, records and tables).")
    group_by_length: bool = setting(True, "Batch items of similar length, so dynamic padding "
                                    "wastes little.")
    pad_to_max_length: bool = setting(False, "Pad every batch to max_length (for speed "
                                      "comparisons only).")
    precision: str = setting("auto", "auto = bf16 (or fp16) on a GPU, fp32 on CPU.",
                             choices=PRECISIONS)
    device: str = setting("auto", "auto, cpu, cuda, cuda:N or mps.")
    eval_batch_size: int = setting(64, "Items per forward pass when predicting.",
                                   check=at_least(1))
    runtime: str = setting("auto", "Prediction runtime: onnx = the checkpoint's ONNX model "
                           "(mhsafety export), torch = PyTorch, auto = ONNX on CPU when the "
                           "checkpoint has one.", choices=RUNTIMES)
    max_steps: int | None = setting(None, "Stop after this many optimizer steps (smoke runs, "
                                    "benchmarks).", check=at_least(1))
    work_dir: str | None = setting(None, "Per-epoch training state, so rerunning the same "
                                   "command after a crash resumes; removed once the "
                                   "checkpoint is saved (mhsafety train: OUT.work).")
