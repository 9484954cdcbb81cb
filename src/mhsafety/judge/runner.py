"""``run_judge``: label every item with an LLM, round after round, resumably.

Layout of the output folder::

    manifest.json            what was run (model asked and answered, URL, sampling, prompt
                             template hash, few-shot ids per round, seed, version)
    log/round-<r>.jsonl      one line per answered (or finally failed) request, appended
                             and flushed as it happens: the resume log (see ``log.py``)
    preds/round-<r>.preds.jsonl   prediction records of round r (the project's format)
    preds/vote.preds.jsonl   majority vote over the rounds (with ``vote=True``)
    summary.json             counts, token usage, cost estimate, timing

The pieces other protocols reuse: :class:`Prompts` turns an item of a round into messages,
:func:`~mhsafety.judge.parse.read_answer` turns a logged answer into a verdict, and
:func:`ask_all` sends a list of :class:`Job` (any rounds, any items) through one pool of
``concurrency`` requests in flight, logging each answer as it arrives.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..data import Example, check_overlap, examples_hash, find_overlap
from ..errors import UsageError
from ..io import write_json
from ..records import NOTE_SHOTS_FROM_JUDGED, PredictionRecord, write_records
from . import sequential as seq
from .client import (
    UNREACHABLE,
    Answer,
    Failure,
    FatalAPIError,
    RequestShape,
    RetryPolicy,
    complete,
    make_transport,
    resolve_transport,
)
from .log import LOG_VERSION, Log, RoundLog, exclusive, read_round_log
from .parse import PROBS_VOTES, Verdict, answer_parser, read_answer, vote
from .prompts import (
    PromptTemplate,
    ShotPlan,
    load_template,
    messages_json,
    plan_shots,
    prompt_hash,
)
from .settings import JudgeSettings

__all__ = ["Job", "JudgeResult", "JudgeSettings", "Prompts", "ask_all", "format_summary",
           "run_judge", "vote"]


@dataclass
class JudgeResult:
    out_dir: Path
    summary: dict[str, Any]
    manifest: dict[str, Any]
    prediction_files: list[Path]
    records: dict[str, list[PredictionRecord]]


def _run_async(coro: Any) -> Any:
    """``asyncio.run``, also from inside a running loop (a Jupyter notebook): then in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _api_key(env_name: str) -> str | None:
    value = os.environ.get(env_name)
    return value or None


_clock: list[Any] = [None, ""]


def _now() -> str:
    # The log stamps every answer to the second; formatting a datetime per answer showed up
    # in the profile at 64 in flight, so the text is kept for the current second.
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


def run_judge(examples: Sequence[Example], out_dir: str | os.PathLike[str],
              settings: JudgeSettings, train: Sequence[Example] | None = None,
              template: PromptTemplate | None = None,
              data_source: str | None = None, train_source: str | None = None,
              show_progress: bool = True,
              on_message: Callable[[str], None] | None = None,
              batch_file_only: bool = False,
              batch_results: str | os.PathLike[str] | None = None,
              allow_overlap: bool = False) -> JudgeResult:
    """Judge ``examples`` for ``settings.rounds`` rounds, resuming whatever ``out_dir`` holds.

    The API key is read from the environment variable ``settings.api_key_env`` and only ever
    sent in the Authorization header. Raises :class:`~mhsafety.errors.UsageError` when the
    server refuses the requests outright (nothing listens, bad key, unknown model); answers
    logged until then are kept for the next run.

    ``batch_file_only`` writes the pending requests to ``OUT/batch/requests.jsonl`` (for
    ``vllm run-batch``) and returns without sending anything; ``batch_results`` joins such a
    run's output file into the log instead of asking (see :mod:`mhsafety.judge.batch`).

    Few-shot examples drawn from a ``train`` that shares items with ``examples`` are refused
    (:class:`~mhsafety.data.OverlapError`) unless ``allow_overlap``; the run's rows are then
    marked :data:`~mhsafety.records.NOTE_SHOTS_FROM_JUDGED` and each judged item is still
    never shown as its own example.
    """
    settings.check()
    if batch_file_only and batch_results is not None:
        raise UsageError("--batch-file-only writes the request file and --batch-results joins "
                         "its answers: use one, then the other")
    if settings.protocol == "sequential" and (batch_file_only or batch_results is not None):
        raise UsageError("batch request files hold flat requests; --protocol sequential "
                         "asks each node after the previous answer")

    if not settings.model:
        raise UsageError("a judge needs a model (--model)")
    if not settings.base_url:
        raise UsageError("a judge needs a base URL (--base-url)")
    out = Path(out_dir)
    with exclusive(out):
        return _run_judge(examples, out, settings, train, template, data_source, train_source,
                          show_progress, on_message, batch_file_only, batch_results,
                          allow_overlap)


def _run_judge(examples: Sequence[Example], out: Path, settings: JudgeSettings,
               train: Sequence[Example] | None, template: PromptTemplate | None,
               data_source: str | None, train_source: str | None, show_progress: bool,
               on_message: Callable[[str], None] | None, batch_file_only: bool = False,
               batch_results: str | os.PathLike[str] | None = None,
               allow_overlap: bool = False) -> JudgeResult:
    """:func:`run_judge` under the folder lock (settings already checked there)."""
    say = on_message or (lambda msg: None)
    sequential = settings.protocol == "sequential"
    if sequential and template is not None and template.source != "built-in":
        raise UsageError(f"{template.source}: a template replaces the flat prompt; "
                         "--protocol sequential asks its own node prompts")

    template = template or load_template(settings.template, settings.system_prompt,
                                         settings.system_role)
    if not examples:
        raise UsageError("no items to judge")
    plan: ShotPlan | None = None
    if settings.shots:
        if not train:
            raise UsageError("few-shot judging (--shots 8) needs --train FILE with labelled "
                             "examples to draw from")
        if "examples" not in template.placeholders:
            raise UsageError(f"{template.source}: few-shot judging needs $examples in the "
                             "template")
        check_overlap(train, examples, train_source or "the --train items",
                      data_source or "the judged items", allow_overlap)
        plan = plan_shots(train, settings.rounds, settings.seed, train_source or "--train")
    log_dir = out / "log"
    if settings.vote and settings.rounds < 2:
        say("note: a vote needs at least 2 rounds; no vote is written")
    key = settings.cache_key(seq.templates_sha256() if sequential else template.sha256)
    ids = [ex.id or str(i) for i, ex in enumerate(examples)]
    if len(set(ids)) != len(ids):
        raise UsageError("item ids repeat; every item needs its own id to be resumable")
    api_key = _api_key(settings.api_key_env)
    if api_key is None:
        say(f"note: ${settings.api_key_env} is not set; sending requests without an API key")
    prompts = Prompts(template, plan, settings.output)

    manifest = _manifest(settings, template, key, plan, examples, train, data_source,
                         train_source)
    if sequential:
        manifest["template"] = {"source": "built-in sequential node prompts",
                                "sha256": seq.templates_sha256()}
    write_json(out / "manifest.json", manifest)

    if sequential or settings.batch or batch_file_only or batch_results is not None:
        return _run_listed(examples, ids, out, settings, prompts, key, manifest, plan, say,
                           show_progress, batch_file_only, batch_results)

    # What is already done, per round. The prompts are built as the requests go out (the
    # pool pulls jobs lazily), each serialised once for its hash and, when it still has to
    # be asked, for the request; a logged answer counts only for the same prompt.
    logs = {r: read_round_log(log_dir / f"round-{r}.jsonl", key)
            for r in range(1, settings.rounds + 1)}
    resumed = sum(len(lg.answered_ids & id_set) for lg, id_set in
                  ((lg, set(ids)) for lg in logs.values()))
    to_go = settings.rounds * len(examples) - resumed
    torn = sum(1 for lg in logs.values() if lg.torn)
    if resumed:
        say(f"resuming: {resumed} answers already in {log_dir}, {to_go} to go")

    def jobs() -> Iterator[Job]:
        for r, lg in logs.items():
            for i, ex in enumerate(examples):
                blob = prompts.messages_json(r, ex)
                digest = prompt_hash(blob)
                if not lg.settle(ids[i], digest):
                    yield Job(r, ids[i], blob, digest)
            lg.finish()

    parse = answer_parser(settings.output, settings.parser)
    verdicts: dict[tuple[int, str], Verdict] = {}

    def remember(job: Job, entry: dict[str, Any]) -> None:
        lg = logs[job.round_no]
        if "answer" in entry:
            lg.answers[job.item_id] = entry
            lg.failures.pop(job.item_id, None)
            # Parsed as it arrives, while the pool waits on the network.
            verdicts[(job.round_no, job.item_id)] = read_answer(entry, parse, settings.logprobs)
        else:
            lg.failures[job.item_id] = entry

    stats = ask_all(jobs(), settings, key, log_dir, remember, show_progress, say, total=to_go)
    stale = sum(lg.stale for lg in logs.values())
    if stale:
        say(f"note: {stale} logged answers from other settings (model, URL, prompt or "
            "sampling) are ignored; they stay in the log")
    resumed = settings.rounds * len(examples) - stats["requests"]
    result = write_results(examples, ids, logs, settings, out, manifest, plan, stats, resumed,
                           stale, torn, verdicts)
    return result


def _run_listed(examples: Sequence[Example], ids: list[str], out: Path,
                settings: JudgeSettings, prompts: Prompts, key: str, manifest: dict[str, Any],
                plan: ShotPlan | None, say: Callable[[str], None], show_progress: bool,
                batch_file_only: bool, batch_results: str | os.PathLike[str] | None
                ) -> JudgeResult:
    """The sequential protocol and the batch modes: every pending request listed up front
    (a batch file needs them all; a walk needs each item's logged steps), the log read with
    the expected prompt hashes."""
    log_dir = out / "log"
    sequential = settings.protocol == "sequential"
    logs: dict[int, RoundLog] = {}
    jobs: list[Job] = []
    steps = seq.step_prompts(list(zip(ids, examples)), messages_json, prompt_hash) \
        if sequential else None
    for r in range(1, settings.rounds + 1):
        if steps is not None:  # the sequential protocol: one log line per node asked
            expected = {sid: h for sid, (_, h) in steps.items()}
            logs[r] = read_round_log(log_dir / f"round-{r}.jsonl", key, expected)
            continue
        blobs = [prompts.messages_json(r, ex) for ex in examples]
        expected = {ids[i]: prompt_hash(b) for i, b in enumerate(blobs)}
        logs[r] = read_round_log(log_dir / f"round-{r}.jsonl", key, expected)
        jobs += [Job(r, ids[i], b, expected[ids[i]]) for i, b in enumerate(blobs)
                 if ids[i] not in logs[r].answers]
    node_parser = answer_parser(settings.output, settings.parser)
    if steps is not None:
        jobs = _sequential_jobs(examples, ids, logs, steps, node_parser)
    resumed = settings.rounds * len(examples) - len(jobs)
    stale = sum(lg.stale for lg in logs.values())
    torn = sum(1 for lg in logs.values() if lg.torn)
    if resumed:
        say(f"resuming: {resumed} answers already in {log_dir}, {len(jobs)} to go")
    if stale:
        say(f"note: {stale} logged answers from other settings (model, URL, prompt or "
            "sampling) are ignored; they stay in the log")

    def remember(job: Job, entry: dict[str, Any]) -> None:
        lg = logs[job.round_no]
        if "answer" in entry:
            lg.answers[job.item_id] = entry
            lg.failures.pop(job.item_id, None)
        else:
            lg.failures[job.item_id] = entry

    if batch_file_only:
        path = _batch_requests_file(jobs, settings, key, out)
        summary = {"system": settings.name, "items": len(examples), "rounds": settings.rounds,
                   "resumed": resumed, "batch_requests_file": str(path),
                   "batch_requests": len(jobs)}
        return JudgeResult(out, summary, manifest, [], {})
    if steps is not None:
        stats = _ask_sequential(jobs, logs, steps, node_parser, settings, key, log_dir,
                                remember, show_progress, say)
    else:
        stats = _ask_batch(jobs, settings, key, logs, log_dir, out, remember, show_progress,
                           say, batch_results)
    return write_results(examples, ids, logs, settings, out, manifest, plan, stats, resumed,
                         stale, torn)


# --------------------------------------------------------------------------- sequential


def _sequential_jobs(examples: Sequence[Example], ids: Sequence[str],
                     logs: dict[int, RoundLog], steps: dict[str, tuple[bytes, str]],
                     parse: Callable[[str | None], int | None]) -> list[Job]:
    """The next node of every unfinished walk."""
    jobs = []
    for r, lg in logs.items():
        for item_id in ids:
            job = _next_node(r, item_id, lg, steps, parse)
            if job is not None:
                jobs.append(job)
    return jobs


def _next_node(round_no: int, item_id: str, lg: RoundLog, steps: dict[str, tuple[bytes, str]],
               parse: Callable[[str | None], int | None]) -> Job | None:
    state = seq.walk(seq.answers_of(lg.answers, item_id), parse)
    if state.done:
        return None
    sid = seq.step_id(item_id, state.next_node or 1)
    blob, digest = steps[sid]
    return Job(round_no, sid, blob, digest, extra={"item": item_id})


def _ask_sequential(jobs: list[Job], logs: dict[int, RoundLog],
                    steps: dict[str, tuple[bytes, str]],
                    parse: Callable[[str | None], int | None], settings: JudgeSettings,
                    key: str, log_dir: Path, remember: Callable[[Job, dict[str, Any]], None],
                    show_progress: bool, say: Callable[[str], None]) -> dict[str, Any]:
    """Walk the nodes: each slot of the pool asks an item's next node as soon as the previous
    answer is in, until a node fires. A step that failed ends its walk for this run (the item
    is recorded as failed at that node; a rerun asks that node again). ``jobs``: the next
    node of every unfinished walk."""

    def next_node(job: Job, entry: dict[str, Any]) -> Job | None:
        if "answer" not in entry:
            return None
        return _next_node(job.round_no, job.extra["item"], logs[job.round_no], steps, parse)

    stats = ask_all(jobs, settings, key, log_dir, remember, show_progress, say,
                    follow_up=next_node)
    return {**stats, "items": len(jobs)}


# --------------------------------------------------------------------------- batch


def _batch_jobs(jobs: Sequence[Job], settings: JudgeSettings) -> list[Any]:
    from .batch import BatchJob

    shape = RequestShape(settings)
    return [BatchJob(job.round_no, job.item_id, job.prompt_hash,
                     shape.body(json.loads(job.messages_json))) for job in jobs]


def _batch_requests_file(jobs: Sequence[Job], settings: JudgeSettings, key: str,
                         out: Path) -> Path:
    """``--batch-file-only``: the pending requests as a batch input file, nothing sent."""
    from .batch import REQUESTS_FILE, request_lines, write_request_file

    if not jobs:
        raise UsageError("nothing to write: every request of this run is answered")
    path = out / "batch" / REQUESTS_FILE
    write_request_file(path, request_lines(key, _batch_jobs(jobs, settings)))
    return path


def _ask_batch(jobs: Sequence[Job], settings: JudgeSettings, key: str,
               logs: dict[int, RoundLog], log_dir: Path, out: Path,
               remember: Callable[[Job, dict[str, Any]], None], show_progress: bool,
               say: Callable[[str], None],
               results_file: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The pending requests through a Batch API (or a ``--batch-results`` file) into the log."""
    from . import batch as bt

    start = time.perf_counter()
    info: dict[str, Any] = {}
    run = state = None
    if not jobs and results_file is None:
        return {"requests": 0, "answered": 0, "failed": 0, "retries": 0, "wall_s": 0.0,
                "per_second": 0.0}
    if results_file is not None:
        path = Path(results_file)
        if not path.is_file():
            raise UsageError(f"{path}: no such batch results file")
        data = path.read_bytes()
        via: dict[str, Any] = {"via": "batch", "batch_results": path.name}
    else:
        api = bt.BatchAPI(settings.base_url, _api_key(settings.api_key_env), settings.timeout,
                          settings.max_attempts - 1)
        run = bt.BatchRun(out / "batch", api, settings.batch_poll, say, show_progress)
        try:
            state = run.submit(key, _batch_jobs(jobs, settings),
                               {"mhsafety_key": key, "system": settings.name[:500]})
            batch = run.wait(state)
            if batch["status"] == "failed":
                run.finish(state)
                raise UsageError(f"batch {state.batch_id} failed: {bt.batch_errors(batch)}. "
                                 "Rerun the same command to send a new batch")
            data = run.download(batch)
            if batch["status"] in ("cancelled", "expired"):
                say(f"note: batch {state.batch_id} ended {batch['status']}; the requests it "
                    "did not answer are recorded as not requested. Rerun the same command "
                    "to send them in a new batch")
        finally:
            api.close()
        via = {"via": "batch", "batch_id": state.batch_id}
        info.update(batch_id=state.batch_id, status=batch["status"])
    join_start = time.perf_counter()
    expected: dict[int, dict[str, str]] = {r: {} for r in logs}
    for job in jobs:
        expected[job.round_no][job.item_id] = job.prompt_hash
    for r, lg in logs.items():  # answered ones too: a result for them is ours, not stale
        for item_id, entry in lg.answers.items():
            expected[r].setdefault(item_id, entry["prompt_hash"])
    joined = bt.join_results(bt.result_objects(data, str(results_file or "batch output")),
                             key, expected)
    added: Counter[str] = Counter()
    log = Log(log_dir)
    try:
        for round_no, item_id, digest, outcome in joined.results:
            if item_id in logs[round_no].answers:
                continue  # answered already (a results file joined twice, say)
            job = Job(round_no, item_id, b"", digest, extra=dict(via))
            entry = log_entry(job, key, outcome)
            remember(job, entry)
            log.append(round_no, entry)
            added["answered" if isinstance(outcome, Answer) else "failed"] += 1
    finally:
        log.close()
    if run is not None and state is not None:
        run.finish(state)
        info.update(run.timings)
    info["join_s"] = round(time.perf_counter() - join_start, 4)
    wall = time.perf_counter() - start
    done = added["answered"] + added["failed"]
    if joined.stale or joined.foreign or joined.corrupt:
        say(f"note: {joined.stale} results from other settings, {joined.foreign} with ids "
            f"this judge did not write and {joined.corrupt} unreadable lines were ignored")
    return {"requests": done, "answered": added["answered"], "failed": added["failed"],
            "retries": 0, "wall_s": round(wall, 3),
            "per_second": round(done / wall, 2) if wall > 0 and done else 0.0,
            "batch": {**info, "answered": added["answered"], "failed": added["failed"],
                      "stale": joined.stale, "foreign": joined.foreign,
                      "corrupt": joined.corrupt}}


def verdict_of(entry: dict[str, Any], settings: JudgeSettings) -> Verdict:
    """The verdict of one logged answer under ``settings`` (output format, parser, logprobs)."""
    return read_answer(entry, answer_parser(settings.output, settings.parser), settings.logprobs)


def write_results(examples: Sequence[Example], ids: Sequence[str], logs: dict[int, RoundLog],
                  settings: JudgeSettings, out: Path, manifest: dict[str, Any],
                  plan: ShotPlan | None, stats: dict[str, Any], resumed: int, stale: int,
                  torn: int, verdicts: dict[tuple[int, str], Verdict] | None = None
                  ) -> JudgeResult:
    """Records, manifest and summary from the log's view of this setting (answers from
    earlier runs included)."""
    notes = manifest["notes"]
    records: dict[str, list[PredictionRecord]] = {}
    files = []
    models: Counter[str] = Counter()
    fingerprints: Counter[str] = Counter()
    usage: Counter[str] = Counter()
    batch_usage: Counter[str] = Counter()  # tokens answered through a batch (another price)
    per_round = {}
    reasoning = 0
    sequential = settings.protocol == "sequential"
    node_parser = answer_parser(settings.output, settings.parser)
    short = 0  # answers with fewer samples than asked (servers that ignore n)
    for r, lg in logs.items():
        # Every answer of this setting counts (a sequential item has one per node asked).
        for entry in lg.answers.values():
            if entry.get("model"):
                models[entry["model"]] += 1
            if entry.get("system_fingerprint"):
                fingerprints[entry["system_fingerprint"]] += 1
            for k, v in (entry.get("usage") or {}).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    usage[k] += v
                    if entry.get("via") == "batch":
                        batch_usage[k] += v
        recs = []
        for i, ex in enumerate(examples):
            entry = lg.answers.get(ids[i])
            meta: dict[str, Any] = {}
            if sequential:
                pred, raw, error, walked = seq.outcome(lg.answers, lg.failures, ids[i],
                                                       node_parser)
                meta.update(walked)
                recs.append(PredictionRecord(ids[i], ex.label, pred, settings.name, str(r),
                                             raw=raw, error=error, meta=meta,
                                             notes=list(notes)))
            elif entry is not None:
                verdict = (verdicts or {}).get((r, ids[i])) or verdict_of(entry, settings)
                meta["model"] = entry.get("model")
                if verdict.probs_from:
                    meta["probs_from"] = verdict.probs_from
                if verdict.reasoning:
                    reasoning += 1
                if settings.samples > 1 and len(entry.get("answers") or [0]) < settings.samples:
                    short += 1
                recs.append(PredictionRecord(
                    ids[i], ex.label, verdict.pred, settings.name, str(r), probs=verdict.probs,
                    raw=verdict.text, error=verdict.error, meta=meta, notes=list(notes)))
            else:
                failure = lg.failures.get(ids[i])
                reason = failure["error"] if failure else "not requested (the run stopped)"
                recs.append(PredictionRecord(ids[i], ex.label, None, settings.name, str(r),
                                             error=f"request failed: {reason}", meta=meta,
                                             notes=list(notes)))
        records[str(r)] = recs
        per_round[str(r)] = {
            "answered": sum(1 for x in recs if x.raw is not None),
            "failed": sum(1 for x in recs if x.raw is None),
            "invalid": sum(1 for x in recs if x.raw is not None and x.pred is None),
        }
        files.append(write_records(out / "preds" / f"round-{r}.preds.jsonl", recs))
    if settings.vote and settings.rounds > 1:
        voted = []
        for i, ex in enumerate(examples):
            pred = vote([records[str(r)][i].pred for r in logs])
            voted.append(PredictionRecord(
                ids[i], ex.label, pred, f"{settings.name} vote", "vote",
                error=None if pred is not None else "no valid answer in any round",
                meta={"rounds": settings.rounds}, notes=list(notes)))
        records["vote"] = voted
        files.append(write_records(out / "preds" / "vote.preds.jsonl", voted))

    # Records of rounds (or a vote) that this run no longer has would be scored with the
    # current ones; they are derived files (the log keeps every answer), so remove them.
    for stale_file in (out / "preds").glob("*.preds.jsonl"):
        if stale_file not in files:
            stale_file.unlink()

    manifest["models_answered"] = dict(models)
    manifest["system_fingerprints"] = dict(fingerprints)
    if stats.get("token_param"):
        manifest["token_param_used"] = stats["token_param"]
    if plan is not None:
        manifest["few_shot"]["substitutions"] = {
            str(r): subs for r, subs in sorted(plan.substitutions.items())}
    manifest["updated"] = _now()
    write_json(out / "manifest.json", manifest)

    tokens = {"prompt_tokens": int(usage.get("prompt_tokens", 0)),
              "completion_tokens": int(usage.get("completion_tokens", 0)),
              "total_tokens": int(usage.get("total_tokens", 0))}
    cost = None
    if settings.price_in is not None or settings.price_out is not None:
        # Tokens answered through a batch cost batch_price_factor times the given prices.
        factor = settings.batch_price_factor
        weighted = {k: tokens[k] - batch_usage.get(k, 0) * (1 - factor)
                    for k in ("prompt_tokens", "completion_tokens")}
        cost = round((weighted["prompt_tokens"] * (settings.price_in or 0.0)
                      + weighted["completion_tokens"] * (settings.price_out or 0.0)) / 1e6, 6)
    summary = {
        "system": settings.name, "model": settings.model, "items": len(examples),
        "rounds": settings.rounds, "per_round": per_round,
        "answered": sum(v["answered"] for v in per_round.values()),
        "failed": sum(v["failed"] for v in per_round.values()),
        "invalid": sum(v["invalid"] for v in per_round.values()),
        "with_reasoning": reasoning,
        "fewer_samples_than_asked": short,
        "resumed": resumed, "stale_ignored": stale, "torn_lines_repaired": torn,
        "this_run": stats, "tokens": tokens,
        "cost": cost, "price_per_million": {"in": settings.price_in, "out": settings.price_out},
        "batch_tokens": {"prompt_tokens": int(batch_usage.get("prompt_tokens", 0)),
                         "completion_tokens": int(batch_usage.get("completion_tokens", 0))},
        "batch_price_factor": settings.batch_price_factor,
        "protocol": settings.protocol,
        "models_answered": dict(models),
    }
    write_json(out / "summary.json", summary)
    return JudgeResult(out, summary, manifest, files, records)


def _probabilities(settings: JudgeSettings) -> str | None:
    """What the records' ``probs`` hold, said once in the manifest (and per record)."""
    if settings.logprobs:
        return "logprobs of the answer's first token, renormalised over the eight labels"
    if settings.samples > 1:
        return f"{PROBS_VOTES} of {settings.samples} answers per item and round"
    return None


def _manifest(settings: JudgeSettings, template: PromptTemplate, key: str,
              plan: ShotPlan | None, examples: Sequence[Example],
              train: Sequence[Example] | None, data_source: str | None,
              train_source: str | None) -> dict[str, Any]:
    from .. import __version__

    notes = []
    same_file = False
    if plan is not None and train is not None:
        same_file = examples_hash(train) == examples_hash(examples)
        if same_file or find_overlap(train, examples):
            notes.append(NOTE_SHOTS_FROM_JUDGED)
    s = asdict(settings)
    return {
        "kind": "mhsafety-judge-run",
        "mhsafety_version": __version__,
        "created": _now(),
        "system": settings.name,
        "model_requested": settings.model,
        "models_answered": {},
        "system_fingerprints": {},
        "base_url": settings.base_url,
        "client": resolve_transport(settings.client, settings.base_url),
        "api_key_env": settings.api_key_env,
        "sampling": settings.sampling,
        "token_param": settings.token_param,
        "output": settings.output,
        "probabilities": _probabilities(settings),
        "extra_body": settings.extra_body,
        "header_names": sorted(settings.headers),  # names only: values may be private
        "shots": settings.shots,
        "rounds": settings.rounds,
        "seed": settings.seed,
        "parser": settings.parser,
        "template": {"source": template.source, "sha256": template.sha256},
        "cache_key": key,
        "data": {"source": data_source, "items": len(examples),
                 "sha256": examples_hash(examples)},
        "few_shot": None if plan is None else {
            "train": train_source, "train_items": len(train or ()),
            "train_sha256": examples_hash(train or ()),
            "ids_per_round": plan.ids(),
            "excluded_self": same_file or bool(notes),
        },
        "requests": {k: s[k] for k in ("concurrency", "timeout", "max_attempts",
                                      "backoff_base", "stop_after_failures", "batch")},
        "protocol": settings.protocol,
        "notes": notes,
    }




class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, **kwargs: Any) -> None: ...
    def close(self) -> None: ...


def ask_all(jobs: Iterable[Job], settings: JudgeSettings, key: str, log_dir: Path,
            on_entry: Callable[[Job, dict[str, Any]], None], show_progress: bool = True,
            say: Callable[[str], None] | None = None, total: int | None = None,
            follow_up: Callable[[Job, dict[str, Any]], Job | None] | None = None
            ) -> dict[str, Any]:
    """Send ``jobs`` with ``settings.concurrency`` in flight; log each answer (or final
    failure) to ``log_dir/round-<r>.jsonl`` as it arrives and hand it to ``on_entry``.
    ``jobs`` may be a generator (it is pulled as slots free up); ``total`` sizes the
    progress bar and the pool when it has no length. ``follow_up(job, entry)`` may name a
    request that depends on that answer (the sequential protocol's next node); the same
    slot sends it next, and the bar counts the chain as one.

    Returns this run's counts and timing. Raises :class:`FatalAPIError` (a ``UsageError``)
    when the server refuses outright; what was logged until then is kept.
    """
    api_key = _api_key(settings.api_key_env)
    try:
        if total is None:
            total = len(jobs) if isinstance(jobs, Sequence) else None
        return _run_async(_ask_all(jobs, settings, key, api_key, Log(log_dir), on_entry,
                                   show_progress, total, follow_up))
    except FatalAPIError as exc:
        hint = ""
        if "HTTP 401" in str(exc) or "HTTP 403" in str(exc):
            hint = (f" (check the API key in ${settings.api_key_env}"
                    f"{'' if api_key else ', which is not set'})")
        raise FatalAPIError(f"{settings.base_url}: {exc}{hint}; answers received so far are "
                            f"kept in {log_dir}") from None


def log_entry(job: Job, key: str, result: Answer | Failure) -> dict[str, Any]:
    """The resume-log line of one request's outcome."""
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
    entry["time"] = _now()
    return entry


async def _ask_all(jobs: Iterable[Job], settings: JudgeSettings, key: str,
                   api_key: str | None, log: Log,
                   on_entry: Callable[[Job, dict[str, Any]], None],
                   show_progress: bool, total: int | None,
                   follow_up: Callable[[Job, dict[str, Any]], Job | None] | None = None
                   ) -> dict[str, Any]:
    from ..progress import progress_bar

    transport = make_transport(settings.client, settings.base_url, api_key, settings.timeout,
                               settings.concurrency, settings.headers)
    shape = RequestShape(settings)
    policy = RetryPolicy(max_attempts=settings.max_attempts, backoff_base=settings.backoff_base)
    rng = random.Random()  # back-off jitter only; it never touches what is asked
    work = iter(jobs)
    counts: Counter[str] = Counter()
    bar = progress_bar(total=total, desc="judge", unit="req") if show_progress else _NoBar()
    last_postfix = 0.0
    start = time.perf_counter()

    def show(force: bool = False) -> None:
        nonlocal last_postfix
        now = time.perf_counter()
        if force or now - last_postfix > 0.5:
            last_postfix = now
            bar.set_postfix(errors=counts["failed"], retries=counts["retries"], refresh=False)

    def on_retry(reason: str) -> None:
        counts["retries"] += 1
        show(force=counts["retries"] == 1)  # the first retry shows at once

    def fatal(kind: str) -> bool:
        # Until the server has answered once, nothing listening / DNS / TLS means a wrong
        # URL, not a hiccup: stop at once instead of spending every item's retry budget.
        return kind in UNREACHABLE and not counts["answered"]

    async def worker() -> None:
        for first in work:
            job: Job | None = first
            while job is not None:
                result = await complete(transport, shape, job.messages_json, policy, rng,
                                        api_key, on_retry, fatal)
                entry = log_entry(job, key, result)
                on_entry(job, entry)
                log.append(job.round_no, entry)
                if isinstance(result, Answer):
                    counts["answered"] += 1
                    counts["streak"] = 0
                else:
                    counts["failed"] += 1
                    counts["streak"] += 1
                    show(force=counts["failed"] == 1)
                    if 0 < settings.stop_after_failures <= counts["streak"]:
                        # A server that is down would otherwise cost every item its whole
                        # retry budget; stop, keep what was logged, and let a rerun resume.
                        raise FatalAPIError(
                            f"{counts['streak']} items in a row failed (last: "
                            f"{result.reason}); the server seems down or overloaded. Rerun "
                            "the same command to resume")
                job = follow_up(job, entry) if follow_up is not None else None
            bar.update(1)
            show()

    async def syncer() -> None:
        while True:
            await asyncio.sleep(0.5)
            if log.dirty:
                await asyncio.to_thread(log.sync, log.take_dirty())

    slots = settings.concurrency if total is None else min(settings.concurrency,
                                                           max(1, total))
    tasks = [asyncio.create_task(worker()) for _ in range(slots)]
    sync_task = asyncio.create_task(syncer())
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        sync_task.cancel()
        await asyncio.gather(*tasks, sync_task, return_exceptions=True)
        log.close()
        bar.close()
        await transport.aclose()
    wall = time.perf_counter() - start
    done = counts["answered"] + counts["failed"]
    out = {"requests": done, "answered": counts["answered"], "failed": counts["failed"],
           "retries": counts["retries"], "wall_s": round(wall, 3),
           "per_second": round(done / wall, 2) if wall > 0 and done else 0.0}
    if shape.switched_from is not None:
        out["token_param"] = shape.token_field  # what auto settled on
    return out


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a few human-readable lines (what ``mhsafety judge`` prints)."""
    s = summary
    lines = [(f"{s['system']}: {s['items']} items x {s['rounds']} rounds; "
              f"answered {s['answered']}, failed {s['failed']}, "
              f"invalid answers {s['invalid']}")]
    for r, v in s["per_round"].items():
        lines.append(f"  round {r}: answered {v['answered']}, failed {v['failed']}, "
                     f"invalid {v['invalid']}")
    run = s["this_run"]
    lines.append(f"this run: {run['requests']} requests ({run['retries']} retries) in "
                 f"{run['wall_s']:.1f} s, {run['per_second']:.1f}/s; "
                 f"{s['resumed']} answers reused from the log")
    if s.get("protocol") == "sequential":
        lines.append(f"sequential protocol: {run['requests']} node questions for "
                     f"{run.get('items', 0)} item walks this run")
    if run.get("batch"):
        b = run["batch"]
        lines.append(f"batch: {b.get('answered', 0)} answered, {b.get('failed', 0)} failed, "
                     f"{b.get('stale', 0)} stale results ignored"
                     + (f" (batch {b['batch_id']})" if b.get("batch_id") else ""))
    t = s["tokens"]
    line = (f"tokens: {t['prompt_tokens']} prompt + {t['completion_tokens']} completion = "
            f"{t['total_tokens']}")
    batch_tokens = s.get("batch_tokens") or {}
    batched = bool(batch_tokens.get("prompt_tokens") or batch_tokens.get("completion_tokens"))
    if batched:
        line += (f" ({batch_tokens['prompt_tokens']} + {batch_tokens['completion_tokens']} "
                 "of them through a batch)")
    if s.get("cost") is not None:
        line += f"; estimated cost {s['cost']:.4f} (at the given prices per million tokens"
        if batched:
            line += f", batch tokens at {s['batch_price_factor']:g} x those prices"
        line += ")"
    lines.append(line)
    if s["models_answered"]:
        lines.append("models answering: " + ", ".join(
            f"{m} ({n})" for m, n in s["models_answered"].items()))
    if s["stale_ignored"]:
        lines.append(f"ignored {s['stale_ignored']} logged answers from other settings")
    if s["torn_lines_repaired"]:
        lines.append(f"repaired {s['torn_lines_repaired']} torn log line(s) left by a crash")
    if s.get("fewer_samples_than_asked"):
        lines.append(f"{s['fewer_samples_than_asked']} answers came with fewer samples than "
                     "--samples asked (the server ignores n); their records have no vote shares")
    if s["failed"]:
        lines.append("failed items are recorded with their reason; rerun the same command "
                     "to retry them")
    return "\n".join(lines)


def format_batch_file(summary: dict[str, Any], model: str) -> str:
    """What ``--batch-file-only`` prints: the file and how to run and join it."""
    path = summary["batch_requests_file"]
    return (f"wrote {summary['batch_requests']} requests to {path}\n"
            f"run them, e.g.: vllm run-batch -i {path} -o results.jsonl --model {model}\n"
            "then join the answers: the same command with --batch-results results.jsonl "
            "instead of --batch-file-only")
