"""Guard models behind the one classifier interface: kinds ``qwen3guard``, ``llamaguard``,
``shieldgemma``, ``wildguard`` and ``policy``.

System spec: ``KIND:MODEL@BASE_URL`` (as the judge's: ``llamaguard:meta-llama/Llama-Guard-3-8B@
http://127.0.0.1:8000/v1``); other config keys are the fields of the family's settings
(:mod:`.settings`). A kind does not learn: ``mhsafety train --model KIND:MODEL@URL --out DIR``
writes a checkpoint holding its settings, which ``predict``, ``check``, ``serve`` and
``probe`` load like any other.

Each item's requests (:func:`~mhsafety.guardmodels.calls_for`: one, or one per policy for
ShieldGemma) go through the judge core's :class:`~mhsafety.judge.ChatClient` (retries,
back-off, fail-fast on a wrong URL), ``concurrency`` in flight; the answers are read by the
family's parser (:func:`~mhsafety.guardmodels.verdict_from`).

What the predictions hold, honestly:

- the binary view for every answered item (:attr:`Predictions.unsafe`), and P(unsafe) only
  where the server returned the verdict token's log-probabilities (:attr:`Predictions.
  p_unsafe`; NaN elsewhere, never made up);
- the eight-label row only where the model named a taxonomy label (``policy``; Llama Guard
  and ShieldGemma with our categories): one-hot on that label. A general guard's "unsafe"
  leaves the row NaN with the reason :data:`~mhsafety.classifiers.base.BINARY_ONLY`, so
  ``predict`` gives -1 for it and the label is never guessed;
- an unreadable answer or a failed request abstains on both views with the reason;
- per-item ``meta`` for the records: the model's own categories, refusal, level, reasoning.

Records of a kind that names no label at all carry the note ``binary-only``
(:data:`~mhsafety.records.NOTE_BINARY_ONLY`): scoring then leaves its eight-label scores
undefined and scores the binary view.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..classifiers.base import BINARY_ONLY, Classifier, Predictions
from ..data import Example
from ..errors import UsageError
from ..judge.classifier import split_model_url
from ..judge.client import (
    UNREACHABLE,
    ChatClient,
    Failure,
    FatalAPIError,
    refusal_message,
    run_sync,
)
from ..judge.settings import JudgeSettings
from ..judge.transport import Transport
from ..records import NOTE_BINARY_ONLY, PredictionRecord, merge_notes
from ..settings import DEFAULT_SEED
from ..taxonomy import NUM_LABELS
from . import calls_for, capabilities, verdict_from
from .base import Answer, GuardVerdict, abstention
from .settings import (
    GuardModelSettings,
    LlamaGuardSettings,
    PolicySettings,
    Qwen3GuardSettings,
    ShieldGemmaSettings,
    WildGuardSettings,
)

REQUEST_FAILED = "request failed"


def endpoint(settings: GuardModelSettings) -> JudgeSettings:
    """The chat endpoint a kind's settings describe, as the judge core's client reads it:
    greedy decoding, the kind's budget, one round, retries without a run-level stop."""
    return JudgeSettings(model=settings.model, base_url=settings.base_url,
                         api_key_env=settings.api_key_env, max_tokens=settings.max_tokens,
                         temperature=0.0, top_p=1.0, rounds=1,
                         concurrency=settings.concurrency, timeout=settings.timeout,
                         max_attempts=settings.max_attempts, client=settings.client,
                         stop_after_failures=0)


def _answer(result: Any) -> Answer:
    choice = result.choices[0]
    return Answer(choice.content, choice.reasoning, choice.logprobs, choice.finish_reason)


async def averdicts(examples: Sequence[Example], settings: GuardModelSettings,
                    transport: Transport | None = None) -> list[GuardVerdict]:
    """Every item's :class:`GuardVerdict`, ``settings.concurrency`` requests in flight.

    A request that fails after its retries makes its item abstain with the reason; a
    refusal (bad key, unknown model) or nothing listening before the first answer raises
    :class:`~mhsafety.judge.client.FatalAPIError` with the URL in front."""
    client = ChatClient(endpoint(settings), transport)
    slots = asyncio.Semaphore(settings.concurrency)
    answered = [0]

    def fatal(kind: str) -> bool:  # a wrong URL ends the run at once, a restart is waited for
        return kind in UNREACHABLE and not answered[0]

    async def send(call: dict[str, Any]) -> Answer | Failure:
        fields = {k: v for k, v in call.items() if k not in ("messages", "max_tokens")}
        async with slots:
            result = await client.send(call["messages"], fatal=fatal, fields=fields)
        if isinstance(result, Failure):
            return result
        answered[0] += 1
        return _answer(result)

    async def judge(example: Example) -> GuardVerdict:
        answers = await asyncio.gather(*(send(c) for c in calls_for(example, settings)))
        failed = [a for a in answers if isinstance(a, Failure)]
        if failed:
            return abstention(f"{REQUEST_FAILED}: {failed[0].reason}")
        return verdict_from(answers, settings)  # type: ignore[arg-type]

    try:
        return list(await asyncio.gather(*(judge(ex) for ex in examples)))
    except FatalAPIError as exc:
        raise FatalAPIError(refusal_message(exc, client.settings, client.api_key), exc.status,
                            exc.param) from None
    finally:
        await client.aclose()


def verdicts(examples: Sequence[Example], settings: GuardModelSettings,
             transport: Transport | None = None) -> list[GuardVerdict]:
    """:func:`averdicts` from synchronous code (also inside a running event loop)."""
    return run_sync(averdicts(examples, settings, transport))


def record_meta(verdict: GuardVerdict) -> dict[str, Any]:
    """What a record keeps of a verdict besides the label and the binary answer."""
    meta: dict[str, Any] = {}
    if verdict.categories:
        meta["categories"] = list(verdict.categories)
    for name in ("refusal", "level", "prompt_harmful", "reasoning"):
        value = getattr(verdict, name)
        if value is not None:
            meta[name] = value
    return meta


def predictions_from(found: Sequence[GuardVerdict]) -> Predictions:
    """Verdicts as :class:`Predictions` with the binary view (see the module doc)."""
    n = len(found)
    probs = np.full((n, NUM_LABELS), np.nan)
    unsafe = np.full(n, np.nan)
    p_unsafe = np.full(n, np.nan)
    reasons: list[str | None] = []
    for i, v in enumerate(found):
        if v.abstained:
            reasons.append(v.abstain or REQUEST_FAILED)
            continue
        unsafe[i] = float(bool(v.unsafe))
        if v.probability is not None:
            p_unsafe[i] = v.probability
        if v.label is None:
            reasons.append(BINARY_ONLY)
        else:
            probs[i] = np.eye(NUM_LABELS)[v.label]
            reasons.append(None)
    return Predictions(probs, tuple(reasons), unsafe, p_unsafe,
                       tuple(record_meta(v) for v in found))


class GuardModelClassifier(Classifier):
    """A guard model served over an OpenAI-compatible endpoint, as a classifier. One class
    per family below (its ``kind`` and settings); ``transport`` (default None: the built-in
    HTTP client) carries the requests, e.g. a ``mhsafety.testing.MockTransport`` in tests."""

    config_class: Any = GuardModelSettings
    needs_training = False

    def __init__(self, settings: GuardModelSettings | None = None, /, **config: Any) -> None:
        config.pop("seed", None)  # nothing here is drawn at random
        super().__init__(settings, **config)
        if not self.settings.model:
            raise UsageError(f"a {self.kind} guard model needs a model: use the system spec "
                             f"{self.kind}:MODEL@BASE_URL")
        if not self.settings.base_url:
            raise UsageError(f"a {self.kind} guard model needs a base URL: use "
                             f"{self.kind}:MODEL@BASE_URL")
        self.transport: Transport | None = None

    @property
    def settings(self) -> GuardModelSettings:
        return self._settings  # type: ignore[return-value]

    @property
    def names_labels(self) -> bool:
        """Whether this kind, so configured, names taxonomy labels (else binary only)."""
        return capabilities(self.settings).labels

    @classmethod
    def from_spec(cls, argument: str, seed: int = DEFAULT_SEED, **config: Any
                  ) -> GuardModelClassifier:
        model, base_url = split_model_url(cls.kind, argument)
        if base_url:
            config["base_url"] = base_url
        return cls(model=model, **config)

    def fit(self, train: Sequence[Example], dev: Sequence[Example] | None = None
            ) -> GuardModelClassifier:
        return self  # nothing to learn

    def verdicts(self, examples: Sequence[Example]) -> list[GuardVerdict]:
        """Each item's verdict as the family's parser read it."""
        return verdicts(examples, self.settings, self.transport)

    def predictions(self, examples: Sequence[Example]) -> Predictions:
        if not examples:
            return Predictions(np.zeros((0, NUM_LABELS)), (), np.zeros(0), np.zeros(0), ())
        return predictions_from(self.verdicts(examples))

    def predict_proba(self, examples: Sequence[Example]) -> np.ndarray:
        return self.predictions(examples).probs

    def predict_records(self, examples: Sequence[Example], system: str,
                        run: str = "0") -> list[PredictionRecord]:
        records = self.predictions(examples).records(examples, system, run)
        notes = [] if self.names_labels else [NOTE_BINARY_ONLY]
        for rec in records:
            rec.meta = {"kind": self.kind, "guard_model": self.settings.model, **rec.meta}
            rec.notes = merge_notes(rec.notes, notes)
        return records

    def manifest_extra(self) -> dict[str, Any]:
        return {"capabilities": capabilities(self.settings).to_dict()}

    def save_state(self, directory: Path) -> None:
        pass  # the settings in the manifest are the whole checkpoint

    @classmethod
    def load_state(cls, directory: Path, manifest: dict[str, Any]) -> GuardModelClassifier:
        return cls(cls.settings_from_manifest(manifest))  # type: ignore[arg-type]

    def with_settings(self, **changes: Any) -> GuardModelClassifier:
        clone = super().with_settings(**changes)
        assert isinstance(clone, GuardModelClassifier)
        return clone


class Qwen3GuardClassifier(GuardModelClassifier):
    kind = "qwen3guard"
    config_class = Qwen3GuardSettings


class LlamaGuardClassifier(GuardModelClassifier):
    kind = "llamaguard"
    config_class = LlamaGuardSettings


class ShieldGemmaClassifier(GuardModelClassifier):
    kind = "shieldgemma"
    config_class = ShieldGemmaSettings


class WildGuardClassifier(GuardModelClassifier):
    kind = "wildguard"
    config_class = WildGuardSettings


class PolicyClassifier(GuardModelClassifier):
    kind = "policy"
    config_class = PolicySettings


CLASSIFIERS: dict[str, type[GuardModelClassifier]] = {
    c.kind: c for c in (Qwen3GuardClassifier, LlamaGuardClassifier, ShieldGemmaClassifier,
                        WildGuardClassifier, PolicyClassifier)}

__all__ = ["CLASSIFIERS", "GuardModelClassifier", "LlamaGuardClassifier", "PolicyClassifier",
           "Qwen3GuardClassifier", "ShieldGemmaClassifier", "WildGuardClassifier",
           "averdicts", "endpoint", "predictions_from", "verdicts"]
