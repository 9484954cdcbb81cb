"""The escalation tier (a cascade): a second checkpoint decides the replies the first model
tier passed on, those whose first P(safe) lay inside the band or that it could not judge.

:func:`cascade` makes the pair; :func:`check_cascade` is the one check that a cascade has
both halves (``GuardConfig`` and ``Guard.load`` both call it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ...errors import UsageError
from ..results import decide, failed_predictions, rationale_of, validate_band
from .base import Outcome, Pending, TierBase
from .model import ModelTier


def check_cascade(escalate_to: object, band: object) -> None:
    """Refuse half a cascade (a second checkpoint without a band, or the reverse)."""
    if (escalate_to is None) != (band is None):
        raise UsageError("a cascade needs both escalate_to (a second checkpoint) and band "
                         "(LOW,HIGH)")


class EscalationTier(TierBase):
    """Decides every reply it gets with ``model`` (its own threshold unless overridden)."""

    name = "escalation"
    batched = True

    def __init__(self, model: ModelTier) -> None:
        self.model = model
        self.policy = model.policy

    def screen(self, items: Sequence[Pending]) -> list[Outcome]:
        return self.outcomes(items, self.model.safe_predictions([i.example for i in items]))

    def fail(self, items: Sequence[Pending], reason: str) -> list[Outcome]:
        return self.outcomes(items, failed_predictions(len(items), reason))

    def outcomes(self, items: Sequence[Pending], preds: Any) -> list[Outcome]:
        out: list[Outcome] = []
        for j, item in enumerate(items):
            threshold = self.model.threshold if item.threshold is None else item.threshold
            result = decide(preds.probs[j], threshold, item.example.id, tier=self.name,
                            policy=self.policy,
                            reason=f"escalation tier: {preds.reasons[j] or 'no answer'}",
                            rationale=rationale_of(preds, j))
            escalated = f"escalated: {item.passed[-1]}" if item.passed else "escalated"
            out.append(replace(result, why=f"{escalated}; {result.why}"))
        return out

    def describe(self) -> dict[str, Any]:
        return {"tier": self.name, "kind": self.model.kind, "threshold": self.model.threshold}

    def readiness(self) -> tuple[bool, str | None]:
        return self.model.readiness()

    def close(self) -> None:
        self.model.close()


def cascade(first: ModelTier, second: ModelTier, band: Sequence[float] | str
            ) -> list[TierBase]:
    """The two tiers of a cascade: ``first`` passing on what lies in ``band``, then
    ``second`` deciding it."""
    first.band = validate_band(band)
    return [first, EscalationTier(second)]
