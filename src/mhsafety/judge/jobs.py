"""The judge's job source: which requests a run still has to send, and the record of each.

A :class:`Job` is one request (the round and item it answers, its messages as JSON, their
hash). The sources below turn examples into jobs, skipping what a :class:`RoundLog` already
holds: empty logs for the in-memory judge (:mod:`mhsafety.judge.core`), the folder's resume
logs for ``run_judge``. :func:`log_entry` is the record of one request's outcome: a line of
the resume log, and the per-request result the in-memory judge returns.

- :func:`flat_jobs`: one request per item and round, generated lazily so that prompts are
  built while earlier requests are in flight, each serialised once (for its hash and for
  the request);
- :func:`sequential_jobs` / :func:`next_node`: the sequential protocol's next node question
  of every unfinished walk, and the one after an answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..data import Example
from . import sequential as seq
from .client import Answer, Failure
from .log import LOG_VERSION, RoundLog
from .parse import Parser
from .prompts import PromptTemplate, ShotPlan, messages_json, prompt_hash

_clock: list[Any] = [None, ""]


def now() -> str:
    """The time, to the second, as ISO text."""
    # The log stamps every answer; formatting a datetime per answer showed up in the profile
    # at 64 in flight, so the text is kept for the current second.
    second = int(time.time())
    if _clock[0] != second:
        _clock[0] = second
        _clock[1] = datetime.fromtimestamp(second, timezone.utc).isoformat(timespec="seconds")
    return _clock[1]


class Prompts:
    """The messages of an item in a round: the template, the round's few-shot examples (the
    item itself never among them) and the answer format of ``--output``."""

    def __init__(self, template: PromptTemplate, plan: ShotPlan | None, output: str) -> None:
        self.template, self.plan, self.output = template, plan, output

    def messages(self, round_no: int, ex: Example) -> list[dict[str, str]]:
        shots = self.plan.for_item(round_no, ex) if self.plan is not None else []
        return self.template.messages(ex, shots, self.output)

    def messages_json(self, round_no: int, ex: Example) -> bytes:
        """``messages_json(self.messages(round_no, ex))``, built faster (what is sent)."""
        shots = self.plan.for_item(round_no, ex) if self.plan is not None else []
        return self.template.messages_json(ex, shots, self.output)


@dataclass
class Job:
    """One request to send: the round and item it answers and its messages (JSON)."""

    round_no: int
    item_id: str
    messages_json: bytes
    prompt_hash: str
    extra: dict[str, Any] = field(default_factory=dict)  # more fields for its log line


def log_entry(job: Job, key: str, result: Answer | Failure) -> dict[str, Any]:
    """The record of one request's outcome (a resume-log line): the answer text(s), the
    reasoning kept apart, finish reason, logprobs, model, usage, latency, attempts; or the
    error of a failure."""
    entry: dict[str, Any] = {"v": LOG_VERSION, "key": key, "round": job.round_no,
                             "id": job.item_id, "prompt_hash": job.prompt_hash, **job.extra}
    if isinstance(result, Answer):
        first = result.choices[0]
        entry["answer"] = first.content
        if len(result.choices) > 1:
            entry["answers"] = [c.content for c in result.choices]
        if first.reasoning is not None:
            entry["reasoning"] = first.reasoning  # kept for reading, never parsed
        if first.finish_reason is not None:
            entry["finish_reason"] = first.finish_reason
        if first.logprobs is not None:
            entry["logprobs"] = first.logprobs
        entry.update(model=result.model, system_fingerprint=result.system_fingerprint,
                     usage=result.usage, latency_s=round(result.latency_s, 4),
                     attempts=result.attempts)
    else:
        entry.update(error=result.reason, attempts=result.attempts)
    entry["time"] = now()
    return entry


def remember(logs: dict[int, RoundLog], job: Job, entry: dict[str, Any]) -> None:
    """Keep ``entry`` as the round's current outcome for its item (an answer wins)."""
    lg = logs[job.round_no]
    if "answer" in entry:
        lg.answers[job.item_id] = entry
        lg.failures.pop(job.item_id, None)
    else:
        lg.failures[job.item_id] = entry


def flat_jobs(examples: Sequence[Example], ids: Sequence[str], prompts: Prompts,
              logs: dict[int, RoundLog]) -> Iterator[Job]:
    """Every (round, item) whose logged outcome for today's prompt holds no answer.

    Lazy: each prompt is built when the pool pulls its job, serialised once for its hash
    and, when it still has to be asked, for the request; a logged answer counts only for
    the same prompt (:meth:`RoundLog.settle`), and a round's leftovers are stale."""
    for r, lg in logs.items():
        for i, ex in enumerate(examples):
            blob = prompts.messages_json(r, ex)
            digest = prompt_hash(blob)
            if not lg.settle(ids[i], digest):
                yield Job(r, ids[i], blob, digest)
        lg.finish()


# --------------------------------------------------------------------------- sequential


Steps = dict[str, tuple[bytes, str]]  # step id -> (messages JSON, prompt hash)


def sequential_steps(examples: Sequence[Example], ids: Sequence[str]) -> Steps:
    """Every node question of every item (node prompts do not change between rounds)."""
    return seq.step_prompts(list(zip(ids, examples)), messages_json, prompt_hash)


def sequential_jobs(ids: Sequence[str], logs: dict[int, RoundLog], steps: Steps,
                    parse: Parser) -> list[Job]:
    """The next node of every unfinished walk, after settling each round's logged steps."""
    jobs = []
    for r, lg in logs.items():
        for sid, (_blob, digest) in steps.items():
            lg.settle(sid, digest)
        lg.finish()
        for item_id in ids:
            job = next_node(r, item_id, lg, steps, parse)
            if job is not None:
                jobs.append(job)
    return jobs


def next_node(round_no: int, item_id: str, lg: RoundLog, steps: Steps,
              parse: Parser) -> Job | None:
    """The node question to ask next for ``item_id`` (None once its walk is done)."""
    state = seq.walk(seq.answers_of(lg.answers, item_id), parse)
    if state.done:
        return None
    sid = seq.step_id(item_id, state.next_node or 1)
    blob, digest = steps[sid]
    return Job(round_no, sid, blob, digest, extra={"item": item_id})


def follow_walk(logs: dict[int, RoundLog], steps: Steps, parse: Parser
                ) -> Callable[[Job, dict[str, Any]], Job | None]:
    """The executor's ``follow_up`` for the sequential protocol: after an answered node, the
    same slot asks the item's next node; a failed step ends the walk for this run."""

    def follow(job: Job, entry: dict[str, Any]) -> Job | None:
        if "answer" not in entry:
            return None
        return next_node(job.round_no, job.extra["item"], logs[job.round_no], steps, parse)

    return follow
