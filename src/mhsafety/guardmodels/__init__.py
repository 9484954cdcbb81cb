"""Today's guard models as graders and guard tiers: how each family is asked and read.

One module per family — :mod:`.qwen3guard`, :mod:`.llamaguard`, :mod:`.shieldgemma`,
:mod:`.wildguard`, and :mod:`.policy` (our taxonomy as a policy document, for
gpt-oss-safeguard, Nemotron safety reasoning models and any instruction model). Each has the
same pure functions, which :func:`calls_for` / :func:`verdict_from` here dispatch on the
settings' family:

- ``calls_for(example, settings)``: the request bodies (messages plus options, no model),
  one per call; ``requests_for`` just their messages;
- ``verdict_from(answers, settings)``: the answers (one per call) as one :class:`GuardVerdict`,
  abstaining with a reason when they cannot be read;
- ``capabilities(settings)``: what the kind can tell (:class:`Capabilities`).

Nothing here sends a request: the transport and the classifier come from the judge core.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

from ..data import Example
from . import llamaguard, policy, qwen3guard, shieldgemma, wildguard
from .base import (
    PASSTHROUGH_TEMPLATE,
    Answer,
    Capabilities,
    GuardVerdict,
    answer_from_choice,
    chat_messages,
    first_token_probability,
)
from .settings import (
    SETTINGS,
    GuardModelSettings,
    LlamaGuardSettings,
    PolicySettings,
    Qwen3GuardSettings,
    ShieldGemmaSettings,
    WildGuardSettings,
)

FAMILIES: dict[str, ModuleType] = {m.FAMILY: m for m in (qwen3guard, llamaguard, shieldgemma,
                                                          wildguard, policy)}


def family_of(settings: GuardModelSettings) -> ModuleType:
    return FAMILIES[type(settings).family]


def calls_for(example: Example, settings: GuardModelSettings) -> list[dict[str, Any]]:
    return family_of(settings).calls_for(example, settings)


def requests_for(example: Example, settings: GuardModelSettings) -> list[list[dict[str, str]]]:
    return family_of(settings).requests_for(example, settings)


def verdict_from(answers: Sequence[Answer | str | None],
                 settings: GuardModelSettings) -> GuardVerdict:
    return family_of(settings).verdict_from(answers, settings)


def capabilities(settings: GuardModelSettings) -> Capabilities:
    return family_of(settings).capabilities(settings)


__all__ = [
    "FAMILIES",
    "PASSTHROUGH_TEMPLATE",
    "SETTINGS",
    "Answer",
    "Capabilities",
    "GuardModelSettings",
    "GuardVerdict",
    "LlamaGuardSettings",
    "PolicySettings",
    "Qwen3GuardSettings",
    "ShieldGemmaSettings",
    "WildGuardSettings",
    "answer_from_choice",
    "calls_for",
    "capabilities",
    "chat_messages",
    "family_of",
    "first_token_probability",
    "requests_for",
    "verdict_from",
]
