"""Screen a counselling chatbot's replies before they go out: a Python API and an HTTP service.

    >>> from mhsafety.guard import Guard, GuardConfig
    >>> guard = Guard.from_config(GuardConfig(checkpoint="checkpoints/baseline"))
    >>> guard.check("[seeker]I can't sleep.", "[supporter]Have you tried warm milk?")

Modules: :mod:`.config` (``GuardConfig``), :mod:`.core` (the guard: an ordered list of
tiers), :mod:`.tiers` (rules, model, escalation; one ``screen()`` protocol), :mod:`.results`
(the verdict), :mod:`.items` (what is screened; the empty-reply rule), :mod:`.rules` (rule
files), :mod:`.policy` (actions per category), :mod:`.calibrate` (thresholds and cascade
bands), :mod:`.dialogues` (whole-conversation audits) and :mod:`.service` (``mhsafety
serve``, imported only when used, so this package does not import FastAPI).
"""

from .calibrate import (
    Calibration,
    CascadeReport,
    calibrate,
    calibrate_cascade,
    pick_threshold,
    save_threshold,
)
from .config import GuardConfig, guard_config
from .core import Guard, Screening
from .dialogues import audit_dialogues, read_dialogues
from .items import EMPTY_REPLY, empty_reply, make_example
from .policy import DEFAULT_POLICY, Policy, load_policy
from .results import (
    DEFAULT_THRESHOLD,
    THRESHOLD_KEY,
    CheckResult,
    checkpoint_threshold,
    decide,
    flagged,
    labelled,
    node_path,
    unverified,
)
from .rules import NO_RULES, Rule, RuleSet, default_rules, load_rules
from .tiers import EscalationTier, ModelTier, Pass, Pending, RulesTier, Tier, TierBase

__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_THRESHOLD",
    "EMPTY_REPLY",
    "NO_RULES",
    "THRESHOLD_KEY",
    "Calibration",
    "CascadeReport",
    "CheckResult",
    "EscalationTier",
    "Guard",
    "GuardConfig",
    "ModelTier",
    "Pass",
    "Pending",
    "Policy",
    "Rule",
    "RuleSet",
    "RulesTier",
    "Screening",
    "Tier",
    "TierBase",
    "audit_dialogues",
    "calibrate",
    "calibrate_cascade",
    "checkpoint_threshold",
    "decide",
    "default_rules",
    "empty_reply",
    "flagged",
    "guard_config",
    "labelled",
    "load_policy",
    "load_rules",
    "make_example",
    "node_path",
    "pick_threshold",
    "read_dialogues",
    "save_threshold",
    "unverified",
]
