"""The LLM judge behind the one classifier interface (kind ``judge``).

System spec: ``judge:MODEL`` or ``judge:MODEL@BASE_URL``; without ``@BASE_URL`` the URL comes
from the ``base_url`` config key or ``$MHSAFETY_JUDGE_BASE_URL``. Other config keys are the
fields of :class:`~mhsafety.judge.settings.JudgeSettings` (``shots``, ``rounds``, ``output``,
``concurrency``, ...), built and checked exactly as ``mhsafety judge`` builds its options,
with the same defaults; plus ``work_dir``: a folder where the run is kept resumably (without
one, predictions are made in memory and nothing is written).

A judge does not learn. Zero-shot it needs no training data; few-shot (``shots=8``) it keeps
the examples ``fit`` gives it to draw from. Its probabilities are, per item, the mean over
the rounds of each answer's distribution: logprobs (``logprobs=true``), vote shares of
``samples`` answers, or the one-hot label of a plain answer, so with several rounds they are
the rounds' vote shares. An item no round could answer is an abstention
(:meth:`predictions`: a NaN row and the reason, e.g. "timeout" or "unparseable answer").
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..classifiers.base import Classifier, Predictions
from ..data import Example, load_examples, write_examples
from ..errors import UsageError
from ..records import PredictionRecord
from ..settings import DEFAULT_SEED
from .core import judge_examples
from .results import abstain_reason, combine_rounds  # noqa: F401 - abstain_reason re-exported
from .settings import JudgeSettings
from .transport import Transport

BASE_URL_ENV = "MHSAFETY_JUDGE_BASE_URL"
WORK_DIR = "work_dir"
# "host:port/..." or "host.tld/...": what a URL without its scheme looks like after the "@"
# (a model name may hold an "@" too, e.g. "claude-3-5-sonnet@20240620").
_SCHEMELESS = re.compile(r"^(localhost|[\w-]+(\.[\w-]+)+|\[[0-9a-f:]+\]|[\w.-]+:\d+)"
                         r"(:\d+)?(/.*)?$", re.IGNORECASE)


def split_model_url(kind: str, argument: str) -> tuple[str, str | None]:
    """``MODEL@BASE_URL`` (the part of a ``KIND:MODEL@BASE_URL`` spec after the colon) as
    ``(model, url)``; url None when the spec names none. A URL without its scheme is one
    sentence saying how to write it (a model name may hold an "@" of its own)."""
    for scheme in ("@http://", "@https://"):
        if scheme in argument:
            model, _, rest = argument.partition(scheme)
            return model, scheme[1:] + rest
    head, at, tail = argument.rpartition("@")
    if at and _SCHEMELESS.match(tail):
        raise UsageError(f"{kind}:{argument}: the URL {tail!r} has no scheme; write "
                         f"{kind}:{head}@http://{tail} (a local server) or "
                         f"{kind}:{head}@https://{tail}")
    return argument, None


class JudgeClassifier(Classifier):
    """An LLM judge as a classifier. Its settings are one :class:`JudgeSettings`, built and
    checked once (:attr:`settings`); :meth:`with_settings` returns a changed copy.

    ``predictions`` calls the in-memory judge (:func:`~mhsafety.judge.core.judge_examples`)
    and writes no file. Only when built with ``work_dir=DIR`` does it keep a resumable run
    in that folder instead (``run_judge``: a rerun reuses the logged answers); a saved
    checkpoint does not keep the folder. ``transport``
    (an attribute, default None: the built-in HTTP client) carries its requests, e.g. a
    ``mhsafety.testing.MockTransport`` in tests.
    """

    kind = "judge"
    config_class = JudgeSettings
    extra_config = frozenset({WORK_DIR})
    needs_training = False

    def __init__(self, settings: JudgeSettings | None = None, /, **config: Any) -> None:
        super().__init__(settings, **config)  # settings built and checked once, held frozen
        settings = self.settings
        if not settings.model:
            raise UsageError("a judge needs a model: use the system spec judge:MODEL")
        if not settings.base_url:
            raise UsageError(f"a judge needs a base URL: use judge:MODEL@URL or set "
                             f"${BASE_URL_ENV}")
        # Few-shot judges draw their examples from what fit() gives them.
        self.needs_training = bool(settings.shots)  # type: ignore[misc]
        self.train: list[Example] | None = None
        self.transport: Transport | None = None

    @property
    def settings(self) -> JudgeSettings:
        return self._settings  # type: ignore[return-value]

    def with_settings(self, **changes: Any) -> JudgeClassifier:
        """A copy with ``changes`` applied (``work_dir`` too); this classifier is left as it
        was. The copy shares the few-shot source."""
        clone = super().with_settings(**changes)
        assert isinstance(clone, JudgeClassifier)
        clone.needs_training = bool(clone.settings.shots)  # type: ignore[misc]
        return clone

    def manifest_config(self) -> dict[str, Any]:
        """What a checkpoint keeps: the settings. Never the work folder: it belongs to the
        process that set it, so a loaded judge (the guard's) never writes to disk."""
        return self.settings.to_dict()

    @classmethod
    def from_spec(cls, argument: str, seed: int = DEFAULT_SEED, **config: Any
                  ) -> JudgeClassifier:
        model, base_url = split_model_url(cls.kind, argument)
        base_url = base_url or config.pop("base_url", None) or os.environ.get(BASE_URL_ENV)
        config.pop("base_url", None)
        if base_url:
            config["base_url"] = base_url
        return cls(model=model, seed=seed, **config)

    def fit(self, train: Sequence[Example], dev: Sequence[Example] | None = None
            ) -> JudgeClassifier:
        if self.settings.shots:
            self.train = list(train)
            self.record_training_data(self.train)
        return self

    def _rounds(self, examples: Sequence[Example]) -> list[list[PredictionRecord]]:
        """Each round's records: in memory, or resumably in ``work_dir`` when one is set.

        A classifier also serves the guard, where a screened reply may happen to be a shot
        source; the protocols that score it check overlap themselves (benchmark --train)."""
        settings = self.settings
        if settings.shots and not self.train:
            raise UsageError("a few-shot judge needs examples to draw from: call fit(train) "
                             "first")
        work_dir = self.extras.get(WORK_DIR)
        if work_dir:
            from .runner import run_judge

            records = run_judge(examples, work_dir, settings, train=self.train,
                                show_progress=False, allow_overlap=True).records
        else:
            records = judge_examples(examples, settings, self.transport, train=self.train,
                                     allow_overlap=True).records
        return [records[str(r)] for r in range(1, settings.rounds + 1)]

    def round_records(self, examples: Sequence[Example]) -> dict[str, list[PredictionRecord]]:
        """Each round's own records, keyed "1".."k": for protocols that score single rounds
        and average them, as the paper did."""
        return {str(r): records for r, records in enumerate(self._rounds(examples), start=1)}

    def _combine(self, examples: Sequence[Example]
                 ) -> tuple[Predictions, str | None, list[list[PredictionRecord]]]:
        rounds = self._rounds(examples)
        predictions, kind = combine_rounds(rounds, len(examples))
        return predictions, kind, rounds

    def predictions(self, examples: Sequence[Example]) -> Predictions:
        """Probabilities per item, and for items no round could answer a NaN row with the
        reason ("timeout: ...", "unparseable answer: 'I cannot tell'", "server unreachable:
        ...")."""
        return self._combine(examples)[0]

    def predict_proba(self, examples: Sequence[Example]) -> np.ndarray:
        return self.predictions(examples).probs

    def predict_records(self, examples: Sequence[Example], system: str,
                        run: str = "0") -> list[PredictionRecord]:
        predictions, kind, rounds = self._combine(examples)
        first = rounds[0]
        single = len(rounds) == 1
        meta: dict[str, Any] = {"judge_model": self.settings.model}
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
        # The stored settings only: a work folder an older checkpoint kept is not reused.
        model = cls(cls.settings_from_manifest(manifest))
        train = directory / "train.jsonl"
        if train.exists():
            model.train = load_examples(train)
            model.record_training_data(model.train)
        return model
