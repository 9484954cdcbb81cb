"""The benchmark as an inspect_ai task: ``inspect eval mhsafety/dialogue_safety``.

Installed with ``pip install 'mhsafety[inspect]'``, the package registers this module under
the ``inspect_ai`` entry point, so::

    inspect eval mhsafety/dialogue_safety --model openai/gpt-4o-mini -T data=test.json

runs it (without the entry point, name the file; its imports are absolute for that reason: ``inspect eval
src/mhsafety/integrations/inspect_task.py@dialogue_safety``). Task parameters (``-T k=v``):

``data``      the dataset file or exported dataset folder (default: the cached public test
              set, downloaded and verified on first use; nothing is bundled)
``shots``     0 (zero-shot) or 8 (one example per label, drawn from ``train``)
``train``     labelled file the few-shot examples come from (required with ``shots=8``);
              epoch *r* shows round *r*'s examples, the same draw as ``mhsafety judge
              --shots 8 --rounds R``, and an item is never its own example
``protocol``  ``flat`` (one question, eight answers: the paper's) or ``sequential`` (the
              judge's sequential protocol, :mod:`mhsafety.judge.sequential`: one question per
              node, stopping at the first that fires)
``parser``    how a text answer becomes a label: ``tolerant`` (default) or ``paper``
``output``    answer format asked for: ``text`` (default), ``json`` (sent as a JSON schema
              through inspect's ``response_schema``) or ``number``
``template``, ``system_prompt``, ``system_role``   the judge's prompt options
``seed``      seed of the few-shot draw
``reasoning_effort``  passed to reasoning models
``allow_overlap``  run even when ``train`` shares items with ``data`` (copies changed in no
              meaning included; refused otherwise, as ``mhsafety judge`` does): an item is
              never shown itself and every row read back is marked

The task's metadata (``mhsafety``) carries shots, protocol, the few-shot source, the overlap
count and the rows' notes, so ``mhsafety evaluate LOG.eval`` labels the runs right.

Every default is the judge's (:class:`mhsafety.judge.settings.JudgeSettings`), and so are the
prompt, the parser and the labels (:mod:`mhsafety.judge.prompts`, :mod:`mhsafety.judge.parse`,
:mod:`mhsafety.taxonomy`): a leading ``<think>`` block is taken off before parsing, as the
judge does. The judge's budget and sampling are the task's generation config; inspect's
``--max-tokens``/``--temperature`` override them.

The scorer marks each answer correct or incorrect and keeps the gold and parsed label in the
score's metadata. Its metrics are computed by :func:`mhsafety.metrics.compute_metrics`, so
an answer that names no label counts as wrong (never as a label), exactly as in ``mhsafety
evaluate``; with ``--epochs N`` every metric is the mean over the epochs of that epoch's
score, as the paper averages its rounds. ``mhsafety evaluate LOG.eval`` reads the log back
with each epoch as a run (mean ± std, intervals, report).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import (
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageUser,
    GenerateConfig,
)
from inspect_ai.scorer import (
    CORRECT,
    INCORRECT,
    Metric,
    SampleScore,
    Score,
    Target,
    metric,
    scorer,
)
from inspect_ai.solver import Generate, Solver, TaskState, generate, solver

from mhsafety import metrics
from mhsafety.data import Example, load_examples, resolve_data
from mhsafety.errors import UsageError
from mhsafety.integrations.common import (
    METADATA_KEY,
    N_SHOTS,
    OUTPUTS,
    PROTOCOLS,
    UNPARSED,
    judge_settings,
    label_reader,
    run_metadata,
    shot_overlap,
)
from mhsafety.judge.prompts import PromptTemplate, ShotPlan, load_template, plan_shots
from mhsafety.metrics import RunMetrics, compute_metrics
from mhsafety.taxonomy import LABEL_NAMES, label_id

TASK_NAME = "dialogue_safety"
# Where the sequential solver leaves its walk (label, error, node path) for the scorer.
WALK_KEY = "mhsafety_walk"


# --------------------------------------------------------------------------- metrics


def _runs(scores: Sequence[SampleScore]) -> list[RunMetrics]:
    """One RunMetrics per epoch (scores arrive unreduced: one per sample per epoch)."""
    by_epoch: dict[int, tuple[list[int], list[int | None]]] = {}
    for s in scores:
        # inspect passes SampleScores, or bare Scores on some paths (the unreduced one).
        meta = getattr(s, "score", s).metadata or {}
        gold, pred = by_epoch.setdefault(int(meta.get("epoch", 1)), ([], []))
        gold.append(int(meta["gold"]))
        pred.append(meta.get("pred"))
    return [compute_metrics(g, p) for _, (g, p) in sorted(by_epoch.items())]


def _mean_over_epochs(name: str, scores: Sequence[SampleScore]) -> float:
    runs = _runs(scores)
    if not runs:  # inspect asks each metric for its value over no samples: none, not an error
        return float("nan")
    return sum(r.score(name) for r in runs) / len(runs)


def _harness_metric(entry: metrics.Metric) -> Metric:
    """An inspect metric reporting a registered score (mean over the epochs)."""
    name = entry.name

    @metric(name=entry.harness, scores="unreduced")
    def score() -> Metric:
        # Annotated (not a lambda): inspect reads the annotation and warns about any metric
        # that does not declare list[SampleScore].
        def value(scores: list[SampleScore]) -> float:
            return _mean_over_epochs(name, scores)

        return value

    score.__doc__ = entry.doc
    return score()


@metric(name="invalid", scores="unreduced")
def invalid_share() -> Metric:
    """Share of answers that named no label (already counted wrong in every other metric)."""
    def share(scores: Sequence[SampleScore]) -> float:
        runs = _runs(scores)
        return sum(r.n_invalid / r.n for r in runs) / len(runs) if runs else float("nan")

    return share


def task_metrics() -> list[Metric]:
    """The task's metrics: every score of :data:`mhsafety.metrics.METRICS` that names a
    ``harness`` metric, read when the task is built, then the share of invalid answers."""
    return [*(_harness_metric(m) for m in metrics.harness_metrics()), invalid_share()]


# --------------------------------------------------------------------------- scorer


@scorer(metrics=task_metrics())
def safety_label(parser: str | None = None, output: str | None = None) -> Any:
    """Read the model's answer as the judge does (reasoning off, the output format's parser)
    and compare it with the gold label."""
    parse = label_reader(judge_settings(parser=parser, output=output))

    async def score(state: TaskState, target: Target) -> Score:
        walked = state.metadata.get(WALK_KEY)
        extra: dict[str, Any] = {}
        if walked is not None:  # the sequential protocol decided the label node by node
            pred, error = walked["label"], walked["error"]
            extra["path"] = walked["path"]
        else:
            pred = parse(state.output.completion if state.output else "")
            error = None
        if pred is None:
            error = error or UNPARSED
        gold = label_id(target.text)
        return Score(
            value=CORRECT if pred == gold else INCORRECT,
            answer=None if pred is None else LABEL_NAMES[pred],
            explanation=error,
            metadata={"gold": gold, "pred": pred, "epoch": state.epoch, "error": error,
                      **extra},
        )

    return score


# --------------------------------------------------------------------------- solver


def _chat(messages: Sequence[dict[str, str]]) -> list[ChatMessage]:
    kinds = {"system": ChatMessageSystem, "user": ChatMessageUser,
             "assistant": ChatMessageAssistant}
    return [kinds[m["role"]](content=m["content"]) for m in messages]


def _example(state: TaskState) -> Example:
    meta = state.metadata
    return Example(meta["context"], meta["response"], None, str(state.sample_id))


class _Shots:
    """The few-shot draw of every epoch, grown on demand (the draw of round r never changes
    with the number of rounds, since one generator seeded once draws them in order)."""

    def __init__(self, train: Sequence[Example], seed: int, source: str) -> None:
        self.train, self.seed, self.source = list(train), seed, source
        self.plan: ShotPlan = plan_shots(self.train, 1, seed, source)

    def for_item(self, epoch: int, item: Example) -> list[Example]:
        if epoch not in self.plan.rounds:
            self.plan = plan_shots(self.train, max(epoch, 2 * len(self.plan.rounds)),
                                   self.seed, self.source)
        return self.plan.for_item(epoch, item)


@solver
def judge_prompt(template: PromptTemplate, shots: _Shots | None = None,
                 output: str = "text") -> Solver:
    """Replace the sample's messages by the project's prompt for this epoch's shots."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        item = _example(state)
        examples = shots.for_item(state.epoch, item) if shots is not None else ()
        state.messages = _chat(template.messages(item, examples, output))
        return state

    return solve


@solver
def sequential_walk(parser: str | None = None) -> Solver:
    """Walk the four nodes, one question each, stopping at the first that fires."""
    from mhsafety.judge import sequential  # the judge's sequential protocol owns prompts and walk

    leaf_parser = label_reader(judge_settings(parser=parser))

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        item = _example(state)
        current = state

        async def ask(number: int) -> str | None:
            nonlocal current
            current.messages = _chat(sequential.node_messages(item, number))
            current = await generate(current)
            return current.output.completion if current.output else ""

        walked = await sequential.walk_item({}, ask, leaf_parser)
        current.metadata[WALK_KEY] = {"label": walked.label, "error": walked.error,
                                      "path": walked.path}
        return current

    return solve


# --------------------------------------------------------------------------- task


def _samples(examples: Sequence[Example], template: PromptTemplate, shots: _Shots | None,
             output: str) -> list[Sample]:
    out = []
    for ex in examples:
        shown = shots.for_item(1, ex) if shots is not None else ()
        out.append(Sample(
            input=_chat(template.messages(ex, shown, output)),
            target=LABEL_NAMES[ex.label],  # type: ignore[index]
            id=ex.id, metadata={"context": ex.context, "response": ex.response,
                                "label": ex.label}))
    return out


def _generate_config(settings: Any) -> GenerateConfig:
    """The judge's budget and sampling; its JSON schema with ``output=json``."""
    config: dict[str, Any] = {"max_tokens": settings.budget, "temperature": settings.temperature,
                              "top_p": settings.top_p}
    if settings.reasoning_effort is not None:
        config["reasoning_effort"] = settings.reasoning_effort
    if settings.output == "json":
        from inspect_ai.model import ResponseSchema
        from inspect_ai.util import JSONSchema

        from mhsafety.judge.prompts import label_schema

        config["response_schema"] = ResponseSchema(
            name="safety_label", json_schema=JSONSchema.model_validate(label_schema()),
            strict=True)
    return GenerateConfig(**config)


@task(name=TASK_NAME)
def dialogue_safety(data: str | None = None, shots: int = 0, train: str | None = None,
                    protocol: str = "flat", parser: str | None = None,
                    output: str | None = None, template: str | None = None,
                    system_prompt: str | None = None, system_role: bool = False,
                    seed: int | None = None, reasoning_effort: str | None = None,
                    allow_overlap: bool = False) -> Task:
    """Dialogue safety in mental-health support (Qiu et al., NLPCC 2023): eight labels."""
    shots = int(shots)
    if shots not in (0, N_SHOTS):
        raise UsageError(f"shots must be 0 or {N_SHOTS} (one example per label), "
                         f"got {shots}")
    if protocol not in PROTOCOLS:
        raise UsageError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if output is not None and output not in OUTPUTS:
        raise UsageError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    # The judge's own settings object checks the rest and holds every default.
    settings = judge_settings(parser=parser, output=output, seed=seed,
                              reasoning_effort=reasoning_effort)
    source = resolve_data(data)
    examples = load_examples(source)
    plan = None
    shared: list[str] = []
    if shots:
        if protocol != "flat":
            raise UsageError("few-shot examples belong to the flat protocol; "
                             "use shots=0 with protocol=sequential")
        if train is None:
            raise UsageError("shots=8 needs train=PATH, the labelled file the examples come from")
        train_examples = load_examples(train)
        shared = shot_overlap(train_examples, examples, f"train={train}", f"data={source}",
                              _flag(allow_overlap), "-T allow_overlap=true")
        plan = _Shots(train_examples, settings.seed, "train")
    prompt = load_template(template, system_prompt, bool(system_role))
    if protocol == "flat":
        solver_chain = [judge_prompt(prompt, plan, settings.output), generate()]
    else:
        solver_chain = [sequential_walk(settings.parser)]
    return Task(
        dataset=MemoryDataset(_samples(examples, prompt, plan, settings.output),
                              name=TASK_NAME, location=str(source)),
        solver=solver_chain,
        scorer=safety_label(settings.parser, settings.output),
        metrics=task_metrics(),  # a score registered after this module loaded is in too
        config=_generate_config(settings),
        metadata={METADATA_KEY: {"data": str(source), **run_metadata(
            shots, protocol, shared, str(train) if train else None, parser=settings.parser,
            output=settings.output, template_sha256=prompt.sha256,
            seed=settings.seed if shots else None)}},
    )


def _flag(value: Any) -> bool:
    """A boolean task parameter (``-T allow_overlap=true`` may arrive as text)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


# The package's inspect_ai entry point names this module: importing the chatbot audit here
# registers its task (``mhsafety/chatbot_safety``) beside this one.
from mhsafety.integrations import inspect_chatbot  # noqa: F401
