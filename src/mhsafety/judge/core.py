"""The judge as a function: examples and settings in, predictions out, no file touched.

``judge_examples(examples, JudgeSettings(model=..., base_url=...))`` asks the model about
every item for ``settings.rounds`` rounds through a transport (the built-in HTTP client by
default; ``mhsafety.testing.MockTransport(handler)`` in tests) and returns a
:class:`Judgement`: the rounds combined into :class:`~mhsafety.classifiers.base.Predictions`
(an abstention is a NaN row with its reason: "unparseable answer: ...", "timeout: ...",
"server unreachable: ..."), each round's prediction records, and the outcome of every
request (answer text, reasoning kept apart, finish reason, model, usage, latency, attempts;
or the error). Both protocols (flat, sequential) and every request shape (token-field
switch, reasoning models, logprobs, samples, JSON output) work here; the Batch API needs a
folder and lives in ``run_judge``.

The resumable folder runner (:mod:`mhsafety.judge.runner`) is a layer on top: it uses
:func:`plan_run`, :func:`pending_jobs` and :func:`send_pending` with logs read from disk and an ``on_entry`` that
appends to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..classifiers.base import Predictions
from ..data import Example, check_overlap, examples_hash, find_overlap
from ..errors import UsageError
from ..records import NOTE_SHOTS_FROM_JUDGED, PredictionRecord
from ..settings import SettingsError
from . import sequential as seq
from .client import ChatClient, FatalAPIError, refusal_message, run_sync
from .executor import FollowUp, OnEntry, execute
from .jobs import Job, Prompts, flat_jobs, follow_walk, remember, sequential_jobs, sequential_steps
from .log import RoundLog
from .parse import answer_parser, read_answer
from .prompts import PromptTemplate, ShotPlan, load_template, plan_shots
from .results import Usage, Verdicts, all_records, combine_rounds, usage_counts
from .settings import JudgeSettings
from .transport import Transport

__all__ = ["Judgement", "Pending", "RunPlan", "ajudge_examples", "check_settings",
           "judge_examples", "pending_jobs", "plan_run", "send_pending"]


@dataclass
class RunPlan:
    """A checked run: the items and their ids, the prompts, the settings' cache key and the
    records' notes. Built once by :func:`plan_run`; the in-memory judge and the folder
    runner both send from it."""

    examples: Sequence[Example]
    ids: list[str]
    settings: JudgeSettings
    template: PromptTemplate
    shots: ShotPlan | None
    key: str
    notes: list[str]
    shots_from_judged: bool = False  # the few-shot source is (or overlaps) the judged file

    @property
    def sequential(self) -> bool:
        return self.settings.protocol == "sequential"

    @property
    def prompts(self) -> Prompts:
        return Prompts(self.template, self.shots, self.settings.output)

    def empty_logs(self) -> dict[int, RoundLog]:
        return {r: RoundLog() for r in range(1, self.settings.rounds + 1)}


def _literal(text: str) -> str:
    """``text`` inside a :class:`SettingsError` template, its braces kept as they are."""
    return text.replace("{", "{{").replace("}", "}}")


def check_settings(settings: JudgeSettings, template: PromptTemplate | None = None) -> None:
    """What a judge needs of its settings before anything else happens (each field and the
    rules across fields were checked when the settings were made)."""
    if not settings.model:
        raise SettingsError("a judge needs a model ({model})", "model")
    if not settings.base_url:
        raise SettingsError("a judge needs a base URL ({base_url})", "base_url")
    if settings.protocol == "sequential" and template is not None \
            and template.source != "built-in":
        raise SettingsError(f"{_literal(template.source)}: a template replaces the flat "
                            "prompt; {protocol} sequential asks its own node prompts",
                            "protocol")


def _few_shot(settings: JudgeSettings, template: PromptTemplate, examples: Sequence[Example],
              train: Sequence[Example] | None, data_source: str | None,
              train_source: str | None, allow_overlap: bool) -> ShotPlan | None:
    if not settings.shots:
        return None
    if not train:
        raise SettingsError("few-shot judging ({shots} " + str(settings.shots) + ") needs "
                            "{train}: labelled examples to draw from", "shots", "train")
    if "examples" not in template.placeholders:
        raise UsageError(f"{template.source}: few-shot judging needs $examples in the "
                         "template")
    check_overlap(train, examples, train_source or "the --train items",
                  data_source or "the judged items", allow_overlap)
    return plan_shots(train, settings.rounds, settings.seed, train_source or "--train")


def plan_run(examples: Sequence[Example], settings: JudgeSettings,
             train: Sequence[Example] | None = None, template: PromptTemplate | None = None,
             *, data_source: str | None = None, train_source: str | None = None,
             allow_overlap: bool = False) -> RunPlan:
    """Check everything a run needs before any request: settings, template, items (unique
    ids), few-shot source (refused when it shares items with ``examples``, unless
    ``allow_overlap``: the records are then marked and no item is its own example)."""
    check_settings(settings, template)
    template = template or load_template(settings.template, settings.system_prompt,
                                         settings.system_role)
    if not examples:
        raise UsageError("no items to judge")
    shots = _few_shot(settings, template, examples, train, data_source, train_source,
                      allow_overlap)
    ids = [ex.id or str(i) for i, ex in enumerate(examples)]
    if len(set(ids)) != len(ids):
        raise UsageError("item ids repeat; every item needs its own id to be resumable")
    key = settings.cache_key(seq.templates_sha256() if settings.protocol == "sequential"
                             else template.sha256)
    same_file = shots is not None and train is not None \
        and examples_hash(train) == examples_hash(examples)
    judged = same_file or (shots is not None and train is not None
                           and bool(find_overlap(train, examples)))
    notes = [NOTE_SHOTS_FROM_JUDGED] if judged else []
    return RunPlan(examples, ids, settings, template, shots, key, notes, judged)


def collector(logs: dict[int, RoundLog], plan: RunPlan, verdicts: Verdicts
              ) -> Callable[[Job, dict[str, Any]], None]:
    """An ``on_entry`` that keeps each outcome in ``logs`` and parses a flat answer as it
    arrives (while the pool waits on the network)."""
    settings = plan.settings
    parse = answer_parser(settings.output, settings.parser)
    flat = not plan.sequential

    def keep(job: Job, entry: dict[str, Any]) -> None:
        remember(logs, job, entry)
        if flat and "answer" in entry:
            verdicts[(job.round_no, job.item_id)] = read_answer(entry, parse,
                                                                settings.logprobs)

    return keep


@dataclass
class Pending:
    """What a run still has to send: the jobs (flat: a lazy generator; sequential: the next
    node of every unfinished walk), how many (requests, or walks), and the follow-up that
    chains a walk's nodes."""

    jobs: Iterable[Job]
    total: int
    follow_up: FollowUp | None = None


def pending_jobs(plan: RunPlan, logs: dict[int, RoundLog]) -> Pending:
    """The job source over ``logs`` (empty in memory; the resume logs in a folder)."""
    settings = plan.settings
    if plan.sequential:
        steps = sequential_steps(plan.examples, plan.ids)
        parse = answer_parser(settings.output, settings.parser)
        jobs = sequential_jobs(plan.ids, logs, steps, parse)
        return Pending(jobs, len(jobs), follow_walk(logs, steps, parse))
    # Counted before the logs are settled against today's prompts: an answer logged for
    # another prompt counts here but is asked again.
    id_set = set(plan.ids)
    resumed = sum(len(lg.answered_ids & id_set) for lg in logs.values())
    return Pending(flat_jobs(plan.examples, plan.ids, plan.prompts, logs),
                   settings.rounds * len(plan.examples) - resumed)


async def send_pending(pending: Pending, client: ChatClient, key: str, on_entry: OnEntry,
                       show_progress: bool = False) -> dict[str, Any]:
    """Send ``pending`` through ``client``, passing every outcome to ``on_entry``. Returns
    this run's counts and timing (sequential: also ``items``, the walks sent)."""
    stats = await execute(pending.jobs, client, key, on_entry, total=pending.total,
                          show_progress=show_progress, follow_up=pending.follow_up)
    return {**stats, "items": pending.total} if pending.follow_up is not None else stats


@dataclass
class Judgement:
    """What :func:`judge_examples` returns.

    ``predictions``: the rounds combined (NaN row + reason where no round answered);
    ``probs_from``: what the probabilities are (logprobs or vote shares; None when no item
    was answered); ``records``: each round's prediction records (``"1"``, ``"2"``, ... and
    ``"vote"`` with ``settings.vote``); ``outcomes``: per round, each request's outcome by
    item id (sequential: by step id ``<item>#<node>``), as a log line holds it: ``answer``,
    ``reasoning``, ``finish_reason``, ``model``, ``usage``, ``latency_s``, ``attempts``, or
    ``error``; ``stats``: this run's requests, retries and timing; ``usage``: models and
    tokens over every answer."""

    predictions: Predictions
    probs_from: str | None
    records: dict[str, list[PredictionRecord]]
    outcomes: dict[int, dict[str, dict[str, Any]]]
    stats: dict[str, Any]
    usage: Usage
    settings: JudgeSettings

    @property
    def tokens(self) -> dict[str, int]:
        return self.usage.token_totals()


async def ajudge_examples(examples: Sequence[Example], settings: JudgeSettings,
                          transport: Transport | None = None, *,
                          train: Sequence[Example] | None = None,
                          template: PromptTemplate | None = None,
                          allow_overlap: bool = False,
                          show_progress: bool = False) -> Judgement:
    """:func:`judge_examples` in a running event loop."""
    plan = plan_run(examples, settings, train, template, allow_overlap=allow_overlap)
    if settings.batch:
        raise SettingsError("the Batch API ({batch}) keeps its state in a results folder: "
                            "use run_judge", "batch")
    logs = plan.empty_logs()
    verdicts: Verdicts = {}
    client = ChatClient(settings, transport)
    try:
        stats = await send_pending(pending_jobs(plan, logs), client, plan.key,
                                   collector(logs, plan, verdicts), show_progress)
    except FatalAPIError as exc:
        raise FatalAPIError(refusal_message(exc, settings, client.api_key), exc.status,
                            exc.param) from None
    finally:
        await client.aclose()
    judged = all_records(logs, plan.examples, plan.ids, settings, plan.notes, verdicts)
    rounds = [judged.records[str(r)] for r in logs]
    predictions, probs_from = combine_rounds(rounds, len(plan.examples))
    outcomes = {r: {**lg.failures, **lg.answers} for r, lg in logs.items()}
    return Judgement(predictions, probs_from, judged.records, outcomes, stats,
                     usage_counts(logs), settings)


def judge_examples(examples: Sequence[Example], settings: JudgeSettings,
                   transport: Transport | None = None, *,
                   train: Sequence[Example] | None = None,
                   template: PromptTemplate | None = None,
                   allow_overlap: bool = False, show_progress: bool = False) -> Judgement:
    """Judge ``examples`` in memory: ``settings.rounds`` rounds, ``settings.concurrency``
    requests in flight, through ``transport`` (default: the built-in client
    ``settings.client`` names; a transport passed in stays open). Nothing is read from or
    written to disk (a template named by ``settings.template`` is read once; pass
    ``template`` to avoid even that).

    Few-shot judging (``settings.shots``) draws from ``train``; items shared with
    ``examples`` are refused unless ``allow_overlap``. Raises
    :class:`~mhsafety.errors.UsageError` for bad input and
    :class:`~mhsafety.judge.client.FatalAPIError` when the server refuses outright (bad key,
    unknown model, nothing listening, ``settings.stop_after_failures`` failures in a row).
    Works inside a running event loop too (a notebook).
    """
    return run_sync(ajudge_examples(examples, settings, transport, train=train,
                                    template=template, allow_overlap=allow_overlap,
                                    show_progress=show_progress))
