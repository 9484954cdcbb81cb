"""The benchmark as an lm-evaluation-harness task folder (``lm_eval --include_path DIR``).

``mhsafety export-task lm-eval --data PATH --out DIR`` writes three files into DIR:

``mhsafety_dialogue_safety.yaml``  the task: ``generate_until``, the project's prompt as
                                   ``doc_to_text``, the project's parser as a custom filter,
                                   and the project's metrics as aggregations
``utils.py``                       a few lines binding those functions to the settings file
``mhsafety_task.json``             the settings: the data path (read in place with mhsafety's
                                   own loader, never copied), shots, train file, parser, seed

so that::

    lm_eval --model local-chat-completions --apply_chat_template --include_path DIR \\
        --tasks mhsafety_dialogue_safety --model_args model=NAME,base_url=URL/chat/completions

runs it. The filter turns each answer into a label name, or ``[invalid]`` when the parser
finds none; every metric comes from :func:`mhsafety.metrics.compute_metrics`, so an invalid
answer counts as wrong, as in ``mhsafety evaluate``. With ``--log_samples`` the per-item
file (``samples_mhsafety_dialogue_safety_*.jsonl``) reads back into ``mhsafety evaluate``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..data import Example, load_examples
from ..errors import DataError
from ..io import write_json, write_text
from ..judge.prompts import load_template, plan_shots
from ..metrics import compute_metrics, harness_metrics
from ..settings import SettingsError
from ..taxonomy import LABEL_NAMES, label_id
from .common import METADATA_KEY, N_SHOTS, judge_settings, label_reader, run_metadata, shot_overlap

TASK_NAME = "mhsafety_dialogue_safety"
SETTINGS_FILE = "mhsafety_task.json"
# What the filter writes for an answer that names no label (never a label name).
INVALID = "[invalid]"
# lm-eval's own name for accuracy; every other harness metric keeps its registry name.
_LMEVAL_NAMES = {"accuracy": "acc"}
INVALID_METRIC = "invalid"


def task_metrics() -> dict[str, str]:
    """lm-eval metric name -> its aggregation function's name in this module: the scores of
    :data:`mhsafety.metrics.METRICS` that name a ``harness`` metric, then the share of
    invalid answers."""
    out = {_LMEVAL_NAMES.get(m.harness, m.harness): f"aggregate_{m.harness}"
           for m in harness_metrics() if m.harness}
    out[INVALID_METRIC] = "aggregate_invalid"
    return out


@dataclass
class LmEvalSettings:
    """What an exported task folder runs; kept in ``mhsafety_task.json`` beside the YAML."""

    data: str
    shots: int = 0
    train: str | None = None
    parser: str | None = None  # None: the judge's default, as every None here
    output: str | None = None
    seed: int | None = None
    template: str | None = None
    # Run even when the few-shot source shares items with the data (the rows are marked).
    allow_overlap: bool = False

    @property
    def judge(self) -> Any:
        """The judge's settings these stand for (its defaults, its checks)."""
        return judge_settings(parser=self.parser, output=self.output, seed=self.seed)

    def check(self) -> None:
        if self.shots not in (0, N_SHOTS):
            raise SettingsError(f"{{shots}} must be 0 or {N_SHOTS} (one example per label), "
                                f"got {self.shots}", "shots")
        if self.shots and not self.train:
            raise SettingsError(f"{{shots}} {N_SHOTS} needs {{train}}, the labelled file the "
                                "examples come from", "shots", "train")
        self.judge  # noqa: B018 - builds the judge settings, which check parser and output


class TaskFunctions:
    """The callables the task YAML names (``!function utils.<name>``), bound to settings."""

    def __init__(self, settings: LmEvalSettings) -> None:
        settings.check()
        self.settings = settings
        self.judge = settings.judge
        self.template = load_template(settings.template)
        self.parse = label_reader(self.judge)
        self._examples = load_examples(settings.data)
        self._shots = None
        # Items of the data that are also few-shot examples (refused unless allowed).
        self.overlap: list[str] = []
        if settings.shots:
            train = load_examples(settings.train)  # type: ignore[arg-type]
            self.overlap = shot_overlap(train, self._examples, f"--train {settings.train}",
                                        f"--data {settings.data}", settings.allow_overlap)
            # One draw (round 1 of the judge's plan): lm-eval has no rounds.
            self._shots = plan_shots(train, 1, self.judge.seed, str(settings.train))

    def metadata(self) -> dict[str, Any]:
        """What the task YAML records for the rows read back (shots, protocol, overlap,
        notes): :func:`mhsafety.integrations.common.run_metadata`."""
        return run_metadata(self.settings.shots, "flat", self.overlap, self.settings.train,
                            parser=self.judge.parser, output=self.judge.output,
                            template_sha256=self.template.sha256,
                            seed=self.judge.seed if self.settings.shots else None)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TaskFunctions:
        p = Path(path)
        try:
            values = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{p}: cannot read the task settings ({exc})") from None
        return cls(LmEvalSettings(**values))

    # -- dataset

    def load_dataset(self, **_: Any) -> Any:
        """The items as a one-split ``datasets.DatasetDict`` (lm-eval's ``custom_dataset``)."""
        import datasets

        rows = [{"id": ex.id, "context": ex.context, "response": ex.response,
                 "label": ex.label} for ex in self._examples]
        return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})

    # -- prompt and target

    def doc_to_text(self, doc: dict[str, Any]) -> str:
        item = Example(doc["context"], doc["response"], None, str(doc["id"]))
        shots = self._shots.for_item(1, item) if self._shots is not None else ()
        return self.template.render(item, shots, self.judge.output)

    def doc_to_target(self, doc: dict[str, Any]) -> str:
        return LABEL_NAMES[int(doc["label"])]

    # -- filter and per-item results

    def parse_answers(self, resps: Sequence[Sequence[str]], docs: Sequence[Any]) -> list[list[str]]:
        """The custom filter: each answer -> its label name, or ``[invalid]``."""
        out = []
        for answers in resps:
            row = []
            for answer in answers:
                label = self.parse(answer)
                row.append(INVALID if label is None else LABEL_NAMES[label])
            out.append(row)
        return out

    def process_results(self, doc: dict[str, Any], results: Sequence[str]) -> dict[str, Any]:
        answer: Any = results[0] if results else INVALID
        while isinstance(answer, (list, tuple)):  # one answer per repeat; the first counts
            answer = answer[0] if answer else INVALID
        pair = (int(doc["label"]), _label_or_none(answer))
        return {name: pair for name in task_metrics()}


def _label_or_none(name: str) -> int | None:
    return None if name == INVALID else label_id(name)


def _aggregate(name: str):
    def aggregate(pairs: Sequence[tuple[int, int | None]]) -> float:
        run = compute_metrics([g for g, _ in pairs], [p for _, p in pairs])
        return run.n_invalid / run.n if name == INVALID_METRIC else run.score(name)

    aggregate.__name__ = f"aggregate_{name}"
    return aggregate


def aggregate_invalid(pairs: Sequence[tuple[int, int | None]]) -> float:
    """Share of answers that named no label (already counted wrong in every other metric)."""
    return _aggregate(INVALID_METRIC)(pairs)


def __getattr__(name: str) -> Any:
    # aggregate_<harness name> of every registered score, so the YAML (through utils.py)
    # can name them as module functions, including a score registered after import.
    if name.startswith("aggregate_"):
        wanted = name[len("aggregate_"):]
        for m in harness_metrics():
            if m.harness == wanted:
                return _aggregate(m.name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_UTILS = '''\
"""Glue for the mhsafety dialogue-safety task; written by `mhsafety export-task lm-eval`.

The prompt, parser and metrics are mhsafety's own (mhsafety.integrations.lmeval); the
settings (data path, shots, parser) are in mhsafety_task.json beside this file.
"""

from pathlib import Path

from mhsafety.integrations.lmeval import TaskFunctions
from mhsafety.integrations.lmeval import (  # noqa: F401 - named by the task YAML
{aggregations}
)

_task = TaskFunctions.from_file(Path(__file__).with_name("{settings}"))
load_dataset = _task.load_dataset
doc_to_text = _task.doc_to_text
doc_to_target = _task.doc_to_target
parse_answers = _task.parse_answers
process_results = _task.process_results
'''


def task_yaml(judge: Any, metadata: dict[str, Any] | None = None) -> str:
    """The task YAML; its generation settings are the judge's (budget, sampling); its
    ``metadata`` carries ``metadata`` (shots, protocol, overlap, notes) under ``mhsafety``,
    which lm-eval copies into its results file, where the sample reader finds it."""
    recorded = json.dumps(metadata or {}, ensure_ascii=False)  # JSON is a YAML flow mapping
    better = {_LMEVAL_NAMES.get(m.harness, m.harness): m.higher_is_better
              for m in harness_metrics() if m.harness}
    metrics = "\n".join(
        f"  - metric: {name}\n    aggregation: !function utils.{function}\n"
        f"    higher_is_better: {'true' if better.get(name, False) else 'false'}"
        for name, function in task_metrics().items())
    return f"""\
# Dialogue safety in mental-health support (Qiu et al., NLPCC 2023), written by
# `mhsafety export-task lm-eval`. Prompt, parser and metrics are mhsafety's; see utils.py.
task: {TASK_NAME}
custom_dataset: !function utils.load_dataset
test_split: test
output_type: generate_until
doc_to_text: !function utils.doc_to_text
doc_to_target: !function utils.doc_to_target
num_fewshot: 0
generation_kwargs:
  until: []
  max_gen_toks: {judge.budget}
  temperature: {judge.temperature}
  top_p: {judge.top_p}
  do_sample: true
filter_list:
  - name: mhsafety-label
    filter:
      - function: custom
        filter_fn: !function utils.parse_answers
process_results: !function utils.process_results
metric_list:
{metrics}
metadata:
  version: 1.0
  {METADATA_KEY}: {recorded}
"""


def export_task(out: str | os.PathLike[str], settings: LmEvalSettings) -> Path:
    """Write the task folder for ``--include_path``; the data is referenced, not copied."""
    settings.data = str(Path(settings.data).resolve())
    if settings.train:
        settings.train = str(Path(settings.train).resolve())
    if settings.template:
        settings.template = str(Path(settings.template).resolve())
    task = TaskFunctions(settings)  # fail now, not inside lm_eval, on bad data or settings
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / SETTINGS_FILE, asdict(settings))
    aggregations = "\n".join(f"    {fn}," for fn in sorted(task_metrics().values()))
    write_text(folder / "utils.py", _UTILS.replace("{settings}", SETTINGS_FILE)
               .replace("{aggregations}", aggregations))
    write_text(folder / f"{TASK_NAME}.yaml", task_yaml(settings.judge, task.metadata()))
    return folder
