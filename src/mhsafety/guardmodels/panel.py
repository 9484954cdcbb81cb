"""A panel of graders voting, itself a classifier kind (``panel``).

System spec: ``panel:CKPT1,CKPT2,...`` (saved checkpoints of any kinds: judges, guard models,
encoders, the baseline). Each item goes to every member; the panel's answer is
:func:`mhsafety.analysis.validity.panel_vote` over their answers:

- ``view=labels`` votes on the eight labels (give members that name labels); ``view=binary``
  on safe/unsafe, which binary-only guard models can join (the panel is then binary-only
  too: its records carry the ``binary-only`` note);
- ``vote=majority`` counts each member once; ``vote=weighted`` weighs each by its accuracy
  measured on the labelled items ``fit`` (``mhsafety train --train FILE``) gives it
  (:func:`~mhsafety.analysis.validity.accuracy_weights`; an abstention counts as wrong), and
  the checkpoint keeps the weights and the items' fingerprints, so scoring on those items
  is refused as overlap like any trained model's;
- a tie, or fewer than ``min_votes`` members answering, abstains with the reason: an
  abstention is never a vote, least of all for "safe".

The checkpoint lists its members' folders (absolute paths); they are loaded with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..analysis.validity import accuracy_weights, panel_vote
from ..classifiers.base import BINARY_ONLY, Classifier, Predictions
from ..data import Example
from ..errors import UsageError
from ..records import NOTE_BINARY_ONLY, PredictionRecord, merge_notes
from ..settings import DEFAULT_SEED, Settings, at_least, setting
from ..taxonomy import NUM_LABELS

NO_MAJORITY = "panel: no majority (a tie, or too few members answered)"


def _members_check(value: tuple[str, ...]) -> str | None:
    return None if len(value) >= 2 else "must name at least two member checkpoints"


@dataclass(frozen=True)
class PanelSettings(Settings):
    members: tuple[str, ...] = setting((), "Member checkpoint folders (comma-separated).",
                                       check=_members_check)
    vote: str = setting("majority", "majority: one vote each; weighted: each member weighed "
                                    "by its accuracy on the labelled items given to fit "
                                    "(mhsafety train --train FILE).",
                        choices=("majority", "weighted"))
    view: str = setting("labels", "What is voted on: labels (the eight; members must name "
                                  "them) or binary (safe/unsafe; binary-only guard models "
                                  "can join).", choices=("labels", "binary"))
    min_votes: int = setting(1, "Members that must answer an item for the panel to answer.",
                             check=at_least(1))


class PanelClassifier(Classifier):
    """Several saved classifiers voting (see the module doc)."""

    kind = "panel"
    config_class = PanelSettings
    # Set by the registry when it loads this class: how a member folder becomes a
    # classifier (the registry sits above this floor, so it is handed down, not imported).
    load_member: ClassVar[Callable[[str], Classifier] | None] = None

    def __init__(self, settings: PanelSettings | None = None, /, **config: Any) -> None:
        config.pop("seed", None)
        super().__init__(settings, **config)
        loader = type(self).load_member
        if loader is None:
            raise UsageError("load a panel through mhsafety.registry (create_classifier or "
                             "load_classifier), which knows every member kind")
        self.members: list[Classifier] = [loader(path) for path in self.settings.members]
        self.weights: list[float] | None = None
        self.needs_training = self.settings.vote == "weighted"  # type: ignore[misc]
        if self.settings.view == "labels":
            binary_only = [p for p, m in zip(self.settings.members, self.members)
                           if not getattr(m, "names_labels", True)]
            if binary_only:
                raise UsageError(f"panel member {binary_only[0]} names no taxonomy label; "
                                 "vote on view=binary, or leave it out")

    @property
    def settings(self) -> PanelSettings:
        return self._settings  # type: ignore[return-value]

    @classmethod
    def from_spec(cls, argument: str, seed: int = DEFAULT_SEED, **config: Any
                  ) -> PanelClassifier:
        if argument:
            config["members"] = tuple(str(Path(p).resolve())
                                      for p in argument.split(",") if p.strip())
        return cls(**config)

    def _votes(self, predictions: Sequence[Predictions]) -> list[Any]:
        if self.settings.view == "labels":
            return [p.probs for p in predictions]
        return [[None if b < 0 else bool(b) for b in p.binary] for p in predictions]

    def fit(self, train: Sequence[Example], dev: Sequence[Example] | None = None
            ) -> PanelClassifier:
        if self.settings.vote == "weighted":
            gold = [ex.label for ex in train]
            if any(g is None for g in gold):
                raise UsageError("weighing a panel needs gold labels on every training item")
            votes = self._votes([m.predictions(train) for m in self.members])
            self.weights = accuracy_weights(gold, votes,
                                            binary=self.settings.view == "binary").tolist()
            self.record_training_data(train)
        return self

    @property
    def binary_only(self) -> bool:
        return self.settings.view == "binary"

    def predictions(self, examples: Sequence[Example]) -> Predictions:
        n = len(examples)
        if self.settings.vote == "weighted" and self.weights is None:
            raise UsageError("a weighted panel needs labelled items to weigh its members: "
                             "call fit(train) first (mhsafety train --train FILE)")
        if not n:
            return Predictions(np.zeros((0, NUM_LABELS)), ())
        member_preds = [m.predictions(examples) for m in self.members]
        out = panel_vote(self._votes(member_preds), self.weights,
                         binary=self.binary_only, min_votes=self.settings.min_votes)
        probs = np.full((n, NUM_LABELS), np.nan)
        if not self.binary_only:
            ok = out >= 0
            probs[ok] = np.eye(NUM_LABELS)[out[ok]]
            return Predictions(probs, tuple(None if o >= 0 else NO_MAJORITY for o in out))
        unsafe = np.where(out < 0, np.nan, out.astype(float))
        reasons = tuple(BINARY_ONLY if o >= 0 else NO_MAJORITY for o in out)
        return Predictions(probs, reasons, unsafe, np.full(n, np.nan), None)

    def predict_proba(self, examples: Sequence[Example]) -> np.ndarray:
        return self.predictions(examples).probs

    def predict_records(self, examples: Sequence[Example], system: str,
                        run: str = "0") -> list[PredictionRecord]:
        records = self.predictions(examples).records(examples, system, run)
        for rec in records:
            rec.meta = {**rec.meta, "panel": list(self.settings.members)}
            if self.binary_only:
                rec.notes = merge_notes(rec.notes, [NOTE_BINARY_ONLY])
        return records

    @property
    def names_labels(self) -> bool:
        return not self.binary_only

    def manifest_extra(self) -> dict[str, Any]:
        return {"weights": self.weights}

    def save_state(self, directory: Path) -> None:
        pass  # the manifest lists the members and keeps the weights

    @classmethod
    def load_state(cls, directory: Path, manifest: dict[str, Any]) -> PanelClassifier:
        panel = cls(cls.settings_from_manifest(manifest))  # type: ignore[arg-type]
        weights = (manifest.get("extra") or {}).get("weights")
        panel.weights = None if weights is None else [float(w) for w in weights]
        return panel
