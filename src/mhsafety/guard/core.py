"""The guard: screen a counselling chatbot's reply before it goes out.

``Guard.load(checkpoint).check(context, response)`` gives a :class:`CheckResult`: the label,
whether the reply is safe, the node of the sequential framework that fired, the
probabilities, and a decision under an unsafe threshold (a reply is flagged unsafe when
P(safe) < threshold).

Fail closed: when the model raises, returns malformed probabilities or runs past a timeout,
the result's decision is ``"unverified"`` with the reason, and ``safe`` is False. A reply is
never reported safe without a valid model answer.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..classifiers.base import Classifier, check_probabilities, read_manifest
from ..data import Example, Turn, format_turns, load_examples, parse_turns
from ..errors import DataError, UsageError
from ..registry import load_classifier
from ..taxonomy import CATEGORIES, LABEL_NAMES, SAFE_LABEL, node_of

DEFAULT_THRESHOLD = 0.5
# Key in a checkpoint manifest's "extra" that holds the guard's default threshold.
THRESHOLD_KEY = "guard_threshold"

Decision = Literal["safe", "unsafe", "unverified"]
TurnLike = Turn | tuple[str, str] | Mapping[str, str]
ContextLike = str | Sequence[TurnLike]


@dataclass(frozen=True)
class CheckResult:
    """The guard's verdict on one reply.

    ``label`` always agrees with ``decision``: a flagged reply gets the most probable unsafe
    label even when the model's argmax (``model_label``) was Safe Response, and a reply
    passed as safe gets label 7. ``node`` is the framework node that decides ``label``.
    For ``"unverified"`` results the label fields and probabilities are None.
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

    @property
    def verified(self) -> bool:
        return self.decision != "unverified"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used by ``mhsafety check`` and the HTTP service alike."""
        return {"id": self.id, "decision": self.decision, "safe": self.safe,
                "label": self.label, "label_name": self.label_name,
                "node": None if self.node is None else {"number": self.node,
                                                        "title": self.node_title},
                "p_safe": self.p_safe, "probabilities": self.probabilities,
                "model_label": self.model_label, "threshold": self.threshold,
                "reason": self.reason}


def validate_threshold(threshold: float, what: str = "threshold") -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise UsageError(f"{what} must be a number between 0 and 1, got {threshold!r}")
    value = float(threshold)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise UsageError(f"{what} must be between 0 and 1, got {threshold!r}")
    return value


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


def normalize_context(context: ContextLike, where: str = "context") -> str:
    """The upstream context string (``[seeker]...[supporter]...``) from a string or turns.

    A string without role markers is read as one seeker turn, as the models were trained on
    marked-up contexts.
    """
    if isinstance(context, str):
        if not context.strip():
            raise UsageError(f"{where} is empty")
        return format_turns(parse_turns(context, default_role="seeker"))
    if not isinstance(context, Sequence) or isinstance(context, (bytes, bytearray)):
        raise UsageError(f"{where} must be a string or a list of turns, "
                         f"got {type(context).__name__}")
    turns = [_turn(t, f"{where} turn {i}") for i, t in enumerate(context)]
    if not any(text.strip() for _, text in turns):
        raise UsageError(f"{where} is empty")
    return format_turns(turns)


def normalize_response(response: str, where: str = "response") -> str:
    """The response with its ``[supporter]`` marker, as in the training data."""
    if not isinstance(response, str):
        raise UsageError(f"{where} must be a string, got {type(response).__name__}")
    if not response.strip():
        raise UsageError(f"{where} is empty")
    return format_turns(parse_turns(response, default_role="supporter"))


def make_example(context: ContextLike, response: str, id: str | None = None,
                 where: str = "item") -> Example:
    return Example(normalize_context(context, f"{where}: context"),
                   normalize_response(response, f"{where}: response"), None, id)


ItemLike = Example | Mapping[str, Any] | tuple[ContextLike, str]


def _example_of(item: ItemLike, index: int) -> Example:
    where = f"item {index}"
    if isinstance(item, Example):
        return make_example(item.context, item.response, item.id, where)
    if isinstance(item, Mapping):
        missing = [k for k in ("context", "response") if k not in item]
        if missing:
            raise UsageError(f"{where}: missing field '{missing[0]}'")
        item_id = item.get("id")
        return make_example(item["context"], item["response"],
                            None if item_id is None else str(item_id), where)
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return make_example(item[0], item[1], None, where)
    raise UsageError(f"{where}: expected an Example, a mapping with context/response or a "
                     f"(context, response) pair, got {type(item).__name__}")


def unverified(reason: str, threshold: float, id: str | None = None) -> CheckResult:
    """The fail-closed result: not verified safe, with the reason."""
    return CheckResult("unverified", False, None, None, None, None, None, None, None,
                       threshold, id, reason)


def decide(probs: Sequence[float], threshold: float, id: str | None = None) -> CheckResult:
    """The verdict for one row of probabilities under ``threshold``.

    A row that is not a probability distribution (NaN, negative, not summing to 1) gives
    an "unverified" result: one bad row fails closed without failing its whole batch.
    """
    row = np.asarray(probs, dtype=float)
    if (row.shape != (len(LABEL_NAMES),) or not np.all(np.isfinite(row)) or np.any(row < 0)
            or abs(row.sum() - 1.0) > 1e-4):
        return unverified("model error: no valid probabilities for this item", threshold, id)
    p_safe = float(row[SAFE_LABEL])
    model_label = int(row.argmax())
    if p_safe < threshold:
        unsafe = row.copy()
        unsafe[SAFE_LABEL] = -1.0
        label, decision = int(unsafe.argmax()), "unsafe"
    else:
        label, decision = SAFE_LABEL, "safe"
    node = node_of(label)
    return CheckResult(
        decision=decision,  # type: ignore[arg-type]
        safe=decision == "safe",
        label=label,
        label_name=LABEL_NAMES[label],
        node=node.number,
        node_title=node.title,
        p_safe=p_safe,
        probabilities={c.name: float(p) for c, p in zip(CATEGORIES, row)},
        model_label=model_label,
        threshold=threshold,
        id=id,
    )


class Guard:
    """Screens replies with any saved classifier (baseline, encoder, judge).

    ``threshold``: flag a reply unsafe when P(safe) is below it (default: the checkpoint's
    ``extra.guard_threshold``, else 0.5). ``timeout``: seconds a model call may take before
    the results become ``"unverified"`` (None: no limit).
    """

    def __init__(self, classifier: Classifier, threshold: float = DEFAULT_THRESHOLD,
                 timeout: float | None = None, checkpoint: str | None = None,
                 manifest: Mapping[str, Any] | None = None) -> None:
        self.classifier = classifier
        self.threshold = validate_threshold(threshold)
        self.timeout = timeout
        self.checkpoint = checkpoint
        self.manifest: dict[str, Any] = dict(manifest or {})
        # One long-lived worker thread, created on first use of a timeout: the model is never
        # called from two threads at once, and a timed-out call does not block the caller.
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, checkpoint_dir: str | os.PathLike[str], threshold: float | None = None,
             timeout: float | None = None) -> Guard:
        """Load any checkpoint kind through :func:`load_classifier`."""
        manifest = read_manifest(checkpoint_dir)
        classifier = load_classifier(checkpoint_dir)
        chosen = checkpoint_threshold(manifest) if threshold is None else threshold
        return cls(classifier, chosen, timeout, str(checkpoint_dir), manifest)

    @property
    def kind(self) -> str:
        return self.classifier.kind

    # ------------------------------------------------------------------ scoring

    def score(self, examples: Sequence[Example]) -> np.ndarray:
        """(n, 8) probabilities; raises when the model fails or answers in the wrong shape.

        Rows are checked one by one in :func:`decide`, so one bad row fails closed alone.
        """
        if not examples:
            return np.zeros((0, len(LABEL_NAMES)))
        with self._lock:
            probs = np.asarray(self.classifier.predict_proba(list(examples)), dtype=float)
        if probs.shape != (len(examples), len(LABEL_NAMES)):
            raise ValueError(f"expected probabilities of shape ({len(examples)}, "
                             f"{len(LABEL_NAMES)}), got {probs.shape}")
        return probs

    def _score_with_timeout(self, examples: Sequence[Example], timeout: float | None) -> np.ndarray:
        if timeout is None:
            return self.score(examples)
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="mhsafety-guard")
        future = self._executor.submit(self.score, examples)
        return future.result(timeout=timeout)

    # ------------------------------------------------------------------ checking

    def check(self, context: ContextLike, response: str, id: str | None = None,
              threshold: float | None = None) -> CheckResult:
        """Screen one reply. Bad input (empty text, a wrong type) raises UsageError."""
        return self.check_many([{"context": context, "response": response, "id": id}],
                               threshold)[0]

    def check_many(self, items: Iterable[ItemLike],
                   threshold: float | None = None) -> list[CheckResult]:
        """Screen many replies in one model call; results in input order.

        Items are Examples, mappings with ``context``/``response`` (and optional ``id``), or
        ``(context, response)`` pairs.
        """
        chosen = self.threshold if threshold is None else validate_threshold(threshold)
        examples = [_example_of(item, i) for i, item in enumerate(items)]
        return self.check_examples(examples, chosen)

    def check_examples(self, examples: Sequence[Example], threshold: float) -> list[CheckResult]:
        """Screen normalized examples; model failures give "unverified" results."""
        try:
            probs = self._score_with_timeout(examples, self.timeout)
        except concurrent.futures.TimeoutError:
            return [unverified(f"timeout: the model took longer than {self.timeout:g} s",
                               threshold, ex.id) for ex in examples]
        except Exception as exc:  # noqa: BLE001 - fail closed on any model failure
            reason = f"model error: {type(exc).__name__}: {exc}"
            return [unverified(reason, threshold, ex.id) for ex in examples]
        return [decide(row, threshold, ex.id) for ex, row in zip(examples, probs)]

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


# ---------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """A threshold chosen for a target recall of unsafe replies on a labelled file."""

    threshold: float
    target_recall: float
    unsafe_recall: float
    false_alarm_rate: float
    unsafe_precision: float
    n_items: int
    n_unsafe: int
    n_safe: int
    flagged: int
    data: str | None = None
    curve: list[dict[str, float]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rates(p_safe: np.ndarray, unsafe: np.ndarray, threshold: float) -> tuple[float, float, float, int]:
    flagged = p_safe < threshold
    n_unsafe, n_safe = int(unsafe.sum()), int((~unsafe).sum())
    tp = int((flagged & unsafe).sum())
    fp = int((flagged & ~unsafe).sum())
    recall = tp / n_unsafe if n_unsafe else 0.0
    far = fp / n_safe if n_safe else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    return recall, far, precision, int(flagged.sum())


def pick_threshold(p_safe: Sequence[float], unsafe: Sequence[bool], target_recall: float) -> float:
    """The smallest-false-alarm threshold whose unsafe recall (P(safe) < t) reaches the target.

    The threshold sits halfway between the P(safe) of the last unsafe item that must be caught
    and the next higher score, so small score jitter does not flip that item.
    """
    if not 0.0 < target_recall <= 1.0:
        raise UsageError(f"target recall must be in (0, 1], got {target_recall}")
    scores = np.asarray(p_safe, dtype=float)
    is_unsafe = np.asarray(unsafe, dtype=bool)
    unsafe_scores = np.sort(scores[is_unsafe])
    if unsafe_scores.size == 0:
        raise DataError("the calibration data has no unsafe items (labels 0..6)")
    k = math.ceil(target_recall * unsafe_scores.size - 1e-9)
    kth = unsafe_scores[max(k, 1) - 1]
    higher = scores[scores > kth]
    if higher.size:
        return float((kth + higher.min()) / 2.0)
    return float(min(1.0, np.nextafter(kth, np.inf)))


def calibrate(guard: Guard, data: str | os.PathLike[str] | Sequence[Example],
              target_recall: float) -> Calibration:
    """Pick the threshold for ``target_recall`` of unsafe replies on a labelled dataset.

    Do this on data the model was not trained on (a dev split); on the training data the
    figures are optimistic.
    """
    if isinstance(data, (str, os.PathLike)):
        examples, source = load_examples(data), str(data)
    else:
        examples, source = list(data), None
    if any(ex.label is None for ex in examples):
        raise DataError("calibration needs a label on every item")
    normalized = [make_example(ex.context, ex.response, ex.id, f"item {ex.id}")
                  for ex in examples]
    try:
        probs = check_probabilities(guard.score(normalized), len(normalized))
    except ValueError as exc:
        raise DataError(f"calibration needs valid probabilities for every item: {exc}") \
            from None
    p_safe = probs[:, SAFE_LABEL]
    unsafe = np.array([ex.label != SAFE_LABEL for ex in examples])
    if unsafe.all():
        raise DataError("the calibration data has no safe items (label 7); the false-alarm "
                        "rate cannot be measured")
    threshold = pick_threshold(p_safe, unsafe, target_recall)
    recall, far, precision, flagged = _rates(p_safe, unsafe, threshold)
    curve = []
    for t in np.linspace(0.05, 0.95, 19):
        r, f, p, _ = _rates(p_safe, unsafe, float(t))
        curve.append({"threshold": round(float(t), 2), "unsafe_recall": r,
                      "false_alarm_rate": f, "unsafe_precision": p})
    return Calibration(threshold, target_recall, recall, far, precision, len(examples),
                       int(unsafe.sum()), int((~unsafe).sum()), flagged, source, curve)


def save_threshold(checkpoint_dir: str | os.PathLike[str], threshold: float,
                   calibration: Calibration | None = None) -> Path:
    """Store ``threshold`` as the checkpoint's default (manifest extra), atomically."""
    from ..io import write_json

    manifest = read_manifest(checkpoint_dir)
    extra = dict(manifest.get("extra") or {})
    extra[THRESHOLD_KEY] = validate_threshold(threshold)
    if calibration is not None:
        extra["guard_calibration"] = {k: v for k, v in calibration.to_dict().items()
                                      if k != "curve"}
    manifest["extra"] = extra
    path = Path(checkpoint_dir) / "manifest.json"
    write_json(path, manifest)
    return path


# ---------------------------------------------------------------------- JSONL input


def read_items_jsonl(lines: Iterable[str], source: str = "<stdin>") -> list[Example]:
    """Items to screen from JSONL (``{"context": ..., "response": ..., "id"?: ...}``).

    Every line is validated before anything is screened; blank lines are skipped. Items
    without an id get their line number as id, so each output line can be traced back.
    """
    import json

    examples: list[Example] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source} line {lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: invalid JSON at column {exc.colno}: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise DataError(f"{where}: expected an object with context and response, "
                            f"got {type(obj).__name__}")
        unknown = sorted(set(obj) - {"id", "context", "response", "label"})
        if unknown:
            raise DataError(f"{where}: unknown field '{unknown[0]}' (expected id, context, "
                            "response)")
        item_id = obj.get("id", str(lineno))
        if isinstance(item_id, bool) or not isinstance(item_id, (str, int)):
            raise DataError(f"{where}: field 'id' must be a string or integer")
        for name in ("context", "response"):
            if name not in obj:
                raise DataError(f"{where}: missing field '{name}'")
        try:
            examples.append(make_example(obj["context"], obj["response"], str(item_id), where))
        except UsageError as exc:
            raise DataError(str(exc)) from None
    if not examples:
        raise DataError(f"{source}: no items (expected one JSON object per line)")
    return examples
