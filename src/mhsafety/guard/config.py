"""``GuardConfig``: every setting of a guard, once. ``mhsafety check ...`` and ``mhsafety
serve`` generate their guard options from its fields (``settings.click_options``), the
library builds a guard from it (``Guard.from_config``) and service workers receive it as
this object (pickled by :mod:`multiprocessing`, see :mod:`.service.workers`).

It checks itself once, in ``__post_init__`` (field checks and choices from the field
metadata, then the rules between fields); errors name the parameter, never a CLI flag.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..classifiers.encoder_config import RUNTIMES
from ..errors import UsageError
from ..settings import Settings, build, setting
from .results import DEFAULT_THRESHOLD, validate_band
from .tiers.escalate import check_cascade


def _unit_interval(value: Any) -> str | None:
    return None if 0.0 <= value <= 1.0 else f"must be between 0 and 1, got {value}"


def _band(value: Any) -> str | None:
    try:
        validate_band(tuple(value))
    except (UsageError, TypeError, ValueError) as exc:
        return f"is not a band: {exc}"
    return None


@dataclass(frozen=True)
class GuardConfig(Settings):
    """What a guard is made of: the checkpoint, the rule tier, the policy and a cascade."""

    checkpoint: Path = setting(dataclasses.MISSING, "A saved classifier folder (any kind).",
                               metavar="DIR")
    threshold: float | None = setting(
        None, f"Flag unsafe when P(safe) < this (none: the checkpoint's, else "
              f"{DEFAULT_THRESHOLD}).", check=_unit_interval)
    rules: bool = setting(True, "The rule tier (explicit unsafe replies, before any model).")
    rules_file: Path | None = setting(None, "A rule file (JSON/YAML) added to the default "
                                      "rules (same id replaces).", metavar="FILE")
    default_rules: bool = setting(True, "Include the shipped rules (off: only rules_file's).")
    policy: Path | None = setting(None, "A policy file (JSON/YAML) mapping categories to "
                                  "allow, block, regenerate or handover.", metavar="FILE")
    escalate_to: Path | None = setting(None, "A second checkpoint that decides replies inside "
                                       "the band (a cascade).", metavar="DIR")
    band: tuple[float, float] | None = setting(
        None, "With escalate_to: escalate when the first P(safe) is in [LOW, HIGH].",
        check=_band, metavar="LOW,HIGH")
    escalate_threshold: float | None = setting(
        None, f"The second checkpoint's threshold (none: its own, else {DEFAULT_THRESHOLD}).",
        check=_unit_interval)
    runtime: str | None = setting(None, "Encoder tiers only: prediction runtime (none: each "
                                  "checkpoint's own setting).", choices=RUNTIMES)

    def check_together(self) -> None:
        check_cascade(self.escalate_to, self.band)
        if self.escalate_threshold is not None and self.escalate_to is None:
            raise UsageError("escalate_threshold needs escalate_to (a cascade's second "
                             "checkpoint)")
        if not self.rules and self.rules_file is not None:
            raise UsageError("rules is off (no rule tier); it cannot be combined with "
                             "rules_file")


def guard_config(values: Mapping[str, Any], where: str = "guard") -> GuardConfig:
    """A checked ``GuardConfig`` from untyped values (CLI options, JSON): strings are
    coerced to the fields' types; a missing checkpoint is one sentence, not a TypeError."""
    if values.get("checkpoint") is None:
        raise UsageError(f"{where}: missing setting 'checkpoint' (a saved classifier folder)")
    return build(GuardConfig, values, where)
