"""The one protocol every tier of the guard speaks.

A guard is an ordered list of tiers. Each reply starts undecided; each tier in turn gets the
replies still undecided and answers, for each, either a :class:`CheckResult` (decided) or a
:class:`Pass` (hand it on to the next tier, saying why). A reply no tier decided is
"unverified" (the guard fails closed).

``screen`` is synchronous and may be slow (a model call): the HTTP service runs a tier with
``batched = True`` on a worker thread behind a micro-batcher, which merges the undecided
replies of concurrent requests into one ``screen`` call; cheap tiers (rules) run inline.
When a batched call fails or runs past the request's deadline, the service asks the tier's
``fail`` for the outcomes instead (fail closed: never "safe").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ...data import Example
from ..policy import DEFAULT_POLICY, Policy
from ..results import CheckResult, unverified


@dataclass(frozen=True)
class Pending:
    """One reply not yet decided, as a tier sees it.

    ``threshold`` is a per-call override for every tier (None: each tier's own); ``shown``
    the threshold a result shows when its tier has none (the rule tier); ``passed`` why
    earlier tiers handed it on, oldest first.
    """

    example: Example
    threshold: float | None = None
    shown: float = 0.5
    passed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pass:
    """A tier's answer "not mine to decide": the reply goes on to the next tier."""

    why: str


Outcome = CheckResult | Pass


@runtime_checkable
class Tier(Protocol):
    """What the guard needs of a tier.

    ``name`` is what results decided here show as their ``tier``. ``batched``: True when
    ``screen`` makes a costly call (a model) that the service should batch across requests.
    ``screen`` answers one outcome per item, in order, and never raises; ``fail`` answers
    for items whose ``screen`` call failed or timed out with ``reason``.
    """

    name: str
    batched: bool

    def screen(self, items: Sequence[Pending]) -> list[Outcome]: ...

    def fail(self, items: Sequence[Pending], reason: str) -> list[Outcome]: ...

    def describe(self) -> dict[str, Any]: ...

    def readiness(self) -> tuple[bool, str | None]: ...

    def close(self) -> None: ...


class TierBase:
    """Defaults for a tier: fail closed with the reason, always ready, nothing to close."""

    name = "tier"
    batched = False
    policy: Policy = DEFAULT_POLICY

    def screen(self, items: Sequence[Pending]) -> list[Outcome]:  # pragma: no cover
        raise NotImplementedError

    def fail(self, items: Sequence[Pending], reason: str) -> list[Outcome]:
        return [unverified(reason, item.shown if item.threshold is None else item.threshold,
                           item.example.id, tier=self.name, policy=self.policy)
                for item in items]

    def describe(self) -> dict[str, Any]:
        return {"tier": self.name}

    def readiness(self) -> tuple[bool, str | None]:
        return True, None

    def close(self) -> None:
        return None
