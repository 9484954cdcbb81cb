"""The guard: screen a counselling chatbot's reply before it goes out.

``Guard.load(checkpoint).check(context, response)`` gives a :class:`CheckResult`. A reply
passes up to three tiers, and the result says which one decided and why:

1. **rules** (:mod:`.rules`): explicit unsafe replies (abuse, encouraging self-harm, dosing
   medication, claiming to be a human counsellor) are decided before any model runs. Rules
   only ever make a reply less safe.
2. **model**: the checkpoint's P(safe); a reply is flagged unsafe when P(safe) < threshold.
3. **escalation** (optional cascade): when the first model's P(safe) falls inside a band
   ``[low, high]``, or it could not answer, a second checkpoint (e.g. an LLM judge) decides.

Every result also carries the node path of the sequential framework, the policy's action
(:mod:`.policy`) and, where the backend gives one, a short rationale.

Fail closed: when the model raises, abstains, returns malformed probabilities or runs past a
timeout, the result's decision is ``"unverified"`` with the reason, and ``safe`` is False. A
reply is never reported safe without a valid model answer.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from ..classifiers.base import Classifier, Predictions, read_manifest
from ..data import Example, Turn, format_turns
from ..errors import DataError, UsageError
from ..registry import load_classifier
from ..taxonomy import CATEGORIES, LABEL_NAMES, NODES, SAFE_LABEL, category, node_of
from .policy import DEFAULT_POLICY, Policy
from .rules import RuleHit, RuleSet, default_rules

DEFAULT_THRESHOLD = 0.5
# The config key of a backend's resumable work folder (see ModelTier._private_work_dir).
WORK_DIR_KEY = "work_dir"
# Key in a checkpoint manifest's "extra" that holds the guard's default threshold.
THRESHOLD_KEY = "guard_threshold"

Decision = Literal["safe", "unsafe", "unverified"]
TierName = Literal["rules", "model", "escalation"]
TurnLike = Turn | tuple[str, str] | Mapping[str, str]
ContextLike = str | Sequence[TurnLike]


# ---------------------------------------------------------------------- abstention

def predictions_of(classifier: Classifier, examples: Sequence[Example]) -> Predictions:
    """The classifier's predictions for ``examples`` (abstained rows say why)."""
    return classifier.predictions(list(examples))


def _failed(examples: Sequence[Example], reason: str) -> Predictions:
    """Predictions in which every item abstained with ``reason`` (a failed model call)."""

    n = len(examples)
    return Predictions(np.full((n, len(LABEL_NAMES)), np.nan), (reason,) * n)


def _valid_row(row: np.ndarray) -> bool:
    return bool(row.shape == (len(LABEL_NAMES),) and np.all(np.isfinite(row))
                and np.all(row >= 0) and abs(row.sum() - 1.0) <= 1e-4)


# ---------------------------------------------------------------------- results

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
    passed as safe gets label 7. ``node`` is the framework node that decides ``label`` and
    ``path`` the walk to it. ``tier`` says who decided (``rules``, ``model`` or
    ``escalation``) and ``why`` how; ``action`` is the policy's answer for the label (or for
    ``unverified``). For ``"unverified"`` results the label fields are None and ``reason``
    says why; probabilities are those of the deciding model, None when it gave none.
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


# ---------------------------------------------------------------------- input

def _turn(value: Any, where: str) -> tuple[str, str]:
    if isinstance(value, Turn):
        return value.role, value.text
    if isinstance(value, Mapping):
        role, text = value.get("role"), value.get("text")
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        role, text = value
    else:
        raise UsageError(f"{where}: a turn must be a {{'role', 'text'}} object or a "
                         f"(role, text) pair, got {type(value).__name__}")
    if role not in ("seeker", "supporter"):
        raise UsageError(f"{where}: a turn's role must be 'seeker' or 'supporter', got {role!r}")
    if not isinstance(text, str):
        raise UsageError(f"{where}: a turn's text must be a string, got {type(text).__name__}")
    return role, text


def context_text(context: Any, where: str = "context") -> Any:
    """A context given as a list of turns, as the upstream marker string; anything else
    unchanged (the data module's reader validates it)."""
    if isinstance(context, (str, bytes, bytearray)) or not isinstance(context, Sequence):
        return context
    return format_turns([_turn(t, f"{where} turn {i}") for i, t in enumerate(context)])


def item_dict(item: Any, where: str) -> Any:
    """One item (Example, mapping or (context, response) pair) as the reader's raw object."""
    if isinstance(item, Example):
        obj: dict[str, Any] = {"context": item.context, "response": item.response}
        if item.id is not None:
            obj["id"] = item.id
        return obj
    if isinstance(item, Mapping):
        obj = {k: v for k, v in item.items() if not (k == "id" and v is None)}
        if "context" in obj:
            obj["context"] = context_text(obj["context"], f"{where}: context")
        return obj
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return {"context": context_text(item[0], f"{where}: context"), "response": item[1]}
    raise UsageError(f"{where}: expected an Example, a mapping with context/response or a "
                     f"(context, response) pair, got {type(item).__name__}")


def examples_of(items: Iterable[Any], source: str = "input") -> list[Example]:
    """Validated examples through the data module's one reader (ids, leniency, messages)."""
    from ..data import examples_from_items

    raw = [item_dict(item, f"{source} item {i}") for i, item in enumerate(items)]
    try:
        return examples_from_items(raw, source, require_label=False)
    except DataError as exc:
        raise UsageError(str(exc)) from None


def make_example(context: ContextLike, response: str, id: str | None = None,
                 where: str = "input") -> Example:
    obj: dict[str, Any] = {"context": context, "response": response}
    if id is not None:
        obj["id"] = id
    return examples_of([obj], where)[0]


ItemLike = Example | Mapping[str, Any] | tuple[ContextLike, str]


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


def decide(probs: Sequence[float], threshold: float, id: str | None = None, *,
           tier: TierName = "model", policy: Policy = DEFAULT_POLICY,
           reason: str | None = None, rationale: str | None = None,
           note: str = "") -> CheckResult:
    """The verdict for one row of probabilities under ``threshold``.

    A row that is not a probability distribution (abstained, NaN, negative, not summing to
    1) gives an "unverified" result with ``reason``: one bad row fails closed alone.
    """
    row = np.asarray(probs, dtype=float)
    if not _valid_row(row):
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


def rule_result(hit: RuleHit, threshold: float, id: str | None,
                policy: Policy = DEFAULT_POLICY) -> CheckResult:
    return labelled(hit.label, None, threshold, id, tier="rules", rule_id=hit.rule.id,
                    why=f"rule {hit.rule.id} matched {hit.matched!r}", policy=policy)


def _rationale(preds: Any, i: int) -> str | None:
    rationales = getattr(preds, "rationales", None)
    return None if not rationales else rationales[i]


# ---------------------------------------------------------------------- model tiers

class ModelTier:
    """One checkpoint behind the guard: its classifier, threshold and timeout.

    The model is never called from two threads at once; with a timeout, calls run on one
    long-lived worker thread so a timed-out call does not block the caller.
    """

    def __init__(self, classifier: Classifier, threshold: float = DEFAULT_THRESHOLD,
                 timeout: float | None = None, checkpoint: str | None = None,
                 manifest: Mapping[str, Any] | None = None) -> None:
        self.classifier = classifier
        self.threshold = validate_threshold(threshold)
        self.timeout = timeout
        self.checkpoint = checkpoint
        self.manifest: dict[str, Any] = dict(manifest or {})
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, checkpoint_dir: str | os.PathLike[str], threshold: float | None = None,
             timeout: float | None = None) -> ModelTier:
        manifest = read_manifest(checkpoint_dir)
        classifier = load_classifier(checkpoint_dir)
        chosen = checkpoint_threshold(manifest) if threshold is None else threshold
        return cls(classifier, chosen, timeout, str(checkpoint_dir), manifest)

    @property
    def kind(self) -> str:
        return self.classifier.kind

    def predictions(self, examples: Sequence[Example]) -> Any:
        """The model's predictions; raises when it fails or answers in the wrong shape."""
        if not examples:
            return Predictions(np.zeros((0, len(LABEL_NAMES))), ())
        # Requests batched together may repeat ids (every single-item request is item "0");
        # the model sees positions instead, and results keep the callers' ids.
        batch = [replace(ex, id=str(i)) for i, ex in enumerate(examples)]
        with self._lock, self._private_work_dir():
            preds = predictions_of(self.classifier, batch)
        if np.asarray(preds.probs).shape != (len(examples), len(LABEL_NAMES)):
            raise ValueError(f"expected probabilities of shape ({len(examples)}, "
                             f"{len(LABEL_NAMES)}), got {np.asarray(preds.probs).shape}")
        return preds

    @contextlib.contextmanager
    def _private_work_dir(self) -> Iterator[None]:
        """A backend that keeps a resumable work folder (an LLM judge's answer log) gets a
        private temporary one per call, removed afterwards: a guard must not keep the
        dialogues it screens on disk, and a screened item must never be answered from an
        earlier call's log."""
        if WORK_DIR_KEY not in getattr(type(self.classifier), "extra_config", ()):
            yield
            return
        previous = self.classifier.config.get(WORK_DIR_KEY)
        folder = tempfile.mkdtemp(prefix="mhsafety-guard-")
        self.classifier.config[WORK_DIR_KEY] = folder
        try:
            yield
        finally:
            if previous is None:
                self.classifier.config.pop(WORK_DIR_KEY, None)
            else:
                self.classifier.config[WORK_DIR_KEY] = previous
            shutil.rmtree(folder, ignore_errors=True)

    def safe_predictions(self, examples: Sequence[Example]) -> Any:
        """Like :meth:`predictions` but never raises: a failed or timed-out call gives
        predictions in which every item abstained with the reason."""
        try:
            if self.timeout is None:
                return self.predictions(examples)
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="mhsafety-guard")
            return self._executor.submit(self.predictions, examples).result(self.timeout)
        except concurrent.futures.TimeoutError:
            return _failed(examples, f"timeout: the model took longer than {self.timeout:g} s")
        except Exception as exc:  # noqa: BLE001 - fail closed on any model failure
            return _failed(examples, f"model error: {type(exc).__name__}: {exc}")

    def readiness(self) -> tuple[bool, str | None]:
        """Whether the model can answer now. A backend with its own ``readiness()`` is asked;
        one configured with a ``base_url`` (an LLM judge) must accept a TCP connection
        there; a local model is ready once loaded. Nothing is sent to the server."""
        probe = getattr(self.classifier, "readiness", None)
        try:
            if probe is not None:
                return probe()
            base_url = self.classifier.config.get("base_url")
            return (True, None) if not base_url else reachable(str(base_url))
        except Exception as exc:  # noqa: BLE001 - not ready, with the exception's type
            return False, f"readiness check failed: {type(exc).__name__}"

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def reachable(base_url: str, timeout: float = 2.0) -> tuple[bool, str | None]:
    """Whether the server of ``base_url`` accepts a TCP connection (its host and port only)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not parts.hostname:
        return False, "the backend's base URL has no host"
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True, None
    except OSError as exc:
        return False, (f"the backend server at {parts.hostname}:{port} is unreachable "
                       f"({exc.strerror or type(exc).__name__})")


@dataclass
class Plan:
    """The decisions of one batch so far: results by index, and who goes to the next tier."""

    examples: list[Example]
    # A per-call threshold for every tier; None: each tier's own.
    override: float | None
    results: list[CheckResult | None] = field(default_factory=list)
    to_model: list[int] = field(default_factory=list)
    to_escalate: list[int] = field(default_factory=list)
    # Why each escalated item went up (index -> text), for the escalation result's "why".
    escalated_why: dict[int, str] = field(default_factory=dict)

    def done(self) -> list[CheckResult]:
        assert all(r is not None for r in self.results)
        return list(self.results)  # type: ignore[arg-type]


class Guard:
    """Screens replies with any saved classifier (baseline, encoder, judge).

    ``threshold``: flag a reply unsafe when P(safe) is below it (default: the checkpoint's
    ``extra.guard_threshold``, else 0.5). ``timeout``: seconds a model call may take before
    the results become ``"unverified"`` (None: no limit). ``rules``: the rule tier (default:
    the shipped rules; :data:`~mhsafety.guard.rules.NO_RULES` turns it off). ``policy``: the
    action for each category. ``escalate_to`` and ``band``: a second tier that decides the
    items whose first-tier P(safe) lies inside ``band`` (or that the first could not judge).
    """

    def __init__(self, classifier: Classifier | ModelTier, threshold: float = DEFAULT_THRESHOLD,
                 timeout: float | None = None, checkpoint: str | None = None,
                 manifest: Mapping[str, Any] | None = None, *, rules: RuleSet | None = None,
                 policy: Policy | None = None, escalate_to: ModelTier | None = None,
                 band: Sequence[float] | str | None = None) -> None:
        self.first = classifier if isinstance(classifier, ModelTier) else ModelTier(
            classifier, threshold, timeout, checkpoint, manifest)
        self.rules = default_rules() if rules is None else rules
        self.policy = policy or DEFAULT_POLICY
        if (escalate_to is None) != (band is None):
            raise UsageError("a cascade needs both a second checkpoint and a band "
                             "(--escalate-to DIR --band LOW,HIGH)")
        self.second = escalate_to
        self.band = None if band is None else validate_band(band)

    @classmethod
    def load(cls, checkpoint_dir: str | os.PathLike[str], threshold: float | None = None,
             timeout: float | None = None, *, rules: RuleSet | None = None,
             policy: Policy | None = None,
             escalate_to: str | os.PathLike[str] | ModelTier | None = None,
             band: Sequence[float] | str | None = None,
             escalate_threshold: float | None = None) -> Guard:
        """Load any checkpoint kind (and the cascade's second, if given)."""
        second = escalate_to
        if escalate_to is not None and not isinstance(escalate_to, ModelTier):
            second = ModelTier.load(escalate_to, escalate_threshold, timeout)
        return cls(ModelTier.load(checkpoint_dir, threshold, timeout), rules=rules,
                   policy=policy, escalate_to=second, band=band)  # type: ignore[arg-type]

    # The first tier's attributes, as before the cascade existed.
    @property
    def classifier(self) -> Classifier:
        return self.first.classifier

    @property
    def threshold(self) -> float:
        return self.first.threshold

    @property
    def timeout(self) -> float | None:
        return self.first.timeout

    @property
    def checkpoint(self) -> str | None:
        return self.first.checkpoint

    @property
    def manifest(self) -> dict[str, Any]:
        return self.first.manifest

    @property
    def kind(self) -> str:
        return self.first.kind

    def tiers(self) -> list[ModelTier]:
        return [self.first] + ([self.second] if self.second is not None else [])

    def describe(self) -> dict[str, Any]:
        """What this guard is made of (for /healthz, logs and reports; no text)."""
        return {"kind": self.kind, "threshold": self.threshold, "rules": len(self.rules),
                "rules_source": self.rules.source, "policy": self.policy.source,
                "escalation": None if self.second is None else {
                    "kind": self.second.kind, "threshold": self.second.threshold,
                    "band": list(self.band or ())}}

    # ------------------------------------------------------------------ the steps

    def plan(self, examples: Sequence[Example], threshold: float | None = None) -> Plan:
        """Step 1, the rule tier: decide what the rules catch; the rest go to the model.

        ``threshold`` overrides every tier's own threshold for this call."""
        override = None if threshold is None else validate_threshold(threshold)
        plan = Plan(list(examples), override, [None] * len(examples))
        shown = self.threshold if override is None else override
        for i, (ex, hit) in enumerate(zip(examples, self.rules.match_examples(examples))):
            if hit is not None:
                plan.results[i] = rule_result(hit, shown, ex.id, self.policy)
            else:
                plan.to_model.append(i)
        return plan

    def apply_first(self, plan: Plan, preds: Any) -> Plan:
        """Step 2: the first model's verdicts; items inside the band (or that it could not
        judge) are marked for escalation when there is a second tier."""
        probs = np.asarray(preds.probs, dtype=float)
        for j, i in enumerate(plan.to_model):
            ex, row = plan.examples[i], probs[j]
            if self.second is not None and self.band is not None:
                low, high = self.band
                if not _valid_row(row):
                    plan.to_escalate.append(i)
                    plan.escalated_why[i] = (f"the first tier gave no answer "
                                             f"({preds.reasons[j] or 'no answer'})")
                    continue
                p_safe = float(row[SAFE_LABEL])
                if low <= p_safe <= high:
                    plan.to_escalate.append(i)
                    plan.escalated_why[i] = (f"first-tier P(safe) {p_safe:.3f} is inside "
                                             f"the band [{low:g}, {high:g}]")
                    continue
                note = f" (outside the escalation band [{low:g}, {high:g}])"
            else:
                note = ""
            threshold = self.threshold if plan.override is None else plan.override
            plan.results[i] = decide(row, threshold, ex.id, policy=self.policy,
                                     reason=preds.reasons[j], note=note,
                                     rationale=_rationale(preds, j))
        return plan

    def apply_second(self, plan: Plan, preds: Any) -> Plan:
        """Step 3: the second tier's verdicts on the escalated items."""
        assert self.second is not None
        probs = np.asarray(preds.probs, dtype=float)
        threshold = self.second.threshold if plan.override is None else plan.override
        for j, i in enumerate(plan.to_escalate):
            ex = plan.examples[i]
            escalated = f"escalated: {plan.escalated_why[i]}"
            result = decide(probs[j], threshold, ex.id, tier="escalation", policy=self.policy,
                            reason=f"escalation tier: {preds.reasons[j] or 'no answer'}",
                            rationale=_rationale(preds, j))
            plan.results[i] = replace(result, why=f"{escalated}; {result.why}")
        return plan

    # ------------------------------------------------------------------ checking

    def check(self, context: ContextLike, response: str, id: str | None = None,
              threshold: float | None = None) -> CheckResult:
        """Screen one reply. Bad input (empty text, a wrong type) raises UsageError."""
        return self.check_examples([make_example(context, response, id)], threshold)[0]

    def check_many(self, items: Iterable[ItemLike],
                   threshold: float | None = None) -> list[CheckResult]:
        """Screen many replies; results in input order.

        Items are Examples, mappings with ``context``/``response`` (and optional ``id``), or
        ``(context, response)`` pairs; they are read as the data module reads a file.
        """
        return self.check_examples(examples_of(items), threshold)

    def check_examples(self, examples: Sequence[Example],
                       threshold: float | None = None) -> list[CheckResult]:
        """Screen validated examples through every tier; failures give "unverified"."""
        plan = self.plan(examples, threshold)
        first_items = [plan.examples[i] for i in plan.to_model]
        self.apply_first(plan, self.first.safe_predictions(first_items))
        if plan.to_escalate:
            assert self.second is not None
            second_items = [plan.examples[i] for i in plan.to_escalate]
            self.apply_second(plan, self.second.safe_predictions(second_items))
        return plan.done()

    def close(self) -> None:
        for tier in self.tiers():
            tier.close()


def build_guard(checkpoint: str | os.PathLike[str], threshold: float | None = None, *,
                timeout: float | None = None, rules: str | os.PathLike[str] | None = None,
                default_rules_on: bool = True, use_rules: bool = True,
                policy: str | os.PathLike[str] | None = None,
                escalate_to: str | os.PathLike[str] | None = None,
                band: Sequence[float] | str | None = None,
                escalate_threshold: float | None = None,
                runtime: str | None = None) -> Guard:
    """A guard from file paths (what ``check`` and ``serve`` are given): the checkpoint,
    a rule file (added to the defaults unless ``default_rules_on`` is False;
    ``use_rules=False`` turns the rule tier off), a policy file and a cascade's second
    checkpoint with its band. ``runtime`` (``auto``, ``torch``, ``onnx``) sets the encoder
    tiers' prediction runtime; None keeps each checkpoint's own setting."""
    from .policy import load_policy
    from .rules import NO_RULES, load_rules

    if not use_rules and rules is not None:
        raise UsageError("--no-rules turns the rule tier off; it cannot be combined with "
                         "--rules FILE")
    if (escalate_to is None) != (band is None):
        raise UsageError("a cascade needs both --escalate-to DIR and --band LOW,HIGH")
    rule_set = load_rules(rules, use_defaults=default_rules_on) if use_rules else NO_RULES
    guard = Guard.load(checkpoint, threshold, timeout, rules=rule_set,
                       policy=load_policy(policy), escalate_to=escalate_to, band=band,
                       escalate_threshold=escalate_threshold)
    if runtime is not None:
        encoders = [tier for tier in guard.tiers() if tier.kind == "encoder"]
        if not encoders:
            raise UsageError("--runtime applies to encoder checkpoints only")
        for tier in encoders:
            tier.classifier.config["runtime"] = runtime
            tier.classifier.runtime()  # refuse now (onnx asked, none exported), not per request
    return guard

