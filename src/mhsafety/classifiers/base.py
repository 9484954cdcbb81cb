"""The one classifier interface: fit / predict_proba / predict / save / load.

Every system (the offline baseline, fine-tuned encoders, LLM judges) implements it, and
``train``, ``predict``, ``benchmark`` and the guard only ever see this interface. A saved
classifier is a folder with ``manifest.json``:

``{"format": "mhsafety-checkpoint", "format_version": 1, "kind": "baseline",
   "mhsafety_version": "0.1.0", "labels": {"0": "Nonsense", ...}, "config": {...},
   "train_data_sha256": "...", "created": "2026-...Z", "extra": {...}}``

``kind`` picks the class that loads the folder (see :data:`mhsafety.registry.KINDS`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..data import FINGERPRINT_VERSION, Example
from ..errors import DataError, UsageError
from ..io import write_json
from ..records import PredictionRecord
from ..settings import DEFAULT_SEED, Settings, SettingsError, build
from ..taxonomy import LABEL_NAMES, NUM_LABELS

MANIFEST = "manifest.json"
CHECKPOINT_FORMAT = "mhsafety-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1

NO_ANSWER = "no answer"


# The reason an answered row of a binary-only answer has no eight-label row: the model said
# safe or unsafe but named no taxonomy label (a general guard model's "unsafe").
BINARY_ONLY = "binary-only answer: the model names no taxonomy label"


@dataclass(frozen=True)
class Predictions:
    """A classifier's answers: an (n, 8) probability array whose NaN rows mark abstentions,
    and for each row why it has no answer (None for valid rows).

    The binary view (safe/unsafe), optional: ``unsafe`` holds each row's own verdict
    (1.0 unsafe, 0.0 safe, NaN no answer) and ``p_unsafe`` P(unsafe) where the model gave
    one (NaN elsewhere). Classifiers over the eight labels leave both None and the view is
    read from ``probs`` (:attr:`binary`, :attr:`unsafe_probability`). Guard models that know
    "unsafe" but not which label set them: a row answered on the binary view only is NaN in
    ``probs`` with the reason :data:`BINARY_ONLY`, so the eight-label view calls it no
    answer (never a guessed label) while the binary view scores it. ``meta`` keeps per-row
    extras for the records (refusal, the model's own categories, its reasoning).
    """

    probs: np.ndarray
    reasons: tuple[str | None, ...]
    unsafe: np.ndarray | None = None
    p_unsafe: np.ndarray | None = None
    meta: tuple[dict[str, Any], ...] | None = None

    def __post_init__(self) -> None:
        if len(self.reasons) != len(self.probs):
            raise ValueError(f"{len(self.reasons)} reasons for {len(self.probs)} rows")
        for name in ("unsafe", "p_unsafe", "meta"):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.probs):
                raise ValueError(f"{len(value)} {name} values for {len(self.probs)} rows")

    @property
    def binary(self) -> np.ndarray:
        """Each row's safe/unsafe answer: 1 unsafe, 0 safe, -1 no answer. From ``unsafe``
        when given, else from the eight-label argmax (every label but Safe Response is
        unsafe)."""
        from ..taxonomy import SAFE_LABEL

        if self.unsafe is not None:
            u = np.asarray(self.unsafe, dtype=float)
            return np.where(np.isnan(u), -1, (u > 0.5).astype(int)).astype(int)
        labels = self.labels
        return np.where(labels < 0, -1, (labels != SAFE_LABEL).astype(int)).astype(int)

    @property
    def unsafe_probability(self) -> np.ndarray:
        """P(unsafe) per row, NaN where there is none: ``p_unsafe`` when the binary view is
        given (a guard model's, from log-probabilities only), else 1 - P(Safe)."""
        if self.unsafe is not None:
            if self.p_unsafe is None:
                return np.full(len(self.probs), np.nan)
            return np.asarray(self.p_unsafe, dtype=float)
        return 1.0 - self.p_safe

    @property
    def binary_reasons(self) -> tuple[str | None, ...]:
        """Why each row has no binary answer (None where it has one)."""
        return tuple(None if b >= 0 else (why or NO_ANSWER)
                     for b, why in zip(self.binary, self.reasons))

    @classmethod
    def from_probs(cls, probs: np.ndarray, reasons: Sequence[str | None] | None = None,
                   default_reason: str = NO_ANSWER) -> Predictions:
        """Wrap a probability array; abstained rows without a given reason get the default."""
        probs = np.asarray(probs, dtype=float)
        valid = ~np.isnan(probs).any(axis=1) if probs.size else np.ones(len(probs), bool)
        given = list(reasons) if reasons is not None else [None] * len(probs)
        out = tuple(None if ok else (why or default_reason) for ok, why in zip(valid, given))
        return cls(probs, out)

    @property
    def valid(self) -> np.ndarray:
        """True where the classifier answered."""
        if not len(self.probs):
            return np.zeros(0, dtype=bool)
        return ~np.isnan(self.probs).any(axis=1)

    @property
    def labels(self) -> np.ndarray:
        """The argmax label of each answered row, -1 where it abstained."""
        out = np.full(len(self.probs), -1, dtype=int)
        ok = self.valid
        if ok.any():
            out[ok] = self.probs[ok].argmax(axis=1)
        return out

    @property
    def p_safe(self) -> np.ndarray:
        """P(Safe) per row, NaN where it abstained."""
        from ..taxonomy import SAFE_LABEL

        if not len(self.probs):
            return np.zeros(0)
        return self.probs[:, SAFE_LABEL].astype(float)

    def __len__(self) -> int:
        return len(self.probs)

    def records(self, examples: Sequence[Example], system: str,
                run: str = "0") -> list[PredictionRecord]:
        """Prediction records for ``examples`` (abstained: pred null, error = reason)."""
        labels = self.labels
        if self.unsafe is None:
            return [
                PredictionRecord(id=ex.id or str(i), gold=ex.label,
                                 pred=int(label) if label >= 0 else None, system=system,
                                 run=run, probs=row.tolist() if label >= 0 else None,
                                 error=why)
                for i, (ex, row, label, why) in enumerate(zip(examples, self.probs, labels,
                                                              self.reasons))
            ]
        # With a binary view: the record's ``unsafe`` and ``p_unsafe`` fields (records.py);
        # a binary-only answer is pred null with no error, an abstention keeps its reason.
        out = []
        binary = self.binary
        for i, ex in enumerate(examples):
            label, said = int(labels[i]), int(binary[i])
            p = None if self.p_unsafe is None or np.isnan(self.p_unsafe[i]) \
                else float(self.p_unsafe[i])
            out.append(PredictionRecord(
                id=ex.id or str(i), gold=ex.label, pred=label if label >= 0 else None,
                system=system, run=run, probs=self.probs[i].tolist() if label >= 0 else None,
                error=None if said >= 0 else (self.reasons[i] or NO_ANSWER),
                unsafe=None if said < 0 else bool(said), p_unsafe=p,
                meta=dict(self.meta[i]) if self.meta is not None else {}))
        return out


class Classifier(ABC):
    """A safety classifier over the eight labels.

    Subclasses set ``kind`` and ``config_class`` (their :class:`~mhsafety.settings.Settings`
    dataclass) and implement the abstract methods. A classifier's settings are one frozen
    object, :attr:`settings`; :meth:`with_settings` returns a copy with some changed, and
    ``save`` writes them to the manifest's ``config``.
    """

    kind: ClassVar[str] = ""
    # The settings dataclass (see mhsafety.settings) whose fields are this kind's settings;
    # the registry checks --config KEY=VALUE against it. ``extra_config`` names keys the
    # class takes beyond those fields (a judge's work folder, say), kept in ``self.extras``.
    config_class: ClassVar[type[Settings] | None] = None
    extra_config: ClassVar[frozenset[str]] = frozenset()
    # False for systems that never learn from examples (LLM judges): protocols then skip
    # fit and just predict every item.
    needs_training: ClassVar[bool] = True
    # Fewer labelled training items than this is refused in one sentence before fitting.
    min_train_items: ClassVar[int] = 2
    # Note codes (mhsafety.records) every benchmark row of this kind carries: how its design
    # was chosen, when that flatters it on some data.
    design_notes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: Settings | None = None, /, **config: Any) -> None:
        """Take a settings object, or build one from ``config`` (field names; strings are
        coerced, unknown names refused); keys named in ``extra_config`` go to ``extras``."""
        cls = type(self)
        self.extras: dict[str, Any] = {k: config.pop(k) for k in list(config)
                                       if k in cls.extra_config}
        if cls.config_class is None:
            self.extras.update(config)  # a kind without a settings dataclass
            self._settings: Settings | None = None
        elif settings is not None:
            if config:
                settings = settings.replace(**config)
            self._settings = settings
        else:
            self._settings = build(cls.config_class, config, where=f"{cls.kind} settings")
        self.train_data_sha256: str | None = None
        # Caveats about how it was trained (record notes), kept in the manifest.
        self.notes: list[str] = []
        # Set by whoever runs fit() to hear how far it got (see report_progress).
        self.on_progress: Callable[[int, int, str], None] | None = None
        # One fingerprint per training item (data.overlap), so a later file can be checked
        # for items this model has seen (guard calibration, benchmarks) without the file.
        self.train_item_fingerprints: list[str] | None = None
        self.fingerprint_version: int = FINGERPRINT_VERSION

    @property
    def settings(self) -> Any:
        """This classifier's settings, an instance of ``config_class`` (frozen)."""
        return self._settings

    def with_settings(self, **changes: Any) -> Classifier:
        """A copy with ``changes`` applied to its settings (checked like the constructor's);
        this classifier is left as it was.

        The copy shares what was fitted or loaded (weights, vocabularies): use it to change
        how a model predicts (batch size, device, runtime), not to train it apart.
        """
        clone = copy.copy(self)
        clone.extras = {**self.extras, **{k: changes.pop(k) for k in list(changes)
                                          if k in type(self).extra_config}}
        if changes:
            if self._settings is None:
                raise UsageError(f"{self.kind} has no settings to change "
                                 f"({', '.join(sorted(changes))})")
            try:
                clone._settings = self._settings.replace(**changes)
            except SettingsError as exc:
                raise exc.at(f"{self.kind} settings") from None
        return clone

    @property
    def selects_on_test(self) -> bool:
        """Whether ``fit`` picks its model on the set it is given as ``dev`` even when that
        is the test set (the paper's leaky protocol; such runs are marked in every table)."""
        return False

    @classmethod
    def settings_from_manifest(cls, manifest: dict[str, Any]) -> Settings:
        """The settings a checkpoint's manifest stored; names this version does not know
        (a newer or older one wrote them) are left out, missing ones take the default."""
        assert cls.config_class is not None, f"{cls.kind} has no settings dataclass"
        known = {f.name for f in dataclasses.fields(cls.config_class)}
        stored = {k: v for k, v in (manifest.get("config") or {}).items() if k in known}
        return build(cls.config_class, stored, where=f"{cls.kind} checkpoint settings")

    def manifest_config(self) -> dict[str, Any]:
        """What the manifest keeps as ``config``: every setting plus the extras."""
        own = self._settings.to_dict() if self._settings is not None else {}
        return {**own, **self.extras}

    def record_training_data(self, train: Sequence[Example]) -> None:
        """Remember what ``fit`` learnt from: the file's hash and each item's fingerprint."""
        from ..data import examples_hash, item_fingerprints

        self.train_data_sha256 = examples_hash(train)
        self.train_item_fingerprints = item_fingerprints(train)
        self.fingerprint_version = FINGERPRINT_VERSION

    @abstractmethod
    def fit(self, train: Sequence[Example], dev: Sequence[Example] | None = None) -> Classifier:
        """Learn from labelled examples; ``dev`` (optional) is for model selection only."""

    def report_progress(self, done: int, total: int, info: str = "") -> None:
        """Called by ``fit`` after each unit of work (a fit, an epoch): ``done`` of ``total``,
        with an optional short ``info`` (a dev score, a loss)."""
        callback = getattr(self, "on_progress", None)
        if callback is not None:
            callback(done, total, info)

    @abstractmethod
    def predict_proba(self, examples: Sequence[Example]) -> np.ndarray:
        """An (n, 8) array of probabilities over labels 0..7, rows in input order.

        A row of NaN means the classifier could not judge that item (it abstained).
        """

    def predictions(self, examples: Sequence[Example]) -> Predictions:
        """Probabilities plus why each abstained item has no answer.

        The default wraps :meth:`predict_proba` (reason :data:`NO_ANSWER`); classifiers
        that know why they abstained (a judge's timeout, an unparseable answer) override it.
        Everything that consumes a classifier goes through here, never argmax on raw rows.
        """
        probs = check_probabilities(self.predict_proba(examples), len(examples))
        return Predictions.from_probs(probs)

    def predict(self, examples: Sequence[Example]) -> np.ndarray:
        """Label ids, one per example; -1 where the classifier abstained."""
        return self.predictions(examples).labels

    def predict_records(self, examples: Sequence[Example], system: str,
                        run: str = "0") -> list[PredictionRecord]:
        """Prediction records (the project's JSONL format) for ``examples``.

        An abstained item gets ``pred`` null, no ``probs`` and its reason as ``error``.
        """
        return self.predictions(examples).records(examples, system, run)

    @abstractmethod
    def save_state(self, directory: Path) -> None:
        """Write the model's own files into ``directory`` (the manifest is written for you)."""

    @classmethod
    @abstractmethod
    def load_state(cls, directory: Path, manifest: dict[str, Any]) -> Classifier:
        """Rebuild the classifier from ``directory`` and its manifest."""

    @classmethod
    def from_spec(cls, argument: str, seed: int = DEFAULT_SEED, **config: Any) -> Classifier:
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
            "config": self.manifest_config(),
            "train_data_sha256": self.train_data_sha256,
            "train_item_fingerprints": self.train_item_fingerprints,
            # Which data.overlap fingerprint function made them (absent: version 1).
            "fingerprint_version": getattr(self, "fingerprint_version", FINGERPRINT_VERSION),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "extra": self.manifest_extra(),
            **({"notes": list(self.notes)} if getattr(self, "notes", None) else {}),
        }

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Classifier:
        """Load a folder saved by :meth:`save` of this class's kind.

        Loading a folder of any kind is :func:`mhsafety.registry.load_classifier`, the one
        place that knows every kind.
        """
        if cls.kind == "":
            raise TypeError("Classifier.load needs a concrete kind; use "
                            "mhsafety.registry.load_classifier(directory) for any kind")
        manifest = read_manifest(directory)
        if manifest["kind"] != cls.kind:
            raise DataError(f"{directory}: is a {manifest['kind']!r} checkpoint, "
                            f"expected {cls.kind!r}")
        return cls.load_from(directory, manifest)

    @classmethod
    def load_from(cls, directory: str | os.PathLike[str],
                  manifest: dict[str, Any]) -> Classifier:
        """Rebuild from a folder whose manifest was already read and checked."""
        model = cls.load_state(Path(directory), manifest)
        model.train_data_sha256 = manifest.get("train_data_sha256")
        model.notes = list(manifest.get("notes", []))
        model.train_item_fingerprints = manifest.get("train_item_fingerprints")
        model.fingerprint_version = manifest.get("fingerprint_version", 1)
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
    if not isinstance(manifest.get("kind"), str) or not manifest["kind"]:
        raise DataError(f"{path}: the manifest names no checkpoint kind")
    labels = manifest.get("labels", {})
    if labels != {str(i): name for i, name in enumerate(LABEL_NAMES)}:
        raise DataError(f"{path}: the checkpoint's label map differs from the taxonomy's")
    return manifest


def check_probabilities(probs: np.ndarray, n: int) -> np.ndarray:
    """Validate a predict_proba result: shape (n, 8); each row either all NaN (abstained)
    or finite and summing to 1."""
    probs = np.asarray(probs, dtype=float)
    if probs.shape != (n, NUM_LABELS):
        raise ValueError(f"expected probabilities of shape ({n}, {NUM_LABELS}), got {probs.shape}")
    nan = np.isnan(probs)
    abstained = nan.all(axis=1)
    if (nan.any(axis=1) & ~abstained).any():
        raise ValueError("an abstained row must be NaN in every column")
    answered = probs[~abstained]
    if not np.all(np.isfinite(answered)) or not np.allclose(answered.sum(axis=1), 1.0,
                                                            atol=1e-4):
        raise ValueError("probabilities must be finite and each row must sum to 1 "
                         "(or be all NaN where the classifier abstained)")
    return probs
