"""The seeker tiers: screen the *seeker's* turns for current suicide or self-harm risk.

The reply tiers (rules, model, escalation) judge the chatbot's reply; these judge the person
talking to it, before the upstream answers. Each assesses a whole conversation (every user
turn, as one text: a message split over several turns reads as the single message would) and
answers a :class:`SeekerRisk` — a level ``none``, ``low``, ``high`` or ``imminent``, the tier
and rule that set it and a short reason, never the text.

- :class:`SeekerRulesTier`: the seeker rules of :mod:`..seeker_rules` (Chinese and English;
  negated, past, reported and hypothetical mentions are not current risk).
- :class:`SeekerModelTier`: an LLM judge asked for the level with this project's prompt, over
  an injected ``complete(messages) -> text`` coroutine (any chat endpoint; the gateway wires
  the judge's chat client). A failed or unreadable answer adds nothing: the rules' level
  stands and the reason says the model could not answer.

:func:`assess_seeker` runs them in order and keeps the highest level: a tier can only raise
the risk, never lower it (rules can only raise risk, and so can the model).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..seeker_rules import (
    RISK_LEVELS,
    SeekerRuleSet,
    join_turns,
    level_rank,
    load_seeker_rules,
    seeker_turns,
)

Complete = Callable[[list[dict[str, str]]], Awaitable[str]]


@dataclass(frozen=True)
class SeekerRisk:
    """One conversation's seeker risk (no dialogue text in it)."""

    level: str = "none"
    tier: str | None = None
    rule_id: str | None = None
    reason: str | None = None

    @property
    def at_risk(self) -> bool:
        """High or imminent: what triggers the hand-over policy by default."""
        return level_rank(self.level) >= level_rank("high")

    def to_dict(self) -> dict[str, Any]:
        return {"risk": self.level, "tier": self.tier, "rule_id": self.rule_id,
                "reason": self.reason}


NO_SEEKER_RISK = SeekerRisk()


class SeekerTier(Protocol):
    name: str

    async def assess(self, messages: Sequence[Any]) -> SeekerRisk: ...


class SeekerRulesTier:
    """The seeker rules over every user turn of the conversation."""

    name = "seeker-rules"

    def __init__(self, rules: SeekerRuleSet | None = None) -> None:
        self.rules = load_seeker_rules() if rules is None else rules

    def assess_now(self, messages: Sequence[Any]) -> SeekerRisk:
        screen = self.rules.screen(messages)
        if screen.level == "none":
            why = (f"{len(screen.discounted)} mention(s) not current risk "
                   f"({', '.join(sorted({f.discount_kind or '' for f in screen.discounted}))})"
                   if screen.discounted else None)
            return SeekerRisk("none", self.name if why else None, None, why)
        return SeekerRisk(screen.level, self.name, screen.rule_id,
                          f"seeker rule {screen.rule_id} ({screen.level})")

    async def assess(self, messages: Sequence[Any]) -> SeekerRisk:
        return self.assess_now(messages)


SEEKER_PROMPT = """\
You assess suicide and self-harm risk for a mental-health support service. You read only what
the person seeking support wrote (their turns, in order, joined). Decide their CURRENT risk:

- imminent: a current plan, means at hand, a time or place, a goodbye, or an act in progress;
- high: current thoughts of suicide or of harming themselves, without a stated plan;
- low: hopelessness or wishing to disappear, without stated thoughts of suicide or self-harm;
- none: none of the above. Past thoughts that have passed, denials, other people's words,
  films, books and hypotheticals are not current risk.

Answer with one JSON object and nothing else:
{"risk": "none" | "low" | "high" | "imminent", "reason": "<at most 12 words, no quotes>"}"""

_RISK_RE = re.compile(r'"risk"\s*:\s*"(none|low|high|imminent)"', re.IGNORECASE)


def parse_risk(answer: str) -> str | None:
    """The level in a model's answer (a JSON object, or the bare word), or None."""
    text = answer.strip()
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        obj = None
    if isinstance(obj, dict) and str(obj.get("risk", "")).lower() in RISK_LEVELS:
        return str(obj["risk"]).lower()
    match = _RISK_RE.search(text)
    if match:
        return match.group(1).lower()
    word = text.strip(" .\"'`").lower()
    return word if word in RISK_LEVELS else None


def seeker_prompt(messages: Sequence[Any]) -> list[dict[str, str]]:
    """The chat messages the model tier sends: our instructions and the joined seeker turns."""
    text, _ = join_turns(seeker_turns(messages))
    return [{"role": "system", "content": SEEKER_PROMPT},
            {"role": "user", "content": text}]


class SeekerModelTier:
    """An LLM judge of the seeker's current risk, over ``complete(messages) -> text``."""

    name = "seeker-model"

    def __init__(self, complete: Complete) -> None:
        self.complete = complete

    async def assess(self, messages: Sequence[Any]) -> SeekerRisk:
        if not seeker_turns(messages):
            return NO_SEEKER_RISK
        try:
            answer = await self.complete(seeker_prompt(messages))
        except Exception as exc:  # noqa: BLE001 - a failed model adds no risk; the rules stand
            return SeekerRisk("none", self.name, None,
                              f"seeker model error: {type(exc).__name__}")
        level = parse_risk(answer if isinstance(answer, str) else "")
        if level is None:
            return SeekerRisk("none", self.name, None, "seeker model: no risk level in answer")
        return SeekerRisk(level, self.name, None, f"seeker model: {level}")


async def assess_seeker(tiers: Sequence[SeekerTier], messages: Sequence[Any]) -> SeekerRisk:
    """Every seeker tier in order; the highest level wins (ties: the earlier tier), so no
    tier can lower what another found. A model's failure reason is kept when nothing was
    found."""
    best = NO_SEEKER_RISK
    for tier in tiers:
        risk = await tier.assess(messages)
        if level_rank(risk.level) > level_rank(best.level) or (
                best.tier is None and risk.reason is not None):
            best = risk
    return best
