"""The LLM judge behind the one classifier interface (kind ``judge``).

System spec: ``judge:MODEL`` or ``judge:MODEL@BASE_URL``; without ``@BASE_URL`` the URL comes
from the ``base_url`` config key or ``$MHSAFETY_JUDGE_BASE_URL``. Other config keys are the
fields of :class:`~mhsafety.judge.settings.JudgeSettings` (``shots``, ``rounds``, ``output``,
``concurrency``, ...), built and checked exactly as ``mhsafety judge`` builds its options,
with the same defaults; plus ``work_dir``, where the resumable run lives (default: under the
mhsafety cache, keyed on the settings and the items, so an interrupted benchmark resumes).

A judge does not learn. Zero-shot it needs no training data; few-shot (``shots=8``) it keeps
the examples ``fit`` gives it to draw from. Its probabilities are, per item, the mean over
the rounds of each answer's distribution: logprobs (``logprobs=true``), vote shares of
``samples`` answers, or the one-hot label of a plain answer, so with several rounds they are
the rounds' vote shares. An item no round could answer is an abstention
(:meth:`predictions`: a NaN row and the reason, e.g. "timeout" or "unparseable answer").
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from ..classifiers.base import Classifier, Predictions
from ..data import Example, examples_hash, load_examples, write_examples
from ..errors import UsageError
from ..records import PredictionRecord
from ..settings import build
from ..taxonomy import NUM_LABELS
from .parse import CUT_OFF, NO_CATEGORY, PROBS_LOGPROBS, PROBS_VOTES
from .runner import JudgeResult, run_judge
from .settings import JudgeSettings

BASE_URL_ENV = "MHSAFETY_JUDGE_BASE_URL"
WORK_DIR = "work_dir"
_SETTING_NAMES = {f.name for f in fields(JudgeSettings)}
# "host:port/..." or "host.tld/...": what a URL without its scheme looks like after the "@"
# (a model name may hold an "@" too, e.g. "claude-3-5-sonnet@20240620").
_SCHEMELESS = re.compile(r"^(localhost|[\w-]+(\.[\w-]+)+|\[[0-9a-f:]+\]|[\w.-]+:\d+)"
                         r"(:\d+)?(/.*)?$", re.IGNORECASE)


def settings_from_config(config: dict[str, Any]) -> JudgeSettings:
    """The judge's settings from classifier config (``--config KEY=VALUE``), checked against
    the fields of :class:`JudgeSettings`."""
    values = {k: v for k, v in config.items() if k != WORK_DIR}
    unknown = sorted(set(values) - _SETTING_NAMES)
    if unknown:
        raise UsageError(f"unknown judge setting {unknown[0]!r}; expected some of "
                         + ", ".join(sorted(_SETTING_NAMES | {WORK_DIR})))
    return build(JudgeSettings, values, where="judge config")


def abstain_reason(record: PredictionRecord) -> str:
    """A short reason for a record with no label, led by its kind (what the guard shows)."""
    error = record.error or "no answer"
    if record.raw is not None:
        if error == CUT_OFF:
            return "answer cut off by the token budget (finish_reason: length)"
        if error == NO_CATEGORY:
            shown = record.raw if len(record.raw) <= 60 else record.raw[:57] + "..."
            return f"unparseable answer: {shown!r}"
        return error
    low = error.lower()
    if "no answer within" in low:
        return f"timeout: {error}"
    if any(s in low for s in ("cannot connect", "connection", "nothing listens",
                              "does not resolve", "tls failure")):
        return f"server unreachable: {error}"
    if "not requested" in low:
        return "not asked: the run stopped before this item"
    return error


class JudgeClassifier(Classifier):
    kind = "judge"
    config_class = JudgeSettings
    extra_config = frozenset({WORK_DIR})
    needs_training = False

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        settings = settings_from_config(config)  # checks every key, before any request
        if not settings.model:
            raise UsageError("a judge needs a model: use the system spec judge:MODEL")
        if not settings.base_url:
            raise UsageError(f"a judge needs a base URL: use judge:MODEL@URL or set "
                             f"${BASE_URL_ENV}")
        # Few-shot judges draw their examples from what fit() gives them.
        self.needs_training = bool(settings.shots)  # type: ignore[misc]
        self.train: list[Example] | None = None
        self.last_result: JudgeResult | None = None

    @classmethod
    def from_spec(cls, argument: str, seed: int = 42, **config: Any) -> JudgeClassifier:
        model, base_url = argument, config.pop("base_url", None) or os.environ.get(BASE_URL_ENV)
        for scheme in ("@http://", "@https://"):
            if scheme in argument:
                model, _, rest = argument.partition(scheme)
                base_url = scheme[1:] + rest
                break
        else:
            head, at, tail = argument.rpartition("@")
            if at and _SCHEMELESS.match(tail):
                raise UsageError(f"judge:{argument}: the URL {tail!r} has no scheme; write "
                                 f"judge:{head}@http://{tail} (a local server) or "
                                 f"judge:{head}@https://{tail}")
        if base_url:
            config["base_url"] = base_url
        return cls(model=model, seed=seed, **config)

    @property
    def settings(self) -> JudgeSettings:
        return settings_from_config(self.config)

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
        work = self.config.get(WORK_DIR)
        if not work:
            from ..data import cache_dir

            digest = hashlib.sha256(
                f"{settings.model}|{settings.base_url}|{settings.shots}|{settings.seed}|"
                f"{examples_hash(examples)}|{self.train_data_sha256}".encode()).hexdigest()
            work = cache_dir() / "judge-runs" / digest[:16]
        # A classifier also serves the guard, where a screened reply may happen to be a shot
        # source; the protocols that score it check overlap themselves (benchmark --train).
        self.last_result = run_judge(examples, work, settings, train=self.train,
                                     show_progress=False, allow_overlap=True)
        return self.last_result

    def _combine(self, examples: Sequence[Example]
                 ) -> tuple[Predictions, str | None, JudgeResult]:
        result = self._run(examples)
        rounds = [result.records[str(r)] for r in range(1, self.settings.rounds + 1)]
        probs = np.full((len(examples), NUM_LABELS), np.nan)
        reasons: list[str | None] = []
        kinds: set[str] = set()
        for i in range(len(examples)):
            valid = [recs[i] for recs in rounds if recs[i].pred is not None]
            if not valid:
                reasons.append(abstain_reason(rounds[0][i]))
                continue
            row = np.zeros(NUM_LABELS)
            for rec in valid:
                if rec.probs is not None:
                    row += np.asarray(rec.probs, dtype=float)
                    kinds.add(rec.meta.get("probs_from") or PROBS_VOTES)
                else:
                    row[rec.pred] += 1.0
                    kinds.add(PROBS_VOTES)
            probs[i] = row / row.sum()
            reasons.append(None)
        kind = PROBS_LOGPROBS if kinds == {PROBS_LOGPROBS} else PROBS_VOTES if kinds else None
        return Predictions(probs, tuple(reasons)), kind, result

    def predictions(self, examples: Sequence[Example]) -> Predictions:
        """Probabilities per item, and for items no round could answer a NaN row with the
        reason ("timeout: ...", "unparseable answer: 'I cannot tell'", "server unreachable:
        ...")."""
        return self._combine(examples)[0]

    def predict_proba(self, examples: Sequence[Example]) -> np.ndarray:
        return self.predictions(examples).probs

    def predict_records(self, examples: Sequence[Example], system: str,
                        run: str = "0") -> list[PredictionRecord]:
        predictions, kind, result = self._combine(examples)
        first = result.records["1"]
        single = self.settings.rounds == 1
        meta: dict[str, Any] = {"judge_model": result.manifest["model_requested"]}
        if kind:
            meta["probs_from"] = kind
        out = []
        for i, ex in enumerate(examples):
            row = predictions.probs[i]
            valid = bool(np.isfinite(row).all())
            # The label is the argmax of the probabilities, as Predictions.labels reads it
            # (with several rounds: the majority; a tie goes to the lower label id).
            out.append(PredictionRecord(
                id=ex.id or str(i), gold=ex.label, pred=int(row.argmax()) if valid else None,
                system=system, run=run, probs=row.tolist() if valid else None,
                raw=first[i].raw if single else None,
                error=None if valid else predictions.reasons[i], meta=dict(meta)))
        return out

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
