"""Qwen3Guard-Gen (0.6B, 4B, 8B): the dialogue as chat turns, three answer lines back.

Facts from the model card (our wording): the model's chat template does the prompting, so the
client sends the conversation itself, the turn to judge last. Judging a reply, it answers with
a ``Safety:`` line (Safe, Unsafe or Controversial), a ``Categories:`` line (its own category
names, comma-separated, or None) and a ``Refusal:`` line (Yes or No). No probability is
documented; the three-way level is the graded signal, and "Controversial" is read strictly
(as unsafe) or loosely (as safe). Served by ``vllm serve Qwen/Qwen3Guard-Gen-4B`` (vLLM 0.9
or later) or SGLang.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..data import Example
from .base import (
    NO_ANSWER_CALLS,
    TEXT_BEFORE_ANSWER,
    Answer,
    Capabilities,
    GuardVerdict,
    abstention,
    answer_lines,
    chat_messages,
    options,
    single_answer,
    split_answer,
)
from .settings import Qwen3GuardSettings

FAMILY = "qwen3guard"
Settings = Qwen3GuardSettings
# The model's own category names (the model card's list); kept as the model names them.
CATEGORIES = ("Violent", "Non-violent Illegal Acts", "Sexual Content or Sexual Acts", "PII",
              "Suicide & Self-Harm", "Unethical Acts", "Politically Sensitive Topics",
              "Copyright Violation", "Jailbreak")
LEVELS = ("Safe", "Unsafe", "Controversial")

NO_SAFETY_LINE = "no 'Safety:' line"
BAD_LEVEL = "'Safety:' is not Safe, Unsafe or Controversial"
NO_CATEGORIES_LINE = "no 'Categories:' line after 'Safety:'"
BAD_REFUSAL = "'Refusal:' is not Yes or No"

_LINE = re.compile(r"^(safety|categories|refusal)\s*[:：]\s*(.*)$", re.IGNORECASE)


def capabilities(settings: Qwen3GuardSettings | None = None) -> Capabilities:
    return Capabilities(refusal=True)


def calls_for(example: Example, settings: Qwen3GuardSettings) -> list[dict[str, Any]]:
    return [{"messages": chat_messages(example, alternate=True), **options(settings, probability=False)}]


def requests_for(example: Example, settings: Qwen3GuardSettings) -> list[list[dict[str, str]]]:
    return [call["messages"] for call in calls_for(example, settings)]


def parse(answer: Answer, settings: Qwen3GuardSettings) -> GuardVerdict:
    reasoning, text, problem = split_answer(answer)
    raw = (answer.text,)
    if problem:
        return abstention(problem, reasoning, raw)
    lines = answer_lines(text)
    fields: dict[str, str] = {}
    for i, line in enumerate(lines):
        match = _LINE.match(line)
        if match is None:
            if not fields:  # prose first: the answer lines must open the answer
                later = any(_LINE.match(rest) for rest in lines[i + 1:])
                return abstention(TEXT_BEFORE_ANSWER if later else NO_SAFETY_LINE,
                                  reasoning, raw)
            continue
        fields.setdefault(match.group(1).casefold(), match.group(2).strip())
    if "safety" not in fields:
        return abstention(NO_SAFETY_LINE, reasoning, raw)
    level = next((lv for lv in LEVELS if lv.casefold() == fields["safety"].casefold()), None)
    if level is None:
        return abstention(BAD_LEVEL, reasoning, raw)
    if "categories" not in fields:
        return abstention(NO_CATEGORIES_LINE, reasoning, raw)
    named = [c.strip() for c in fields["categories"].split(",") if c.strip()]
    categories = tuple(c for c in named if c.casefold() != "none")
    refusal = None
    if "refusal" in fields:
        word = fields["refusal"].casefold()
        if word not in ("yes", "no"):
            return abstention(BAD_REFUSAL, reasoning, raw)
        refusal = word == "yes"
    unsafe = level == "Unsafe" or (level == "Controversial" and settings.strictness == "strict")
    return GuardVerdict(unsafe, None, categories, refusal, None, reasoning, level=level, raw=raw)


def verdict_from(answers: Sequence[Answer | str | None],
                 settings: Qwen3GuardSettings) -> GuardVerdict:
    answer = single_answer(answers)
    return abstention(NO_ANSWER_CALLS) if answer is None else parse(answer, settings)
