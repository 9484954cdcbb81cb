"""The model tier: any saved classifier's P(safe) under a threshold.

With a ``band`` (a cascade, see :mod:`.escalate`), replies whose P(safe) lies inside it, or
that the model could not judge, are passed on to the escalation tier instead of decided.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ...classifiers.base import Classifier, Predictions, read_manifest
from ...data import Example
from ...errors import UsageError
from ...registry import load_classifier
from ...taxonomy import LABEL_NAMES, SAFE_LABEL
from ..policy import DEFAULT_POLICY, Policy
from ..results import (
    DEFAULT_THRESHOLD,
    checkpoint_threshold,
    decide,
    failed_predictions,
    flagged,
    labelled,
    rationale_of,
    valid_row,
    validate_band,
    validate_threshold,
)
from .base import Outcome, Pass, Pending, TierBase


class ModelTier(TierBase):
    """One checkpoint behind the guard: its classifier, threshold and timeout.

    The model is never called from two threads at once; with a timeout, calls run on one
    long-lived worker thread so a timed-out call does not block the caller.
    """

    batched = True

    def __init__(self, classifier: Classifier, threshold: float = DEFAULT_THRESHOLD,
                 timeout: float | None = None, checkpoint: str | None = None,
                 manifest: Mapping[str, Any] | None = None, *,
                 band: Sequence[float] | str | None = None,
                 policy: Policy = DEFAULT_POLICY, name: str = "model") -> None:
        self.classifier = classifier
        self.threshold = validate_threshold(threshold)
        self.timeout = timeout
        self.checkpoint = checkpoint
        self.manifest: dict[str, Any] = dict(manifest or {})
        self.band = None if band is None else validate_band(band)
        self.policy = policy
        self.name = name
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, checkpoint_dir: str | os.PathLike[str], threshold: float | None = None,
             timeout: float | None = None, *, runtime: str | None = None,
             **options: Any) -> ModelTier:
        """Load any checkpoint kind; ``threshold`` None: the checkpoint's own, else 0.5.
        ``runtime`` (encoders only) sets the prediction runtime, refused now when it
        cannot apply rather than on every request."""
        manifest = read_manifest(checkpoint_dir)
        classifier = load_classifier(checkpoint_dir)
        if runtime is not None:
            if classifier.kind != "encoder":
                raise UsageError("runtime applies to encoder checkpoints only")
            classifier = classifier.with_settings(runtime=runtime)
            classifier.runtime()  # type: ignore[attr-defined]
        chosen = checkpoint_threshold(manifest) if threshold is None else threshold
        return cls(classifier, chosen, timeout, str(checkpoint_dir), manifest, **options)

    @property
    def kind(self) -> str:
        return self.classifier.kind

    # ------------------------------------------------------------------ the model call

    def predictions(self, examples: Sequence[Example]) -> Predictions:
        """The model's predictions; raises when it fails or answers in the wrong shape."""
        if not examples:
            return Predictions(np.zeros((0, len(LABEL_NAMES))), ())
        # Requests batched together may repeat ids (every single-item request is item "0");
        # the model sees positions instead, and results keep the callers' ids.
        batch = [replace(ex, id=str(i)) for i, ex in enumerate(examples)]
        with self._lock:  # a loaded judge asks in memory: nothing is written
            preds = self.classifier.predictions(batch)
        if np.asarray(preds.probs).shape != (len(examples), len(LABEL_NAMES)):
            raise ValueError(f"expected probabilities of shape ({len(examples)}, "
                             f"{len(LABEL_NAMES)}), got {np.asarray(preds.probs).shape}")
        return preds

    def safe_predictions(self, examples: Sequence[Example]) -> Predictions:
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
            return failed_predictions(
                len(examples), f"timeout: the model took longer than {self.timeout:g} s")
        except Exception as exc:  # noqa: BLE001 - fail closed on any model failure
            return failed_predictions(len(examples),
                                      f"model error: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ the tier

    def screen(self, items: Sequence[Pending]) -> list[Outcome]:
        return self.outcomes(items, self.safe_predictions([item.example for item in items]))

    def fail(self, items: Sequence[Pending], reason: str) -> list[Outcome]:
        return self.outcomes(items, failed_predictions(len(items), reason))

    def outcomes(self, items: Sequence[Pending], preds: Any) -> list[Outcome]:
        """Each item's verdict from the model's answer (with a band: in-band or unanswered
        items are passed on)."""
        probs = np.asarray(preds.probs, dtype=float)
        out: list[Outcome] = []
        for j, item in enumerate(items):
            row, note = probs[j], ""
            if not valid_row(row) and _binary_answer(preds, j) is not None:
                out.append(self.binary_outcome(item, preds, j))
                continue
            if self.band is not None:
                low, high = self.band
                if not valid_row(row):
                    out.append(Pass(f"the first tier gave no answer "
                                    f"({preds.reasons[j] or 'no answer'})"))
                    continue
                p_safe = float(row[SAFE_LABEL])
                if low <= p_safe <= high:
                    out.append(Pass(f"first-tier P(safe) {p_safe:.3f} is inside the band "
                                    f"[{low:g}, {high:g}]"))
                    continue
                note = f" (outside the escalation band [{low:g}, {high:g}])"
            threshold = self.threshold if item.threshold is None else item.threshold
            out.append(decide(row, threshold, item.example.id, tier=self.name,
                              policy=self.policy, reason=preds.reasons[j], note=note,
                              rationale=rationale_of(preds, j)))
        return out

    @property
    def unsafe_action(self) -> str:
        """What a binary-only "unsafe" does: the kind's ``unsafe_action`` setting (guard
        models), else what the policy does with an unknown category."""
        settings = getattr(self.classifier, "settings", None)
        return getattr(settings, "unsafe_action", None) or self.policy.action_for(None)

    def binary_outcome(self, item: Pending, preds: Any, j: int) -> Outcome:
        """The verdict from a safe/unsafe answer that names no label (a general guard
        model): "unsafe" is flagged with the category unknown and :attr:`unsafe_action`;
        with the model's P(unsafe) (from log-probabilities) the threshold decides on
        P(safe) = 1 - P(unsafe), and a band passes in-band items on as for any row."""
        threshold = self.threshold if item.threshold is None else item.threshold
        said_unsafe, p_unsafe = _binary_answer(preds, j)  # type: ignore[misc]
        p_safe = None if p_unsafe is None else 1.0 - p_unsafe
        if self.band is not None and p_safe is not None:
            low, high = self.band
            if low <= p_safe <= high:
                return Pass(f"first-tier P(safe) {p_safe:.3f} is inside the band "
                            f"[{low:g}, {high:g}]")
        if p_safe is not None:
            unsafe = p_safe < threshold
            why = (f"P(safe) {p_safe:.3f} (1 - the model's P(unsafe)) is "
                   f"{'below' if unsafe else 'at or above'} the threshold {threshold:g}")
        else:
            unsafe = said_unsafe
            why = f"the {self.kind} model said {'unsafe' if unsafe else 'safe'}"
        if unsafe:
            return flagged(threshold, item.example.id, tier=self.name,
                           why=why + " (it names no category)", action=self.unsafe_action,
                           p_safe=p_safe, rationale=rationale_of(preds, j))
        return labelled(SAFE_LABEL, None, threshold, item.example.id, tier=self.name, why=why,
                        policy=self.policy, rationale=rationale_of(preds, j))

    def describe(self) -> dict[str, Any]:
        return {"tier": self.name, "kind": self.kind, "threshold": self.threshold,
                "band": None if self.band is None else list(self.band)}

    def readiness(self) -> tuple[bool, str | None]:
        """Whether the model can answer now. A backend with its own ``readiness()`` is asked;
        one configured with a ``base_url`` (an LLM judge) must accept a TCP connection
        there; a local model is ready once loaded. Nothing is sent to the server."""
        probe = getattr(self.classifier, "readiness", None)
        try:
            if probe is not None:
                return probe()
            base_url = getattr(self.classifier.settings, "base_url", None)
            return (True, None) if not base_url else reachable(str(base_url))
        except Exception as exc:  # noqa: BLE001 - not ready, with the exception's type
            return False, f"readiness check failed: {type(exc).__name__}"

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _binary_answer(preds: Any, j: int) -> tuple[bool, float | None] | None:
    """Row ``j``'s safe/unsafe answer and P(unsafe) when the predictions carry a binary
    view and the row answered on it (None otherwise)."""
    unsafe = getattr(preds, "unsafe", None)
    if unsafe is None or np.isnan(unsafe[j]):
        return None
    p = getattr(preds, "p_unsafe", None)
    p_unsafe = None if p is None or np.isnan(p[j]) else float(p[j])
    return bool(unsafe[j] > 0.5), p_unsafe


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
