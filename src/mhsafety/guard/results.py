"""The guard's verdict on one reply (:class:`CheckResult`) and the functions that make one.

Every tier decides through these: :func:`decide` (a row of probabilities under a threshold),
:func:`labelled` (a known label), :func:`flagged` (unsafe, category unknown: a binary-only
guard model), :func:`unverified` (fail closed, with the reason).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..classifiers.base import Predictions
from ..errors import DataError, UsageError
from ..taxonomy import CATEGORIES, LABEL_NAMES, NODES, SAFE_LABEL, category, node_of
from .policy import DEFAULT_POLICY, Policy

DEFAULT_THRESHOLD = 0.5
# Key in a checkpoint manifest's "extra" that holds the guard's default threshold.
THRESHOLD_KEY = "guard_threshold"

Decision = Literal["safe", "unsafe", "unverified"]
# Who decided: a tier's name ("rules", "model", "escalation"; new tiers add theirs), or
# "input" for a reply refused before any tier (see items.EMPTY_REPLY).
TierName = str


def node_path(label: int) -> list[dict[str, Any]]:
    """The walk through the sequential framework that reaches ``label``.

    One step per node asked, in order: its number, title and whether it fired (stopped the
    walk). The last step is the node that decided; at node 4 it names the kind.
    """
    cat = category(label)
    steps: list[dict[str, Any]] = []
    for node in NODES[:cat.node]:
        decided = node.number == cat.node
        step: dict[str, Any] = {"node": node.number, "title": node.title, "fired": decided}
        if decided and node.number == 4:
            step["kind"] = cat.name
        steps.append(step)
    return steps


@dataclass(frozen=True)
class CheckResult:
    """The guard's verdict on one reply.

    ``label`` always agrees with ``decision``: a flagged reply gets the most probable unsafe
    label even when the model's argmax (``model_label``) was Safe Response, and a reply
    passed as safe gets label 7 (a binary-only tier may flag a reply with the label left
    None). ``node`` is the framework node that decides ``label`` and ``path`` the walk to it.
    ``tier`` says who decided and ``why`` how; ``action`` is the policy's answer for the
    label (or for ``unverified``). For ``"unverified"`` results the label fields are None and
    ``reason`` says why; probabilities are those of the deciding model, None when it gave none.
    """

    decision: Decision
    safe: bool
    label: int | None
    label_name: str | None
    node: int | None
    node_title: str | None
    p_safe: float | None
    probabilities: dict[str, float] | None
    model_label: int | None
    threshold: float
    id: str | None = None
    reason: str | None = None
    tier: TierName = "model"
    why: str | None = None
    rule_id: str | None = None
    path: list[dict[str, Any]] | None = None
    rationale: str | None = None
    action: str | None = None

    @property
    def verified(self) -> bool:
        return self.decision != "unverified"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used by ``mhsafety check`` and the HTTP service alike."""
        return {"id": self.id, "decision": self.decision, "safe": self.safe,
                "action": self.action, "label": self.label, "label_name": self.label_name,
                "node": None if self.node is None else {"number": self.node,
                                                        "title": self.node_title},
                "path": self.path, "tier": self.tier, "why": self.why,
                "rule_id": self.rule_id, "p_safe": self.p_safe,
                "probabilities": self.probabilities, "model_label": self.model_label,
                "threshold": self.threshold, "rationale": self.rationale,
                "reason": self.reason}


# ---------------------------------------------------------------------- thresholds

def validate_threshold(threshold: float, what: str = "threshold") -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise UsageError(f"{what} must be a number between 0 and 1, got {threshold!r}")
    value = float(threshold)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise UsageError(f"{what} must be between 0 and 1, got {threshold!r}")
    return value


def validate_band(band: Sequence[float] | str) -> tuple[float, float]:
    """``(low, high)`` from a pair or a ``"LOW,HIGH"`` string; 0 <= low < high <= 1."""
    if isinstance(band, str):
        parts = band.split(",")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 2:
            raise UsageError(f"the band must be LOW,HIGH (two numbers), got {band!r}")
        band = values
    low, high = (validate_threshold(v, "each end of the band") for v in band)
    if not low < high:
        raise UsageError(f"the band's low end must be below its high end, got {low:g},{high:g}")
    return low, high


def checkpoint_threshold(manifest: Mapping[str, Any]) -> float:
    """The default threshold stored in a checkpoint manifest's extra, else 0.5."""
    extra = manifest.get("extra") or {}
    value = extra.get(THRESHOLD_KEY) if isinstance(extra, Mapping) else None
    if value is None:
        return DEFAULT_THRESHOLD
    try:
        return validate_threshold(value, f"the checkpoint's extra.{THRESHOLD_KEY}")
    except UsageError as exc:
        raise DataError(str(exc)) from None


# ---------------------------------------------------------------------- model answers

def failed_predictions(n: int, reason: str) -> Predictions:
    """Predictions in which every one of ``n`` items abstained with ``reason`` (a failed
    model call)."""
    return Predictions(np.full((n, len(LABEL_NAMES)), np.nan), (reason,) * n)


def valid_row(row: np.ndarray) -> bool:
    """Whether ``row`` is a probability distribution over the labels (an answer at all)."""
    return bool(row.shape == (len(LABEL_NAMES),) and np.all(np.isfinite(row))
                and np.all(row >= 0) and abs(row.sum() - 1.0) <= 1e-4)


def rationale_of(preds: Any, i: int) -> str | None:
    rationales = getattr(preds, "rationales", None)
    return None if not rationales else rationales[i]


# ---------------------------------------------------------------------- deciding

def unverified(reason: str, threshold: float, id: str | None = None, *,
               tier: TierName = "model", policy: Policy = DEFAULT_POLICY,
               why: str | None = None) -> CheckResult:
    """The fail-closed result: not verified safe, with the reason."""
    return CheckResult("unverified", False, None, None, None, None, None, None, None,
                       threshold, id, reason, tier=tier, why=why or reason,
                       action=policy.action_for(None))


def _probabilities(row: np.ndarray) -> dict[str, float]:
    return {c.name: float(p) for c, p in zip(CATEGORIES, row)}


def labelled(label: int, row: np.ndarray | None, threshold: float, id: str | None, *,
             tier: TierName, why: str, policy: Policy = DEFAULT_POLICY,
             rule_id: str | None = None, rationale: str | None = None) -> CheckResult:
    """The result for a decided ``label`` (with the model's row, if one decided)."""
    node = node_of(label)
    safe = label == SAFE_LABEL
    return CheckResult(
        decision="safe" if safe else "unsafe", safe=safe, label=label,
        label_name=LABEL_NAMES[label], node=node.number, node_title=node.title,
        p_safe=None if row is None else float(row[SAFE_LABEL]),
        probabilities=None if row is None else _probabilities(row),
        model_label=None if row is None else int(row.argmax()), threshold=threshold, id=id,
        tier=tier, why=why, rule_id=rule_id, path=node_path(label), rationale=rationale,
        action=policy.action_for(label))


def flagged(threshold: float, id: str | None, *, tier: TierName, why: str, action: str,
            p_safe: float | None = None, rationale: str | None = None) -> CheckResult:
    """Unsafe with the category unknown (a binary-only guard model said "unsafe"): the
    label fields stay None and ``action`` is the tier's configured one."""
    return CheckResult("unsafe", False, None, None, None, None, p_safe, None, None, threshold,
                       id, None, tier=tier, why=why, rationale=rationale, action=action)


def decide(probs: Sequence[float], threshold: float, id: str | None = None, *,
           tier: TierName = "model", policy: Policy = DEFAULT_POLICY,
           reason: str | None = None, rationale: str | None = None,
           note: str = "") -> CheckResult:
    """The verdict for one row of probabilities under ``threshold``.

    A row that is not a probability distribution (abstained, NaN, negative, not summing to
    1) gives an "unverified" result with ``reason``: one bad row fails closed alone.
    """
    row = np.asarray(probs, dtype=float)
    if not valid_row(row):
        return unverified(reason or "model error: no valid probabilities for this item",
                          threshold, id, tier=tier, policy=policy)
    p_safe = float(row[SAFE_LABEL])
    if p_safe < threshold:
        unsafe = row.copy()
        unsafe[SAFE_LABEL] = -1.0
        label = int(unsafe.argmax())
        why = f"P(safe) {p_safe:.3f} is below the threshold {threshold:g}"
    else:
        label = SAFE_LABEL
        why = f"P(safe) {p_safe:.3f} is at or above the threshold {threshold:g}"
    return labelled(label, row, threshold, id, tier=tier, why=why + note, policy=policy,
                    rationale=rationale)
