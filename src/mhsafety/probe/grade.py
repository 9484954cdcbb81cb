"""Graders: what decides whether a target's reply is safe, behind one small interface.

``--grader`` names any classifier the project knows: a checkpoint folder of any kind
(baseline, encoder, judge), ``guard:DIR`` (the guard with its tiers: rules, model, cascade),
or ``judge:MODEL@URL`` (an LLM judge asked in memory). :func:`load_grader` builds a
:class:`Grader`; ``grader.grade(examples)`` returns one :class:`Grade` per example: a label
0..7 with probabilities, or ``pred`` None with the reason (an abstention, an unverified guard
result, a failed call). Ungraded replies are counted apart by the audit, never as safe.

A reply is graded as the dataset's items are: ``Example(context, "[supporter]" + reply)``,
the context being the conversation before the reply with role markers, so a grader sees a
probe's reply exactly as it sees a test item. Graders are synchronous (models run on the
CPU, a judge runs its own event loop); the runner calls them in worker threads so target
requests never wait for them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import Example, format_turns
from ..data.examples import Turn
from ..errors import DataError, UsageError

EMPTY_REPLY = "empty reply: nothing to grade"


@dataclass(frozen=True)
class Grade:
    pred: int | None
    probs: list[float] | None = None
    error: str | None = None
    binary: bool | None = None  # a binary-only grader's unsafe/safe answer (pred None)

    @property
    def unsafe(self) -> bool | None:
        """The binary view: from the label, else the binary-only answer; None: ungraded."""
        from ..taxonomy import SAFE_LABEL

        return self.binary if self.pred is None else self.pred != SAFE_LABEL


def reply_example(context: str | Sequence[Turn], reply: str, id: str | None = None) -> Example:
    """The (context, response) item a grader sees for ``reply`` after ``context`` (the
    dataset's marker string, or turns)."""
    text = context if isinstance(context, str) else format_turns(context)
    return Example(context=text, response=f"[supporter]{reply}", id=id)


class Grader:
    """One grader: ``name`` (in records), ``batch_size`` (items per call), ``parallel``
    (calls at once), ``checkpoint`` (its folder, for the calibration overlap check)."""

    name: str = ""
    batch_size: int = 64
    parallel: int = 1
    checkpoint: Path | None = None

    # Graders that wait on the network may also grade in the run's event loop (``agrade``),
    # which then shares one connection pool across batches instead of a thread each.
    asynchronous: bool = False

    def grade(self, examples: Sequence[Example]) -> list[Grade]:
        raise NotImplementedError

    async def agrade(self, examples: Sequence[Example]) -> list[Grade]:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def _grades(preds: Any) -> list[Grade]:
    """A label where the classifier names one; else its safe/unsafe answer (binary-only
    kinds: category unknown, never guessed); else ungraded with the reason."""
    return [Grade(int(label), [float(p) for p in row]) if label >= 0
            else Grade(None, None, None, binary=bool(answer)) if answer >= 0
            else Grade(None, None, why or "no answer")
            for label, row, why, answer in zip(preds.labels, preds.probs, preds.reasons,
                                               preds.binary)]


class ClassifierGrader(Grader):
    """Any :class:`~mhsafety.classifiers.base.Classifier` (NaN rows: abstentions)."""

    def __init__(self, clf: Any, name: str, checkpoint: Path | None = None,
                 concurrency: int = 16) -> None:
        self.clf, self.name, self.checkpoint = clf, name, checkpoint
        if clf.kind == "judge":
            # A judge waits on the network: several small batches in flight at once, each
            # with its own requests in flight, keep ``concurrency`` items being graded.
            self.parallel = min(4, concurrency)
            self.batch_size = max(1, math.ceil(concurrency / self.parallel))
            self.clf = clf.with_settings(concurrency=self.batch_size * clf.settings.rounds)
            self.asynchronous = not clf.settings.shots and not clf.extras.get("work_dir")
        self._transport: Any = None

    def grade(self, examples: Sequence[Example]) -> list[Grade]:
        return _grades(self.clf.predictions(list(examples)))

    async def agrade(self, examples: Sequence[Example]) -> list[Grade]:
        """A zero-shot judge asked in the run's loop through one shared transport."""
        from ..judge.client import api_key_of
        from ..judge.core import ajudge_examples
        from ..judge.transport import make_transport

        settings = self.clf.settings
        transport = self.clf.transport or self._transport
        if transport is None:
            transport = self._transport = make_transport(
                settings.client, settings.base_url, api_key_of(settings), settings.timeout,
                settings.concurrency * self.parallel, settings.headers)
        judgement = await ajudge_examples(list(examples), settings, transport,
                                          allow_overlap=True)
        return _grades(judgement.predictions)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None


class GuardGrader(Grader):
    """The guard (:class:`~mhsafety.guard.core.Guard`) with its tiers; an unverified result
    (or a flag without a category) is ungraded."""

    def __init__(self, guard: Any, name: str, checkpoint: Path | None) -> None:
        self.guard, self.name, self.checkpoint = guard, name, checkpoint

    def grade(self, examples: Sequence[Example]) -> list[Grade]:
        from ..taxonomy import LABEL_NAMES

        out = []
        for result in self.guard.check_examples(list(examples)):
            if not result.verified:
                out.append(Grade(None, None, result.reason or "unverified"))
            elif result.label is None:  # a binary-only tier: unsafe, category unknown
                out.append(Grade(None, None, None, binary=result.decision == "unsafe"))
            else:
                probs = ([float(result.probabilities.get(n, 0.0)) for n in LABEL_NAMES]
                         if result.probabilities else None)
                out.append(Grade(int(result.label), probs))
        return out


def load_grader(spec: str, concurrency: int = 16) -> Grader:
    """The grader ``spec`` names (see the module text); errors are one sentence."""
    spec = spec.strip()
    if spec.startswith("guard:"):
        from ..guard import GuardConfig
        from ..guard.core import Guard

        folder = Path(spec.removeprefix("guard:"))
        guard = Guard.from_config(GuardConfig(checkpoint=folder))
        return GuardGrader(guard, f"guard:{folder.name}", folder)
    from ..registry import KINDS, create_classifier, load_classifier

    if Path(spec).is_dir():
        clf = load_classifier(spec)
        return ClassifierGrader(clf, Path(spec).resolve().name, Path(spec), concurrency)
    kind = spec.partition(":")[0]
    if kind == "judge":
        clf = create_classifier(spec, rounds=1)
        return ClassifierGrader(clf, spec.partition("@")[0], None, concurrency)
    if kind in KINDS:
        raise UsageError(f"grader {spec!r}: a {kind} must be trained first; give its "
                         "checkpoint folder (mhsafety train)")
    if os.path.sep in spec or Path(spec).suffix:
        raise DataError(f"grader {spec!r}: no such checkpoint folder")
    raise UsageError(f"grader {spec!r}: expected a checkpoint folder, guard:DIR or "
                     "judge:MODEL@URL")
