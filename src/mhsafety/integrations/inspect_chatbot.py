"""A chatbot audit as an inspect_ai task: ``inspect eval mhsafety/chatbot_safety``.

The model under evaluation is the solver; a grader the project knows is the scorer::

    inspect eval mhsafety/chatbot_safety --model openai/gpt-4o-mini -T grader=CHECKPOINT

(without the entry point, name the file: ``inspect eval
src/mhsafety/integrations/inspect_chatbot.py@chatbot_safety``). Each sample is one prompt:
a distinct context of the data (seeker turns as ``user``, supporter turns as ``assistant``
messages, role tags removed), or with ``personas`` the opening message of each simulated
seeker (a single-turn view of the multi-turn probe). The model answers once per epoch
(``--epochs N``: N replies per prompt); the grader labels the reply against the
conversation before it. Task parameters (``-T k=v``):

``grader``         a classifier checkpoint folder (any kind: baseline, encoder, judge, ...;
                   :func:`mhsafety.registry.load_classifier`), required
``data``           the dataset file or exported dataset folder whose contexts are the prompts
                   (default: the cached public test set)
``personas``       ``default`` or a persona file/folder: their openings are the prompts
                   instead (each reply carries the persona and its risk level)
``system_prompt``  a file whose text is sent as the system message
``target``         the target's name in the summary and report (default: the model's name)

A reply is graded after a leading ``<think>`` block is taken off (the block is kept in the
score's metadata). A reply the grader could not grade (the grader abstained, or the reply
is empty) is unscored with its reason, never safe: it counts in ``ungraded`` and in no rate.
Metrics: ``unsafe_rate`` (unsafe / graded replies, every epoch), ``ungraded`` (count) and
``categories`` (graded replies per label). ``mhsafety report LOG.eval --out DIR`` reads the
log back as graded replies (:func:`mhsafety.integrations.harness_logs.read_chatbot_log`)
and writes the audit's summary and report, as for a ``mhsafety probe`` folder.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inspect_ai import Epochs, Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser
from inspect_ai.scorer import (
    NOANSWER,
    Metric,
    SampleScore,
    Score,
    ScoreReducer,
    Target,
    metric,
    score_reducer,
    scorer,
)
from inspect_ai.solver import TaskState, generate

from mhsafety.classifiers.base import Classifier
from mhsafety.data import Example, Turn, format_turns, load_examples, resolve_data
from mhsafety.errors import DataError, UsageError
from mhsafety.guard.items import EMPTY_REPLY, empty_reply
from mhsafety.integrations.harness_logs import CHATBOT_METADATA_KEY, CHATBOT_SCORER, CHATBOT_TASK
from mhsafety.judge.parse import split_reasoning
from mhsafety.probe.personas import load_personas, target_messages
from mhsafety.registry import load_classifier
from mhsafety.taxonomy import LABEL_NAMES, NUM_LABELS, SAFE_LABEL

# --------------------------------------------------------------------------- metrics


def _preds(scores: Sequence[SampleScore]) -> list[int | None]:
    return [(getattr(s, "score", s).metadata or {}).get("pred") for s in scores]


@metric(name="unsafe_rate", scores="unreduced")
def unsafe_rate() -> Metric:
    """Share of graded replies the grader found unsafe (every epoch's reply counts)."""
    def value(scores: list[SampleScore]) -> float:
        graded = [p for p in _preds(scores) if p is not None]
        return sum(p != SAFE_LABEL for p in graded) / len(graded) if graded else math.nan

    return value


@metric(name="ungraded", scores="unreduced")
def ungraded() -> Metric:
    """Replies the grader could not grade (in no rate, never counted safe)."""
    def value(scores: list[SampleScore]) -> float:
        return float(sum(p is None for p in _preds(scores)))

    return value


@metric(name="categories", scores="unreduced")
def categories() -> Metric:
    """Graded replies per label."""
    def value(scores: list[SampleScore]) -> dict[str, float]:
        preds = _preds(scores)
        return {name: float(sum(p == k for p in preds)) for k, name in enumerate(LABEL_NAMES)}

    return value


@score_reducer(name="graded_mean")
def graded_mean() -> ScoreReducer:
    """A prompt's epochs as one score: the share of its graded replies that are unsafe;
    unscored when no epoch was graded (never 0, which would read as safe)."""
    def reduce(scores: list[Score]) -> Score:
        graded = [float(s.value) for s in scores if s.value != NOANSWER]  # type: ignore[arg-type]
        if not graded:
            return Score(value=NOANSWER, explanation="no reply graded")
        return Score(value=sum(graded) / len(graded))

    return reduce


# --------------------------------------------------------------------------- scorer


def grade_reply(grader: Classifier, context: str, completion: str,
                item_id: str = "0") -> dict[str, Any]:
    """The grader's verdict on one reply as the score's metadata: ``pred`` (None: ungraded,
    ``error`` says why), ``probs``, the ``reply`` as graded and its ``reasoning`` block."""
    reasoning, answer = split_reasoning(completion or "")
    out: dict[str, Any] = {"reply": answer, "reasoning": reasoning, "pred": None,
                           "probs": None, "error": None}
    if empty_reply(answer):
        out["error"] = EMPTY_REPLY
        return out
    example = Example(context, format_turns([Turn("supporter", answer)]), None, item_id)
    predictions = grader.predictions([example])
    label = int(predictions.labels[0])
    if label < 0:
        out["error"] = predictions.reasons[0] or "the grader gave no answer"
    else:
        out["pred"] = label
        out["probs"] = [float(p) for p in predictions.probs[0]]
    return out


def grader_name(classifier: Classifier, checkpoint: str) -> str:
    """How the records name the grader: its kind and its checkpoint folder's name."""
    return f"{classifier.kind}:{Path(checkpoint).name}"


@scorer(metrics=[unsafe_rate(), ungraded(), categories()], name=CHATBOT_SCORER)
def chatbot_grader(grader: str) -> Any:
    """Grade the model's reply against the sample's context with the classifier checkpoint
    ``grader``: 1 unsafe, 0 safe, unscored (``N``, with the reason) when it could not be
    graded."""
    classifier = load_classifier(grader)  # loaded once, when the task is built
    name = grader_name(classifier, grader)
    lock = threading.Lock()  # one classifier, one call at a time: kinds need not be reentrant

    def graded(context: str, completion: str, item_id: str) -> dict[str, Any]:
        with lock:
            return grade_reply(classifier, context, completion, item_id)

    async def score(state: TaskState, target: Target) -> Score:
        completion = state.output.completion if state.output else ""
        reasoning = _reasoning_content(state)
        verdict = await asyncio.to_thread(graded, state.metadata["context"], completion,
                                          str(state.sample_id))
        if reasoning and not verdict["reasoning"]:
            verdict["reasoning"] = reasoning
        verdict["grader"] = name
        pred = verdict["pred"]
        return Score(value=NOANSWER if pred is None else float(pred != SAFE_LABEL),
                     answer=None if pred is None else LABEL_NAMES[pred],
                     explanation=verdict["error"], metadata=verdict)

    return score


def _reasoning_content(state: TaskState) -> str | None:
    """Reasoning the provider returned apart from the text (inspect's ContentReasoning)."""
    message = state.output.message if state.output and state.output.choices else None
    content = getattr(message, "content", None)
    if not isinstance(content, list):
        return None
    parts = [getattr(c, "reasoning", None) for c in content if c.type == "reasoning"]
    return "\n".join(p for p in parts if p) or None


# --------------------------------------------------------------------------- dataset


def _chat(messages: Sequence[dict[str, str]]) -> list[Any]:
    kinds = {"system": ChatMessageSystem, "user": ChatMessageUser,
             "assistant": ChatMessageAssistant}
    return [kinds[m["role"]](content=m["content"]) for m in messages]


def context_prompts(examples: Sequence[Example]) -> list[tuple[str, str]]:
    """``(prompt_id, context)`` of each distinct context, in order of first appearance; the
    id is that of the context's first item."""
    seen: dict[str, str] = {}
    for i, ex in enumerate(examples):
        seen.setdefault(ex.context, ex.id if ex.id is not None else str(i))
    return [(pid, context) for context, pid in seen.items()]


def _samples(data: str | None, personas: str | None, system: str | None) -> list[Sample]:
    if personas is not None:
        out = []
        for persona in load_personas(personas):
            context = format_turns([Turn("seeker", persona.opening)])
            out.append(Sample(input=_chat(target_messages(context, system)),
                              id=f"persona:{persona.name}",
                              metadata={"prompt_id": f"persona:{persona.name}",
                                        "context": context, "persona": persona.name,
                                        "risk": persona.risk}))
        return out
    examples = load_examples(resolve_data(data))
    return [Sample(input=_chat(target_messages(context, system)), id=pid,
                   metadata={"prompt_id": pid, "context": context})
            for pid, context in context_prompts(examples)]


@task(name=CHATBOT_TASK)
def chatbot_safety(grader: str | None = None, data: str | None = None,
                   personas: str | None = None, system_prompt: str | None = None,
                   target: str | None = None) -> Task:
    """Audit a chatbot: its replies to the data's contexts (or to simulated seekers'
    openings), graded by the taxonomy with any classifier checkpoint."""
    if grader is None:
        raise UsageError("chatbot_safety needs grader=CHECKPOINT, the classifier folder that "
                         "grades the replies")
    if data is not None and personas is not None:
        raise UsageError("give data=FILE or personas=SET, not both")
    system = None
    if system_prompt is not None:
        path = Path(system_prompt)
        if not path.is_file():
            raise DataError(f"{path}: no such file (system_prompt takes a file)")
        system = path.read_text(encoding="utf-8")
    samples = _samples(data, personas, system)
    return Task(
        dataset=MemoryDataset(samples, name=CHATBOT_TASK),
        solver=[generate()],
        scorer=chatbot_grader(str(grader)),
        epochs=Epochs(1, graded_mean()),
        metadata={CHATBOT_METADATA_KEY: {
            "grader": str(grader), "target": target,
            "prompts": "personas" if personas is not None else "data",
            "source": str(personas) if personas is not None else str(resolve_data(data)),
            "system_prompt": str(system_prompt) if system_prompt else None,
            "labels": NUM_LABELS}},
    )
