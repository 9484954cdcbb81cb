"""The rule tier: explicit unsafe replies decided before any model runs (rules only ever
make a reply less safe; a reply no rule matches goes on)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..policy import DEFAULT_POLICY, Policy
from ..results import labelled
from ..rules import RuleSet
from .base import Outcome, Pass, Pending, TierBase

NO_RULE = "no rule matched"


class RulesTier(TierBase):
    name = "rules"
    batched = False

    def __init__(self, rules: RuleSet, policy: Policy = DEFAULT_POLICY) -> None:
        self.rules, self.policy = rules, policy

    def screen(self, items: Sequence[Pending]) -> list[Outcome]:
        hits = self.rules.match_examples([item.example for item in items])
        return [Pass(NO_RULE) if hit is None else labelled(
                    hit.label, None, item.shown if item.threshold is None else item.threshold,
                    item.example.id, tier=self.name, rule_id=hit.rule.id,
                    why=f"rule {hit.rule.id} matched {hit.matched!r}", policy=self.policy)
                for item, hit in zip(items, hits)]

    def describe(self) -> dict[str, Any]:
        return {"tier": self.name, "rules": len(self.rules), "source": self.rules.source}
