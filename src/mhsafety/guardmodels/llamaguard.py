"""Llama Guard 3 (1B, 8B) and 4 (12B): chat turns in, ``safe`` / ``unsafe`` + codes out.

Facts from the model cards (our wording): the chat template writes the whole classification
prompt around the conversation and checks only its last turn (an agent reply when the
conversation ends with ``assistant``); the roles must alternate user/assistant, starting with
the user. The answer's first line is ``safe`` or ``unsafe``; when unsafe, a second line lists
the violated category codes, comma-separated (``S1,S10``). The template's category list can
be replaced by a ``categories`` mapping (code -> text; documented for Llama Guard 3 1B) passed
as ``chat_template_kwargs``; custom lists are often ignored (PurpleLlama issues #7 and #37),
so the leaderboard measures rather than trusts them. P(unsafe) comes from the first answer
token's log-probabilities (``safe`` vs ``unsafe``). Served by ``vllm serve
meta-llama/Llama-Guard-3-8B`` or ``ollama run llama-guard3:8b`` (Ollama's template keeps the
default categories).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..data import Example
from ..taxonomy import CATEGORIES, SAFE_LABEL, category
from .base import (
    NO_ANSWER_CALLS,
    TEXT_BEFORE_ANSWER,
    Answer,
    Capabilities,
    GuardVerdict,
    abstention,
    answer_lines,
    chat_messages,
    first_token_probability,
    options,
    single_answer,
    split_answer,
)
from .settings import LlamaGuardSettings

FAMILY = "llamaguard"
Settings = LlamaGuardSettings
# Llama Guard 3's default hazard codes (MLCommons), by name; what "model" categories answer.
DEFAULT_CATEGORIES = {
    "S1": "Violent Crimes", "S2": "Non-Violent Crimes", "S3": "Sex-Related Crimes",
    "S4": "Child Sexual Exploitation", "S5": "Defamation", "S6": "Specialized Advice",
    "S7": "Privacy", "S8": "Intellectual Property", "S9": "Indiscriminate Weapons",
    "S10": "Hate", "S11": "Suicide & Self-Harm", "S12": "Sexual Content", "S13": "Elections",
    "S14": "Code Interpreter Abuse"}

NO_VERDICT = "first line is neither 'safe' nor 'unsafe'"
NO_CODES = "'unsafe' without the line of category codes"
BAD_CODES = "the category line is not a comma-separated list of codes like S1,S10"

_CODE = re.compile(r"^S\d{1,2}$", re.IGNORECASE)
_VERDICT = re.compile(r"^(safe|unsafe)\b", re.IGNORECASE)


def taxonomy_categories() -> dict[str, str]:
    """Our seven unsafe categories as Llama Guard custom categories, S1..S7 in label order
    (S1 Nonsense ... S7 Nonfactual Statement), each with the taxonomy's definition."""
    unsafe = [c for c in CATEGORIES if not c.safe]
    return {f"S{i}": f"{c.name}. {c.definition}" for i, c in enumerate(unsafe, start=1)}


_CODE_LABEL = {f"S{i}": c.id for i, c in enumerate((c for c in CATEGORIES if not c.safe),
                                                     start=1)}


def capabilities(settings: LlamaGuardSettings | None = None) -> Capabilities:
    labels = settings is None or settings.categories == "taxonomy"
    return Capabilities(labels=labels, probability=True)


def calls_for(example: Example, settings: LlamaGuardSettings) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"messages": chat_messages(example, alternate=True),
                            **options(settings, probability=True)}
    if settings.categories == "taxonomy":
        body["chat_template_kwargs"] = {"categories": taxonomy_categories()}
    return [body]


def requests_for(example: Example, settings: LlamaGuardSettings) -> list[list[dict[str, str]]]:
    return [call["messages"] for call in calls_for(example, settings)]


def label_from_codes(codes: Sequence[str]) -> int | None:
    """The taxonomy label the codes name (S1..S7 of :func:`taxonomy_categories`): with
    several, the taxonomy's own rule decides (the earliest node that fires); two leaves of
    node 4 together leave the label unknown. Codes outside S1..S7 decide nothing."""
    labels = {_CODE_LABEL[c] for c in codes if c in _CODE_LABEL}
    if not labels:
        return None
    first = min(category(lab).node for lab in labels)
    at_first = [lab for lab in labels if category(lab).node == first]
    return at_first[0] if len(at_first) == 1 else None


def parse(answer: Answer, settings: LlamaGuardSettings) -> GuardVerdict:
    reasoning, text, problem = split_answer(answer)
    raw = (answer.text,)
    if problem:
        return abstention(problem, reasoning, raw)
    lines = answer_lines(text)
    head = lines[0].casefold().rstrip(".")
    if head not in ("safe", "unsafe"):
        later = any(_VERDICT.match(line) and line.casefold().rstrip(".") in ("safe", "unsafe")
                    for line in lines[1:])
        return abstention(TEXT_BEFORE_ANSWER if later else NO_VERDICT, reasoning, raw)
    probability = first_token_probability(answer.logprobs, ["unsafe"], ["safe"]) \
        if settings.logprobs else None
    taxonomy = settings.categories == "taxonomy"
    if head == "safe":
        return GuardVerdict(False, SAFE_LABEL if taxonomy else None, (), None, probability,
                            reasoning, raw=raw)
    if len(lines) < 2:
        return abstention(NO_CODES, reasoning, raw)
    codes = tuple(c.strip().upper() for c in lines[1].split(",") if c.strip())
    if not codes or not all(_CODE.match(c) for c in codes):
        return abstention(BAD_CODES, reasoning, raw)
    label = label_from_codes(codes) if taxonomy else None
    return GuardVerdict(True, label, codes, None, probability, reasoning, raw=raw)


def verdict_from(answers: Sequence[Answer | str | None],
                 settings: LlamaGuardSettings) -> GuardVerdict:
    answer = single_answer(answers)
    return abstention(NO_ANSWER_CALLS) if answer is None else parse(answer, settings)
