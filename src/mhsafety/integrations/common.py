"""What the harness integrations share with the judge: its settings' defaults, prompt,
parser and reason texts, read from their one home (:mod:`mhsafety.judge`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..data import Example, check_overlap
from ..judge.parse import NO_CATEGORY, answer_parser, split_reasoning
from ..judge.settings import N_SHOTS, OUTPUTS, PROTOCOLS, JudgeSettings
from ..records import NOTE_SHOTS_FROM_JUDGED

# The protocols a harness task offers are the judge's PROTOCOLS (flat = one question, eight
# answers; sequential = one question per node of the framework).

# The error a record keeps for an answer that names no label: the judge's words.
UNPARSED = NO_CATEGORY

__all__ = ["METADATA_KEY", "N_SHOTS", "OUTPUTS", "PROTOCOLS", "UNPARSED", "judge_settings",
           "label_reader", "run_metadata", "shot_overlap"]
# Where a harness run keeps what its rows must say (inspect: the task's metadata; lm-eval:
# the task config's ``metadata``), read back by :mod:`.harness_logs`.
METADATA_KEY = "mhsafety"


def judge_settings(**given: Any) -> JudgeSettings:
    """The judge's settings with only ``given`` set (None means "not given"), so every
    default (budget, sampling, parser, seed) is the judge's own."""
    return JudgeSettings(**{k: v for k, v in given.items() if v is not None})


def label_reader(settings: JudgeSettings) -> Callable[[str | None], int | None]:
    """Answer text -> label id or None, as the judge reads it: a leading ``<think>`` block
    taken off first (reasoning is never parsed), then the output format's parser."""
    parse = answer_parser(settings.output, settings.parser)

    def read(answer: str | None) -> int | None:
        if answer is None:
            return None
        return parse(split_reasoning(answer)[1])

    return read


def shot_overlap(train: Sequence[Example], examples: Sequence[Example], train_name: str,
                 data_name: str, allow: bool, allow_name: str = "--allow-overlap") -> list[str]:
    """The few-shot rule of ``mhsafety judge --shots 8``: examples drawn from items that
    are also judged (copies changed in no meaning included) are refused
    (:class:`~mhsafety.data.OverlapError`) unless ``allow``; the shared ids either way (an
    item is then never shown itself, and the rows are marked)."""
    return check_overlap(train, examples, train_name, data_name, allow, allow_name)


def run_metadata(shots: int, protocol: str, shared: Sequence[str],
                 train: str | None = None, **settings: Any) -> dict[str, Any]:
    """What a harness run records so its rows read back labelled right: shots, protocol,
    the few-shot source, how many judged items it shares (``overlap``) and the note codes
    every row of the run shows (``notes``), plus any other ``settings`` (parser, output,
    template hash, seed) that make two runs different systems."""
    out: dict[str, Any] = {"shots": shots, "protocol": protocol, "overlap": len(shared),
                           "notes": [NOTE_SHOTS_FROM_JUDGED] if shared else []}
    if shots:
        out["train"] = train
    out.update({k: v for k, v in settings.items() if v is not None})
    return out


def settings_key(metadata: dict[str, Any]) -> str:
    """The settings part of a harness run's identity (:func:`mhsafety.records.setup_key`):
    every recorded setting but the data file and the note bookkeeping, as ``k=v`` pairs."""
    skip = {"data", "notes", "overlap"}
    return ",".join(f"{k}={metadata[k]}" for k in sorted(metadata) if k not in skip)
