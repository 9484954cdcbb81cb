"""``run_judge``: label every item with an LLM, round after round, resumably.

Layout of the output folder::

    manifest.json            what was run (model asked and answered, URL, sampling, prompt
                             template hash, few-shot ids per round, seed, version)
    log/round-<r>.jsonl      one line per answered (or finally failed) request, appended
                             and flushed as it happens: the resume log
    preds/round-<r>.preds.jsonl   prediction records of round r (the project's format)
    preds/vote.preds.jsonl   majority vote over the rounds (with ``vote=True``)
    summary.json             counts, token usage, cost estimate, timing

Every log line carries ``key`` (a hash of model, base URL, sampling parameters, template,
shots and seed) and ``prompt_hash`` (a hash of the exact messages). A rerun reuses only lines
whose key and prompt hash match what it would send now, so a changed prompt, model or
sampling setting never mixes with old answers; other lines stay in the log, untouched, and
are counted as ``stale``. Each line is written with one ``write`` call on an ``O_APPEND``
descriptor, so a killed process leaves at most one torn last line, which the next run cuts
off (and counts) before appending.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..data import Example, examples_hash
from ..errors import UsageError
from ..io import write_json
from ..records import PredictionRecord, write_records
from ..taxonomy import NUM_LABELS
from . import sequential as seq
from .client import (
    Answer,
    Failure,
    FatalAPIError,
    RetryPolicy,
    complete,
    make_transport,
    resolve_transport,
)
from .parse import get_parser
from .prompts import PromptTemplate, ShotPlan, load_template, messages_hash, plan_shots
from .sequential import PROTOCOLS

LOG_VERSION = 1
N_SHOTS = NUM_LABELS  # few-shot means one example per label


@dataclass
class JudgeSettings:
    """Everything that decides what a judge run sends and how; see ``mhsafety judge --help``."""

    model: str
    base_url: str
    shots: int = 0
    rounds: int = 5
    seed: int = 42
    max_tokens: int = 10
    temperature: float = 1.0
    top_p: float = 1.0
    parser: str = "tolerant"
    concurrency: int = 8
    timeout: float = 60.0
    max_attempts: int = 8
    backoff_base: float = 1.0
    stop_after_failures: int = 20  # items failing in a row that stop the run; 0 = never
    api_key_env: str = "OPENAI_API_KEY"
    client: str = "auto"
    system_name: str | None = None
    vote: bool = False
    price_in: float | None = None  # per million prompt tokens
    price_out: float | None = None  # per million completion tokens
    protocol: str = "flat"  # flat: one question, eight labels; sequential: the four nodes
    batch: bool = False  # send the run through the server's Batch API
    batch_poll: float = 30.0  # seconds between polls of a batch
    batch_price_factor: float = 0.5  # a batch request's price / the synchronous one

    def check(self) -> None:
        if self.shots not in (0, N_SHOTS):
            raise UsageError(f"--shots must be 0 or {N_SHOTS} (one example per label), "
                             f"got {self.shots}")
        if self.rounds < 1:
            raise UsageError(f"--rounds must be at least 1, got {self.rounds}")
        if self.concurrency < 1:
            raise UsageError(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.max_attempts < 1:
            raise UsageError(f"--max-attempts must be at least 1, got {self.max_attempts}")
        if self.stop_after_failures < 0:
            raise UsageError("--stop-after-failures must be 0 (never) or more")
        if self.timeout <= 0:
            raise UsageError(f"--timeout must be positive, got {self.timeout}")
        get_parser(self.parser)
        if self.protocol not in PROTOCOLS:
            raise UsageError(f"--protocol must be one of {', '.join(PROTOCOLS)}, "
                             f"got {self.protocol!r}")
        if self.protocol == "sequential" and self.shots:
            raise UsageError("--protocol sequential asks zero-shot node questions; "
                             "--shots 8 needs --protocol flat")
        if self.protocol == "sequential" and self.batch:
            raise UsageError("--protocol sequential asks each node after the previous "
                             "answer, which one batch cannot do; use --protocol flat with "
                             "--batch")
        if self.batch_poll <= 0:
            raise UsageError(f"--batch-poll must be positive, got {self.batch_poll}")

    @property
    def sampling(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature,
                "top_p": self.top_p}

    @property
    def name(self) -> str:
        return self.system_name or f"{self.model} {'few' if self.shots else 'zero'}-shot"

    def cache_key(self, template_sha256: str) -> str:
        """What decides an answer besides the item and round; timeouts, retries and batch
        mode don't."""
        blob = json.dumps({"model": self.model, "base_url": self.base_url.rstrip("/"),
                           "sampling": self.sampling, "template": template_sha256,
                           "shots": self.shots, "seed": self.seed}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class RoundLog:
    """What one round's log holds for the current settings."""

    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    stale: int = 0
    corrupt: int = 0
    torn: int = 0


def repair_torn_tail(path: Path) -> int:
    """Cut a torn (newline-less) last line off ``path``; returns the bytes removed."""
    if not path.exists():
        return 0
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        # Walk back to the last newline; everything after it is a line the writer never
        # finished (the process died inside the write).
        pos, block = size, 1 << 16
        while pos > 0:
            start = max(0, pos - block)
            handle.seek(start)
            chunk = handle.read(pos - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            pos = start
        else:
            keep = 0
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
        return size - keep


def read_round_log(path: Path, key: str, expected: dict[str, str]) -> RoundLog:
    """Entries of one round's log that match ``key`` and the expected prompt hash per item."""
    out = RoundLog()
    out.torn = repair_torn_tail(path)
    if not path.exists():
        return out
    with open(path, "rb") as handle:
        for raw in handle:
            try:
                entry = json.loads(raw)
                item_id = entry["id"]
            except (ValueError, KeyError, TypeError):
                out.corrupt += 1  # never fatal: the item is simply asked again
                continue
            if entry.get("key") != key or expected.get(item_id) != entry.get("prompt_hash"):
                out.stale += 1
                continue
            if "answer" in entry:
                out.answers.setdefault(item_id, entry)  # the first answer counts
                out.failures.pop(item_id, None)
            elif item_id not in out.answers:
                out.failures[item_id] = entry
    return out


class _Log:
    """Append-only JSONL files, one per round: one ``write`` per line, fsync in batches."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.fds: dict[int, int] = {}
        self.dirty: set[int] = set()

    def path(self, round_no: int) -> Path:
        return self.folder / f"round-{round_no}.jsonl"

    def append(self, round_no: int, entry: dict[str, Any]) -> None:
        fd = self.fds.get(round_no)
        if fd is None:
            fd = self.fds[round_no] = os.open(self.path(round_no),
                                               os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        # One write() on O_APPEND: the line reaches the kernel whole, surviving kill -9.
        os.write(fd, line)
        self.dirty.add(fd)

    def take_dirty(self) -> set[int]:
        dirty, self.dirty = self.dirty, set()
        return dirty

    def sync(self, fds: set[int] | None = None) -> None:
        for fd in self.take_dirty() if fds is None else fds:
            os.fsync(fd)

    def close(self) -> None:
        self.sync()
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def vote(preds: Sequence[int | None]) -> int | None:
    """Majority over valid predictions; a tie goes to the label that appeared first."""
    valid = [p for p in preds if p is not None]
    if not valid:
        return None
    counts = Counter(valid)
    best = max(counts.values())
    return next(p for p in valid if counts[p] == best)


def run_judge(examples: Sequence[Example], out_dir: str | os.PathLike[str],
              settings: JudgeSettings, train: Sequence[Example] | None = None,
              template: PromptTemplate | None = None,
              data_source: str | None = None, train_source: str | None = None,
              show_progress: bool = True,
              on_message: Callable[[str], None] | None = None,
              batch_file_only: bool = False,
              batch_results: str | os.PathLike[str] | None = None) -> JudgeResult:
    """Judge ``examples`` for ``settings.rounds`` rounds, resuming whatever ``out_dir`` holds.

    The API key is read from the environment variable ``settings.api_key_env`` and only ever
    sent in the Authorization header. Raises :class:`~mhsafety.errors.UsageError` when the
    server refuses the requests outright (bad key, unknown model); answers logged until then
    are kept for the next run.

    ``batch_file_only`` writes the pending requests to ``OUT/batch/requests.jsonl`` (for
    ``vllm run-batch``) and returns without sending anything; ``batch_results`` joins such a
    run's output file into the log instead of asking (see :mod:`mhsafety.judge.batch`).
    """
    settings.check()
    if batch_file_only and batch_results is not None:
        raise UsageError("--batch-file-only writes the request file and --batch-results joins "
                         "its answers: use one, then the other")
    out = Path(out_dir)
    with _exclusive(out):
        return _run_judge(examples, out, settings, train, template, data_source, train_source,
                          show_progress, on_message, batch_file_only, batch_results)


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """Hold an advisory lock on ``out`` so two runs never append to the same logs at once
    (the kernel drops it when the process dies, kill -9 included)."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl
        except ImportError:  # no advisory locks on this platform: run unguarded
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"{out}: another `mhsafety judge` is writing to this folder; "
                             "wait for it to finish or choose another --out") from None
        yield
    finally:
        os.close(fd)


def _run_judge(examples: Sequence[Example], out_dir: str | os.PathLike[str],
              settings: JudgeSettings, train: Sequence[Example] | None = None,
              template: PromptTemplate | None = None,
              data_source: str | None = None, train_source: str | None = None,
              show_progress: bool = True,
              on_message: Callable[[str], None] | None = None,
              batch_file_only: bool = False,
              batch_results: str | os.PathLike[str] | None = None) -> JudgeResult:
    """:func:`run_judge` under the folder lock (settings already checked there)."""
    say = on_message or (lambda msg: None)
    template = template or load_template(None)
    if not examples:
        raise UsageError("no items to judge")
    sequential = settings.protocol == "sequential"
    if sequential and template.source != "built-in":
        raise UsageError(f"{template.source}: --template replaces the flat prompt; "
                         "--protocol sequential asks its own node prompts")
    if sequential and (batch_file_only or batch_results is not None):
        raise UsageError("batch request files hold flat requests; --protocol sequential "
                         "asks each node after the previous answer")
    plan: ShotPlan | None = None
    if settings.shots:
        if not train:
            raise UsageError("few-shot judging (--shots 8) needs --train FILE with labelled "
                             "examples to draw from")
        if "examples" not in template.placeholders:
            raise UsageError(f"{template.source}: few-shot judging needs $examples in the "
                             "template")
        plan = plan_shots(train, settings.rounds, settings.seed, train_source or "--train")
    out = Path(out_dir)
    log_dir = out / "log"
    if settings.vote and settings.rounds < 2:
        say("note: a vote needs at least 2 rounds; no vote is written")
    key = settings.cache_key(seq.templates_sha256() if sequential else template.sha256)
    parser = get_parser(settings.parser)
    ids = [ex.id or str(i) for i, ex in enumerate(examples)]
    if len(set(ids)) != len(ids):
        raise UsageError("item ids repeat; every item needs its own id to be resumable")
    api_key = _api_key(settings.api_key_env)
    if api_key is None:
        say(f"note: ${settings.api_key_env} is not set; sending requests without an API key")

    def messages(round_no: int, ex: Example) -> list[dict[str, str]]:
        shots = plan.for_item(round_no, ex) if plan is not None else []
        return template.messages(ex, shots)

    manifest = _manifest(settings, template, key, plan, examples, train, data_source,
                         train_source)
    if sequential:
        manifest["template"] = {"source": "built-in sequential node prompts",
                                "sha256": seq.templates_sha256()}
    write_json(out / "manifest.json", manifest)

    # What is already done, per round.
    logs: dict[int, RoundLog] = {}
    hashes: dict[int, dict[str, str]] = {}
    pending: list[tuple[int, int]] = []
    # Node prompts do not change between rounds: hash them once.
    steps = seq.step_hashes(list(zip(ids, examples)), messages_hash) if sequential else None
    for r in range(1, settings.rounds + 1):
        expected = hashes[r] = steps if steps is not None else {
            ids[i]: messages_hash(messages(r, ex)) for i, ex in enumerate(examples)}
        logs[r] = read_round_log(log_dir / f"round-{r}.jsonl", key, expected)
        if sequential:
            pending += [(r, i) for i in range(len(examples)) if not seq.walk(
                seq.answers_of(logs[r].answers, ids[i]), parser).done]
        else:
            pending += [(r, i) for i in range(len(examples)) if ids[i] not in logs[r].answers]
    resumed = settings.rounds * len(examples) - len(pending)
    stale = sum(lg.stale for lg in logs.values())
    torn = sum(1 for lg in logs.values() if lg.torn)
    if resumed:
        say(f"resuming: {resumed} answers already in {log_dir}, {len(pending)} to go")
    if stale:
        say(f"note: {stale} logged answers from other settings (model, URL, prompt or "
            "sampling) are ignored; they stay in the log")

    if batch_file_only:
        path = _batch_requests_file(pending, examples, ids, messages, hashes, settings, key,
                                    out)
        summary = {"system": settings.name, "items": len(examples), "rounds": settings.rounds,
                   "resumed": resumed, "batch_requests_file": str(path),
                   "batch_requests": len(pending)}
        return JudgeResult(out, summary, manifest, [], {})
    try:
        if settings.batch or batch_results is not None:
            stats = _batch_round(pending, examples, ids, messages, hashes, settings, key,
                                 api_key, _Log(log_dir), logs, out, show_progress, say,
                                 batch_results)
        else:
            stats = _run_async(_ask_all(pending, examples, ids, messages, hashes, settings,
                                         key, api_key, _Log(log_dir), logs, show_progress,
                                         parser))
    except FatalAPIError as exc:
        hint = ""
        if "HTTP 401" in str(exc) or "HTTP 403" in str(exc):
            hint = (f" (check the API key in ${settings.api_key_env}"
                    f"{'' if api_key else ', which is not set'})")
        raise FatalAPIError(f"{exc}{hint}; answers received so far are kept in {log_dir}"
                            ) from None

    # Records, from the log's view of this setting (answers from earlier runs included).
    notes = manifest["notes"]
    records: dict[str, list[PredictionRecord]] = {}
    files = []
    models: Counter[str] = Counter()
    fingerprints: Counter[str] = Counter()
    usage: Counter[str] = Counter()
    batch_usage: Counter[str] = Counter()  # tokens answered through a batch (other price)
    per_round = {}
    for r, lg in logs.items():
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
            meta: dict[str, Any] = {"notes": notes} if notes else {}
            if sequential:
                pred, raw, error, walked = seq.outcome(lg.answers, lg.failures, ids[i], parser)
                meta.update(walked)
                recs.append(PredictionRecord(ids[i], ex.label, pred, settings.name, str(r),
                                             raw=raw, error=error, meta=meta))
            elif entry is not None:
                pred = parser(entry["answer"])
                meta["model"] = entry.get("model")
                recs.append(PredictionRecord(
                    ids[i], ex.label, pred, settings.name, str(r), raw=entry["answer"],
                    error=None if pred is not None else "answer names no category", meta=meta))
            else:
                failure = lg.failures.get(ids[i])
                reason = failure["error"] if failure else "not requested (the run stopped)"
                recs.append(PredictionRecord(ids[i], ex.label, None, settings.name, str(r),
                                             error=f"request failed: {reason}", meta=meta))
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
                meta={"notes": notes, "rounds": settings.rounds} if notes
                else {"rounds": settings.rounds}))
        records["vote"] = voted
        files.append(write_records(out / "preds" / "vote.preds.jsonl", voted))

    # Records of rounds (or a vote) that this run no longer has would be scored with the
    # current ones; they are derived files (the log keeps every answer), so remove them.
    for stale_file in (out / "preds").glob("*.preds.jsonl"):
        if stale_file not in files:
            stale_file.unlink()

    manifest["models_answered"] = dict(models)
    manifest["system_fingerprints"] = dict(fingerprints)
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


def _manifest(settings: JudgeSettings, template: PromptTemplate, key: str,
              plan: ShotPlan | None, examples: Sequence[Example],
              train: Sequence[Example] | None, data_source: str | None,
              train_source: str | None) -> dict[str, Any]:
    from .. import __version__

    notes = []
    same_file = False
    if plan is not None and train is not None:
        same_file = examples_hash(train) == examples_hash(examples)
        if same_file or {(e.context, e.response) for e in train} & \
                {(e.context, e.response) for e in examples}:
            notes.append("shots drawn from the judged items, self excluded")
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


async def _ask_all(pending: list[tuple[int, int]], examples: Sequence[Example], ids: list[str],
                   messages: Callable[[int, Example], list[dict[str, str]]],
                   hashes: dict[int, dict[str, str]], settings: JudgeSettings, key: str,
                   api_key: str | None, log: _Log, logs: dict[int, RoundLog],
                   show_progress: bool, parser: Callable[[str | None], int | None]
                   ) -> dict[str, Any]:
    from ..progress import progress_bar

    transport = make_transport(settings.client, settings.base_url, api_key, settings.timeout,
                               settings.concurrency)
    policy = RetryPolicy(max_attempts=settings.max_attempts, backoff_base=settings.backoff_base)
    rng = random.Random()  # back-off jitter only; it never touches what is asked
    work = iter(pending)
    counts: Counter[str] = Counter()
    sequential = settings.protocol == "sequential"
    bar = progress_bar(total=len(pending), desc="judge", unit="item" if sequential else "req") \
        if show_progress else _NoBar()
    last_postfix = 0.0
    start = time.perf_counter()

    async def ask(round_no: int, log_id: str, msgs: list[dict[str, str]]) -> Answer | Failure:
        """One request, logged under ``log_id`` (an item id, or a sequential step id)."""
        payload = json.dumps({"model": settings.model, "messages": msgs,
                              **settings.sampling}, ensure_ascii=False).encode("utf-8")
        result = await complete(transport, payload, policy, rng, api_key)
        entry: dict[str, Any] = {"v": LOG_VERSION, "key": key, "round": round_no,
                                 "id": log_id, "prompt_hash": hashes[round_no][log_id]}
        if isinstance(result, Answer):
            entry.update(_answer_fields(result.content, result.model, result.system_fingerprint,
                                        result.usage),
                         latency_s=round(result.latency_s, 4), attempts=result.attempts)
            logs[round_no].answers[log_id] = entry
            logs[round_no].failures.pop(log_id, None)
            counts["answered"] += 1
            counts["retries"] += result.attempts - 1
        else:
            assert isinstance(result, Failure)
            entry.update(error=result.reason, attempts=result.attempts)
            logs[round_no].failures[log_id] = entry
            counts["failed"] += 1
            counts["retries"] += result.attempts - 1
            counts["streak"] += 1
        entry["time"] = _now()
        log.append(round_no, entry)
        if isinstance(result, Answer):
            counts["streak"] = 0
        elif 0 < settings.stop_after_failures <= counts["streak"]:
            # A server that is down would otherwise cost every item its whole retry
            # budget; stop, keep what was logged, and let a rerun resume.
            raise FatalAPIError(f"{counts['streak']} items in a row failed (last: "
                                f"{result.reason}); the server seems down or overloaded. "
                                "Rerun the same command to resume")
        return result

    async def walk(round_no: int, i: int) -> None:
        """One item of the sequential protocol: its nodes, one request each, in order."""
        ex, item_id = examples[i], ids[i]

        async def node(number: int) -> str | None:
            result = await ask(round_no, seq.step_id(item_id, number),
                               seq.node_messages(ex, number))
            return result.content if isinstance(result, Answer) else None

        await seq.walk_item(seq.answers_of(logs[round_no].answers, item_id), node, parser)
        counts["items"] += 1

    async def worker() -> None:
        nonlocal last_postfix
        for round_no, i in work:
            if sequential:
                await walk(round_no, i)
            else:
                await ask(round_no, ids[i], messages(round_no, examples[i]))
            bar.update(1)
            now = time.perf_counter()
            if now - last_postfix > 0.5:
                last_postfix = now
                bar.set_postfix(errors=counts["failed"], retries=counts["retries"], refresh=False)

    async def syncer() -> None:
        while True:
            await asyncio.sleep(0.5)
            if log.dirty:
                await asyncio.to_thread(log.sync, log.take_dirty())

    tasks = [asyncio.create_task(worker()) for _ in range(min(settings.concurrency,
                                                               max(1, len(pending))))]
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
    stats = {"requests": done, "answered": counts["answered"], "failed": counts["failed"],
             "retries": counts["retries"], "wall_s": round(wall, 3),
             "per_second": round(done / wall, 2) if wall > 0 and done else 0.0}
    if sequential:
        stats["items"] = counts["items"]
    return stats


def _answer_fields(content: str, model: str | None, fingerprint: str | None,
                   usage: dict[str, Any] | None) -> dict[str, Any]:
    """The log fields of an answer, synchronous or from a batch."""
    return {"answer": content, "model": model, "system_fingerprint": fingerprint,
            "usage": usage or {}}


def _batch_jobs(pending: list[tuple[int, int]], examples: Sequence[Example], ids: list[str],
                messages: Callable[[int, Example], list[dict[str, str]]],
                hashes: dict[int, dict[str, str]], settings: JudgeSettings) -> list[Any]:
    from .batch import BatchJob

    return [BatchJob(r, ids[i], hashes[r][ids[i]],
                     {"model": settings.model, "messages": messages(r, examples[i]),
                      **settings.sampling})
            for r, i in pending]


def _batch_requests_file(pending: list[tuple[int, int]], examples: Sequence[Example],
                         ids: list[str], messages: Callable[[int, Example], list[dict[str, str]]],
                         hashes: dict[int, dict[str, str]], settings: JudgeSettings, key: str,
                         out: Path) -> Path:
    """``--batch-file-only``: the pending requests as a batch input file, nothing sent."""
    from .batch import REQUESTS_FILE, request_lines, write_request_file

    if not pending:
        raise UsageError("nothing to write: every request of this run is answered")
    path = out / "batch" / REQUESTS_FILE
    write_request_file(path, request_lines(key, _batch_jobs(pending, examples, ids, messages,
                                                            hashes, settings)))
    return path


def _batch_round(pending: list[tuple[int, int]], examples: Sequence[Example], ids: list[str],
                 messages: Callable[[int, Example], list[dict[str, str]]],
                 hashes: dict[int, dict[str, str]], settings: JudgeSettings, key: str,
                 api_key: str | None, log: _Log, logs: dict[int, RoundLog], out: Path,
                 show_progress: bool, say: Callable[[str], None],
                 results_file: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The pending requests through a Batch API (or a ``--batch-results`` file) into the log."""
    from . import batch as bt

    start = time.perf_counter()
    info: dict[str, Any] = {}
    run = None
    if not pending and results_file is None:
        return {"requests": 0, "answered": 0, "failed": 0, "retries": 0, "wall_s": 0.0,
                "per_second": 0.0}
    if results_file is not None:
        path = Path(results_file)
        if not path.is_file():
            raise UsageError(f"{path}: no such batch results file")
        data = path.read_bytes()
        via: dict[str, Any] = {"via": "batch", "batch_results": path.name}
    else:
        run = bt.BatchRun(out / "batch", bt.BatchAPI(settings.base_url, api_key,
                                                     settings.timeout, settings.max_attempts - 1),
                          settings.batch_poll, say, show_progress)
        try:
            state = run.submit(key, _batch_jobs(pending, examples, ids, messages, hashes,
                                                settings),
                               {"mhsafety_key": key, "system": settings.name[:500]})
            batch = run.wait(state)
            if batch["status"] == "failed":
                run.finish(state)
                raise UsageError(f"batch {state.batch_id} failed: {bt.batch_errors(batch)}. "
                                 "Rerun the same command to send a new batch")
            data = run.download(batch)
        finally:
            run.api.close()
        via = {"via": "batch", "batch_id": state.batch_id}
        info.update(batch_id=state.batch_id, status=batch["status"])
    join_start = time.perf_counter()

    def base_entry(round_no: int, item_id: str, prompt_hash: str) -> dict[str, Any]:
        return {"v": LOG_VERSION, "key": key, "round": round_no, "id": item_id,
                "prompt_hash": prompt_hash}

    def answer_fields(content: str, body: dict[str, Any]) -> dict[str, Any]:
        return _answer_fields(content, body.get("model"), body.get("system_fingerprint"),
                              body.get("usage"))

    joined = bt.join_results(bt.result_objects(data, str(results_file or "batch output")),
                             key, hashes, base_entry, answer_fields, via)
    added = Counter[str]()
    try:
        for round_no, entry in joined.entries:
            lg, item_id = logs[round_no], entry["id"]
            if item_id in lg.answers:
                continue  # answered already (a results file joined twice, say)
            entry["time"] = _now()
            log.append(round_no, entry)
            if "answer" in entry:
                lg.answers[item_id] = entry
                lg.failures.pop(item_id, None)
                added["answered"] += 1
            else:
                lg.failures[item_id] = entry
                added["failed"] += 1
    finally:
        log.close()
    if run is not None:
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
    if batch_tokens.get("prompt_tokens") or batch_tokens.get("completion_tokens"):
        line += (f" ({batch_tokens['prompt_tokens']} + {batch_tokens['completion_tokens']} "
                 "of them through a batch)")
    if s.get("cost") is not None:
        line += f"; estimated cost {s['cost']:.4f} (at the given prices per million tokens"
        if batch_tokens.get("prompt_tokens") or batch_tokens.get("completion_tokens"):
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
