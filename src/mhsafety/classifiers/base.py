"""The one classifier interface: fit / predict_proba / predict / save / load.

Every system (the offline baseline, fine-tuned encoders, LLM judges) implements it, and
``train``, ``predict``, ``benchmark`` and the guard only ever see this interface. A saved
classifier is a folder with ``manifest.json``:

``{"format": "mhsafety-checkpoint", "format_version": 1, "kind": "baseline",
   "mhsafety_version": "0.1.0", "labels": {"0": "Nonsense", ...}, "config": {...},
   "train_data_sha256": "...", "created": "2026-...Z", "extra": {...}}``

``kind`` picks the class that loads the folder (see :data:`KINDS`).
"""

from __future__ import annotations

import importlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..data import Example
from ..errors import DataError, UsageError
from ..io import write_json
from ..records import PredictionRecord
from ..taxonomy import LABEL_NAMES, NUM_LABELS

MANIFEST = "manifest.json"
CHECKPOINT_FORMAT = "mhsafety-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1

# kind -> "module:Class"; imported lazily so heavy dependencies load only when used.
KINDS: dict[str, str] = {
    "baseline": "mhsafety.classifiers.baseline:BaselineClassifier",
    "encoder": "mhsafety.classifiers.encoder:EncoderClassifier",
    "judge": "mhsafety.judge.classifier:JudgeClassifier",
}


class Classifier(ABC):
    """A safety classifier over the eight labels.

    Subclasses set ``kind``, keep every setting in ``self.config`` (a JSON-able dict that
    ``save`` writes to the manifest) and implement the abstract methods.
    """

    kind: ClassVar[str] = ""
    # False for systems that never learn from examples (LLM judges): protocols then skip
    # fit and just predict every item.
    needs_training: ClassVar[bool] = True

    def __init__(self, **config: Any) -> None:
        self.config: dict[str, Any] = dict(config)
        self.train_data_sha256: str | None = None

    @abstractmethod
    def fit(self, train: Sequence[Example], dev: Sequence[Example] | None = None) -> Classifier:
        """Learn from labelled examples; ``dev`` (optional) is for model selection only."""

    @abstractmethod
    def predict_proba(self, examples: Sequence[Example]) -> np.ndarray:
        """An (n, 8) array of probabilities over labels 0..7, rows in input order."""

    def predict(self, examples: Sequence[Example]) -> np.ndarray:
        """Label ids, one per example (argmax of :meth:`predict_proba`)."""
        return np.asarray(self.predict_proba(examples)).argmax(axis=1)

    def predict_records(self, examples: Sequence[Example], system: str,
                        run: str = "0") -> list[PredictionRecord]:
        """Prediction records (the project's JSONL format) for ``examples``."""
        probs = np.asarray(self.predict_proba(examples))
        return [
            PredictionRecord(id=ex.id or str(i), gold=ex.label, pred=int(row.argmax()),
                             system=system, run=run, probs=row.tolist())
            for i, (ex, row) in enumerate(zip(examples, probs))
        ]

    @abstractmethod
    def save_state(self, directory: Path) -> None:
        """Write the model's own files into ``directory`` (the manifest is written for you)."""

    @classmethod
    @abstractmethod
    def load_state(cls, directory: Path, manifest: dict[str, Any]) -> Classifier:
        """Rebuild the classifier from ``directory`` and its manifest."""

    @classmethod
    def from_spec(cls, argument: str, seed: int = 42, **config: Any) -> Classifier:
        """Build an untrained classifier from the part of a system spec after ``kind:``."""
        if argument:
            raise UsageError(f"system {cls.kind!r} takes no argument, got {cls.kind}:{argument}")
        return cls(seed=seed, **config)

    def manifest_extra(self) -> dict[str, Any]:
        """Anything else worth keeping in the manifest (dev scores, data hashes, ...)."""
        return {}

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Save into a folder, atomically: a crash leaves any previous checkpoint intact."""
        from ..io import atomic_directory

        with atomic_directory(directory) as tmp:
            self.save_state(tmp)
            write_json(tmp / MANIFEST, self.manifest())
        return Path(directory)

    def manifest(self) -> dict[str, Any]:
        from .. import __version__

        return {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "kind": self.kind,
            "mhsafety_version": __version__,
            "labels": {str(i): name for i, name in enumerate(LABEL_NAMES)},
            "config": self.config,
            "train_data_sha256": self.train_data_sha256,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "extra": self.manifest_extra(),
        }

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Classifier:
        """Load a folder saved by :meth:`save` (of this class's kind, or any kind on the base)."""
        manifest = read_manifest(directory)
        target = classifier_class(manifest["kind"])
        if cls is not Classifier and not issubclass(target, cls):
            raise DataError(f"{directory}: is a {manifest['kind']!r} checkpoint, "
                            f"expected {cls.kind!r}")
        model = target.load_state(Path(directory), manifest)
        model.train_data_sha256 = manifest.get("train_data_sha256")
        return model


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a checkpoint folder, validated, with a one-sentence error otherwise."""
    d = Path(directory)
    if not d.exists():
        raise DataError(f"{d}: no such checkpoint folder")
    if not d.is_dir():
        raise DataError(f"{d}: is a file, expected a checkpoint folder")
    path = d / MANIFEST
    if not path.exists():
        raise DataError(f"{d}: not an mhsafety checkpoint (no {MANIFEST} in it)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DataError(f"{path}: not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"{path}: not an mhsafety checkpoint manifest")
    if manifest.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise DataError(f"{path}: checkpoint format_version {manifest.get('format_version')!r} "
                        f"is not supported (expected {CHECKPOINT_FORMAT_VERSION})")
    if manifest.get("kind") not in KINDS:
        raise DataError(f"{path}: unknown checkpoint kind {manifest.get('kind')!r}; "
                        f"expected one of {', '.join(KINDS)}")
    labels = manifest.get("labels", {})
    if labels != {str(i): name for i, name in enumerate(LABEL_NAMES)}:
        raise DataError(f"{path}: the checkpoint's label map differs from the taxonomy's")
    return manifest


def classifier_class(kind: str) -> type[Classifier]:
    """The class registered for ``kind``; a missing optional dependency is a UsageError."""
    if kind not in KINDS:
        raise UsageError(f"unknown classifier kind {kind!r}; expected one of {', '.join(KINDS)}")
    module_name, _, attr = KINDS[kind].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and not exc.name.startswith("mhsafety"):
            from ..errors import missing_extra

            extra = {"encoder": "train", "judge": "judge"}.get(kind, "all")
            raise missing_extra(exc.name, extra) from None
        raise
    return getattr(module, attr)


def create_classifier(spec: str, seed: int = 42, **config: Any) -> Classifier:
    """An untrained classifier from a system spec: ``baseline``, ``encoder:NAME_OR_PATH``,
    ``judge:...``; ``seed`` and ``config`` go to its constructor."""
    kind, _, argument = spec.partition(":")
    return classifier_class(kind).from_spec(argument, seed=seed, **config)


def load_classifier(directory: str | os.PathLike[str]) -> Classifier:
    """Load any saved classifier; its manifest says which kind it is."""
    return Classifier.load(directory)


def check_probabilities(probs: np.ndarray, n: int) -> np.ndarray:
    """Validate a predict_proba result: shape (n, 8), finite, rows summing to 1."""
    probs = np.asarray(probs, dtype=float)
    if probs.shape != (n, NUM_LABELS):
        raise ValueError(f"expected probabilities of shape ({n}, {NUM_LABELS}), got {probs.shape}")
    if not np.all(np.isfinite(probs)) or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("probabilities must be finite and each row must sum to 1")
    return probs
