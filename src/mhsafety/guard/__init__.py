"""Screen a counselling chatbot's replies before they go out: a Python API and an HTTP service.

    >>> from mhsafety.guard import Guard
    >>> guard = Guard.load("checkpoints/baseline")
    >>> guard.check("[seeker]I can't sleep.", "[supporter]Have you tried warm milk?")

Modules: :mod:`.core` (the guard and its tiers), :mod:`.rules` (the rule tier),
:mod:`.policy` (actions per category), :mod:`.calibrate` (thresholds and cascade bands),
:mod:`.dialogues` (whole-conversation audits) and :mod:`.service` (``mhsafety serve``,
imported only when used, so this package does not import FastAPI).
"""

from .calibrate import (
    Calibration,
    CascadeReport,
    calibrate,
    calibrate_cascade,
    pick_threshold,
    save_threshold,
)
from .core import (
    DEFAULT_THRESHOLD,
    THRESHOLD_KEY,
    CheckResult,
    Guard,
    ModelTier,
    checkpoint_threshold,
    decide,
    make_example,
    node_path,
    unverified,
)
from .dialogues import audit_dialogues, read_dialogues
from .policy import DEFAULT_POLICY, Policy, load_policy
from .rules import NO_RULES, Rule, RuleSet, default_rules, load_rules

__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_THRESHOLD",
    "NO_RULES",
    "THRESHOLD_KEY",
    "Calibration",
    "CascadeReport",
    "CheckResult",
    "Guard",
    "ModelTier",
    "Policy",
    "Rule",
    "RuleSet",
    "audit_dialogues",
    "calibrate",
    "calibrate_cascade",
    "checkpoint_threshold",
    "decide",
    "default_rules",
    "load_policy",
    "load_rules",
    "make_example",
    "node_path",
    "pick_threshold",
    "read_dialogues",
    "save_threshold",
    "unverified",
]
