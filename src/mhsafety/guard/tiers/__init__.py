"""The guard's tiers, one module each, all speaking :class:`~.base.Tier` (``screen``).

- :mod:`.rules`: the rule tier (explicit unsafe replies, before any model);
- :mod:`.model`: any saved classifier's P(safe) under a threshold;
- :mod:`.escalate`: a cascade's second checkpoint for the replies the model passed on.

A new tier (the gateway's seeker tier, a guard-model tier) is a module here with a class
deriving :class:`~.base.TierBase` (or anything with the protocol's attributes), added to
the list :meth:`mhsafety.guard.Guard.from_config` builds, or passed in ``Guard(tiers)``.
"""

from .base import Outcome, Pass, Pending, Tier, TierBase
from .escalate import EscalationTier, cascade, check_cascade
from .model import ModelTier, reachable
from .rules import RulesTier

__all__ = ["EscalationTier", "ModelTier", "Outcome", "Pass", "Pending", "RulesTier", "Tier",
           "TierBase", "cascade", "check_cascade", "reachable"]
