"""What the harness integrations share with the judge: its settings' defaults, prompt,
parser and reason texts, read from their one home (:mod:`mhsafety.judge`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..judge.parse import NO_CATEGORY, answer_parser, split_reasoning
from ..judge.settings import N_SHOTS, OUTPUTS, PROTOCOLS, JudgeSettings

# The protocols a harness task offers are the judge's PROTOCOLS (flat = one question, eight
# answers; sequential = one question per node of the framework).

# The error a record keeps for an answer that names no label: the judge's words.
UNPARSED = NO_CATEGORY

__all__ = ["N_SHOTS", "OUTPUTS", "PROTOCOLS", "UNPARSED", "judge_settings", "label_reader"]


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
