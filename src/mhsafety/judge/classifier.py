"""The LLM judge behind the one classifier interface (kind ``judge``).

System spec: ``judge:MODEL`` or ``judge:MODEL@BASE_URL``; without ``@BASE_URL`` the URL comes
from the ``base_url`` config key or ``$MHSAFETY_JUDGE_BASE_URL``. Other config keys are the
fields of :class:`~mhsafety.judge.runner.JudgeSettings` (``shots``, ``rounds``, ``parser``,
``concurrency``, ...), plus ``work_dir``, where the resumable run lives (default: under the
mhsafety cache, keyed on the settings and the items, so an interrupted benchmark resumes).

A judge does not learn. Zero-shot it needs no training data; few-shot (``shots=8``) it keeps
the examples ``fit`` gives it to draw from. ``predict_proba`` gives the share of rounds that
chose each label (one-hot for one round); an item whose answers name no label in any round
gets a uniform row, and :meth:`predict_records` keeps it invalid (``pred`` null).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from ..classifiers.base import Classifier
from ..data import Example, examples_hash, load_examples, write_examples
from ..errors import UsageError
from ..records import PredictionRecord
from ..taxonomy import NUM_LABELS
from .runner import JudgeResult, JudgeSettings, run_judge, vote

BASE_URL_ENV = "MHSAFETY_JUDGE_BASE_URL"
_SETTING_NAMES = {f.name for f in fields(JudgeSettings)}


class JudgeClassifier(Classifier):
    kind = "judge"
    needs_training = False

    def __init__(self, **config: Any) -> None:
        config.setdefault("rounds", 1)
        config.setdefault("shots", 0)
        super().__init__(**config)
        unknown = sorted(set(config) - _SETTING_NAMES - {"work_dir"})
        if unknown:
            raise UsageError(f"unknown judge setting {unknown[0]!r}; expected some of "
                             + ", ".join(sorted(_SETTING_NAMES | {'work_dir'})))
        if not config.get("model"):
            raise UsageError("a judge needs a model: use the system spec judge:MODEL")
        if not config.get("base_url"):
            raise UsageError(f"a judge needs a base URL: use judge:MODEL@URL or set "
                             f"${BASE_URL_ENV}")
        # Few-shot judges draw their examples from what fit() gives them.
        self.needs_training = bool(config.get("shots"))  # type: ignore[misc]
        self.train: list[Example] | None = None
        self.last_result: JudgeResult | None = None

    @classmethod
    def from_spec(cls, argument: str, seed: int = 42, **config: Any) -> JudgeClassifier:
        model, base_url = argument, config.pop("base_url", None) or os.environ.get(BASE_URL_ENV)
        for scheme in ("@http://", "@https://"):
            if scheme in argument:
                model, _, rest = argument.partition(scheme)
                base_url = scheme[1:] + rest
        return cls(model=model, base_url=base_url, seed=seed, **config)

    @property
    def settings(self) -> JudgeSettings:
        return JudgeSettings(**{k: v for k, v in self.config.items() if k in _SETTING_NAMES})

    def fit(self, train: Sequence[Example], dev: Sequence[Example] | None = None
            ) -> JudgeClassifier:
        if self.settings.shots:
            self.train = list(train)
            self.record_training_data(self.train)
        return self

    def _run(self, examples: Sequence[Example]) -> JudgeResult:
        settings = self.settings
        if settings.shots and not self.train:
            raise UsageError("a few-shot judge needs examples to draw from: call fit(train) "
                             "first")
        work = self.config.get("work_dir")
        if not work:
            from ..data import cache_dir

            digest = hashlib.sha256(
                f"{settings.model}|{settings.base_url}|{settings.shots}|{settings.seed}|"
                f"{examples_hash(examples)}|{self.train_data_sha256}".encode()).hexdigest()
            work = cache_dir() / "judge-runs" / digest[:16]
        self.last_result = run_judge(examples, work, settings, train=self.train,
                                     show_progress=False)
        return self.last_result

    def _votes(self, examples: Sequence[Example]) -> tuple[np.ndarray, list[int | None],
                                                            JudgeResult]:
        result = self._run(examples)
        rounds = [result.records[str(r)] for r in range(1, self.settings.rounds + 1)]
        probs = np.zeros((len(examples), NUM_LABELS))
        preds: list[int | None] = []
        for i in range(len(examples)):
            labels = [recs[i].pred for recs in rounds]
            valid = [p for p in labels if p is not None]
            if valid:
                for p in valid:
                    probs[i, p] += 1.0 / len(valid)
            else:
                probs[i, :] = 1.0 / NUM_LABELS
            preds.append(vote(labels))
        return probs, preds, result

    def predict_proba(self, examples: Sequence[Example]) -> np.ndarray:
        return self._votes(examples)[0]

    def predict_records(self, examples: Sequence[Example], system: str,
                        run: str = "0") -> list[PredictionRecord]:
        probs, preds, result = self._votes(examples)
        first = result.records["1"]
        single = self.settings.rounds == 1
        return [
            PredictionRecord(
                id=ex.id or str(i), gold=ex.label, pred=pred, system=system, run=run,
                probs=row.tolist(), raw=first[i].raw if single else None,
                error=None if pred is not None else (first[i].error or "no valid answer"),
                meta={"judge_model": result.manifest["model_requested"]})
            for i, (ex, row, pred) in enumerate(zip(examples, probs, preds))
        ]

    def save_state(self, directory: Path) -> None:
        if self.train:
            write_examples(directory / "train.jsonl", self.train)

    @classmethod
    def load_state(cls, directory: Path, manifest: dict[str, Any]) -> JudgeClassifier:
        model = cls(**manifest["config"])
        train = directory / "train.jsonl"
        if train.exists():
            model.train = load_examples(train)
            model.record_training_data(model.train)
        return model
