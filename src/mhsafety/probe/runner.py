"""The audit's results folder and its run: ask the targets, grade every reply as it comes,
resume after kill -9 with nothing asked twice, write the summary.

Layout of ``OUT``::

    manifest.json    what is asked (targets, data or personas, sampling, grader); a rerun
                     with other settings is refused, a rerun with the same resumes
    asked.jsonl      every target and seeker answer (or failure) the moment it arrives:
                     one line per request, keyed (role, target, cluster, sample, turn)
    replies.jsonl    one graded reply per line (:class:`~mhsafety.probe.records.GradedReply`)
    crisis.jsonl     one crisis-rubric verdict per high/imminent conversation
    calibration.json the grader's answers on ``--grader-calibration``
    summary.json     :func:`~mhsafety.probe.summary.build_summary` plus failures, tokens, cost

Both logs are appended with one ``write`` per line on an ``O_APPEND`` descriptor and synced
(fsync) at least every :data:`SYNC_EVERY_S` seconds and at the end, so kill -9 leaves at most
one torn last line, cut off by the next run. A rerun asks only what ``asked.jsonl`` lacks
(failed requests are asked again), grades what was asked but not graded, and continues each
conversation from its last logged turn.

Concurrency as the judge has it: each target has ``concurrency`` requests in flight; replies
go to a queue that the grader drains in batches in worker threads, so a slow grader never
idles a target (the queue holds what waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import Example
from ..errors import DataError, UsageError
from ..io import prepare_output_dir, write_json
from ..judge.client import Answer, ChatClient, Failure, FatalAPIError, refusal_message
from ..judge.log import exclusive, repair_torn_tail
from ..judge.parse import split_reasoning
from ..judge.transport import UNREACHABLE, Transport
from ..settings import SettingsError
from ..taxonomy import LABEL_NAMES
from .correct import Calibration
from .crisis import CrisisVerdict
from .grade import EMPTY_REPLY, Grade, Grader, load_grader, reply_example
from .records import REPLIES_FILE, GradedReply, read_replies
from .summary import build_summary
from .targets import ProbeSettings, chat_settings, parse_endpoint

MANIFEST, ASKED, CRISIS, CALIBRATION, SUMMARY = (
    "manifest.json", "asked.jsonl", "crisis.jsonl", "calibration.json", "summary.json")
SYNC_EVERY_S = 0.2
Key = tuple[str, str, str, int, int]  # (role, target, cluster, sample, turn)


# -- append-only logs ---------------------------------------------------------------------


class AppendLog:
    """One JSONL file appended a line per ``write`` (whole lines survive kill -9), synced by
    a background thread every :data:`SYNC_EVERY_S` seconds (an fsync takes milliseconds on
    a busy disk: never on the event loop) and at :meth:`close`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.torn = repair_torn_tail(path)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.dirty = False
        self.closing = threading.Event()
        self.syncer = threading.Thread(target=self._sync_loop, name="probe-fsync",
                                       daemon=True)
        self.syncer.start()

    def append(self, obj: dict[str, Any]) -> None:
        os.write(self.fd, (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8"))
        self.dirty = True

    def _sync_loop(self) -> None:
        while not self.closing.wait(SYNC_EVERY_S):
            self.sync()

    def sync(self) -> None:
        if self.dirty:
            self.dirty = False
            os.fsync(self.fd)

    def close(self) -> None:
        self.closing.set()
        self.syncer.join()
        self.sync()
        os.close(self.fd)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a log (a torn or corrupt line is skipped: its request is asked
    again)."""
    if not path.exists():
        return
    with open(path, "rb") as handle:
        for raw in handle:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict):
                yield obj


def entry_key(entry: dict[str, Any]) -> Key:
    return (entry["role"], entry["target"], entry["cluster"], int(entry["sample"]),
            int(entry["turn"]))


@dataclass
class Logged:
    """What a folder's logs hold, read once at the start of a run and kept up to date by
    the run as it appends (so the summary needs no second read of what was just written):
    the first answer of each key, the keys whose requests failed, the last graded record of
    each reply."""

    answers: dict[Key, dict[str, Any]] = field(default_factory=dict)
    failed: dict[Key, str] = field(default_factory=dict)  # target requests that failed
    replies: dict[tuple[str, tuple[str, int, int]], GradedReply] = field(default_factory=dict)

    @classmethod
    def read(cls, out: Path) -> Logged:
        logged = cls()
        for entry in read_jsonl(out / ASKED):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                logged.note_asked(entry_key(entry), entry)
        path = out / REPLIES_FILE
        for reply in (read_replies(path) if path.exists() else []):
            logged.replies[(reply.target, reply.key)] = reply  # the last record counts
        return logged

    def note_asked(self, key: Key, entry: dict[str, Any]) -> None:
        if "content" in entry:
            self.answers.setdefault(key, entry)  # the first answer counts
        elif entry["role"] == "target":
            self.failed[key] = entry["target"]

    def usage(self) -> dict[str, dict[str, int]]:
        """Token totals per target (and ``seeker``) over every answer."""
        totals: dict[str, Counter[str]] = {}
        for entry in self.answers.values():
            with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):
                who = entry["target"] if entry["role"] == "target" else "seeker"
                for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
                    value = (entry.get("usage") or {}).get(name)
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        totals.setdefault(who, Counter())[name] += int(value)
        return {who: {k: int(c.get(k, 0)) for k in ("prompt_tokens", "completion_tokens",
                                                     "total_tokens")}
                for who, c in totals.items()}

    def failures(self) -> dict[str, int]:
        """Target requests whose last attempt failed and never got an answer, per target."""
        return dict(Counter(t for k, t in self.failed.items() if k not in self.answers))


# -- the session: clients, logs, the grading pipeline ------------------------------------


@dataclass
class Tally:
    asked: Counter[str] = field(default_factory=Counter)  # requests this run, by role
    failed: Counter[str] = field(default_factory=Counter)
    graded: int = 0
    resumed: int = 0  # answers taken from the log instead of asking


class Session:
    """What one run shares: the endpoints' clients, the logs, the answers logged so far and
    the queue of replies waiting for the grader. :mod:`.single` and :mod:`.simulate` drive
    it."""

    def __init__(self, settings: ProbeSettings, out: Path, grader: Grader,
                 transport: Transport | None, show_progress: bool) -> None:
        self.settings, self.out, self.grader = settings, out, grader
        self.system_prompt = (settings.system_prompt.read_text(encoding="utf-8")
                              if settings.system_prompt else None)
        self.clients = {ep.name: ChatClient(chat_settings(ep, settings), transport)
                        for ep in settings.endpoints}
        self.seeker = (ChatClient(chat_settings(parse_endpoint(settings.seeker, "seeker"),
                                                settings, role="seeker"), transport)
                       if settings.seeker else None)
        self.crisis_settings = (chat_settings(parse_endpoint(settings.crisis_grader,
                                                             "crisis_grader"),
                                              settings, role="grader")
                                if settings.crisis_grader else None)
        self.transport = transport
        replies_path = out / REPLIES_FILE
        self.replies_torn = repair_torn_tail(replies_path)
        self.logged = Logged.read(out)
        self.answers = self.logged.answers
        self.graded: set[tuple[str, tuple[str, int, int]]] = set(self.logged.replies)
        self.crisis_done = {(v.get("target"), v.get("conversation_id"))
                            for v in read_jsonl(out / CRISIS)}
        self.asked_log = AppendLog(out / ASKED)
        self.replies_log = AppendLog(replies_path)
        self.crisis_log = AppendLog(out / CRISIS)
        self.tally = Tally()
        self.queue: asyncio.Queue[tuple[GradedReply, Example] | None] = asyncio.Queue()
        self.sems = {name: asyncio.Semaphore(settings.concurrency) for name in self.clients}
        self.seeker_sem = asyncio.Semaphore(settings.concurrency)
        self.pool = ThreadPoolExecutor(max(1, grader.parallel) + 4,
                                       thread_name_prefix="probe-grade")
        self.answered_once = False
        self.streak = 0  # failed requests in a row
        from ..progress import progress_bar

        self.bar = progress_bar(total=None, desc="probe", unit="reply",
                                disable=None if show_progress else True)
        self.grade_bar = progress_bar(total=None, desc="grade", unit="reply",
                                      disable=None if show_progress else True)

    # ---------------------------------------------------------------- asking

    def _fatal(self, kind: str) -> bool:
        # Nothing listens before any answer came: a wrong URL, not a hiccup.
        return kind in UNREACHABLE and not self.answered_once

    async def ask(self, key: Key, client: ChatClient, sem: asyncio.Semaphore,
                  messages: list[dict[str, str]]) -> dict[str, Any] | None:
        """The logged answer of ``key``, or ask now and log it; None when the request
        failed (logged with its reason; a rerun asks again)."""
        logged = self.answers.get(key)
        if logged is not None:
            self.tally.resumed += 1
            return logged
        role, target, cluster, sample, turn = key
        async with sem:
            try:
                result = await client.send(messages, fatal=self._fatal)
            except FatalAPIError as exc:
                raise UsageError(refusal_message(exc, client.settings, client.api_key)
                                 ) from None
        entry: dict[str, Any] = {"role": role, "target": target, "cluster": cluster,
                                 "sample": sample, "turn": turn}
        self.tally.asked[role] += 1
        if isinstance(result, Failure):
            self.tally.failed[role] += 1
            entry["error"] = result.reason
            self.asked_log.append(entry)
            self.logged.note_asked(key, entry)
            self.streak += 1
            stop_after = client.settings.stop_after_failures
            if 0 < stop_after <= self.streak:
                # A server that is down would otherwise cost every request its whole retry
                # budget; what was logged stays, and a rerun resumes.
                raise UsageError(f"{self.streak} requests in a row failed (last: "
                                 f"{result.reason}); the server seems down or overloaded. "
                                 "Rerun the same command to resume")
            return None
        assert isinstance(result, Answer)
        self.streak = 0
        self.answered_once = True
        choice = result.choices[0]
        entry.update(content=choice.content, reasoning=choice.reasoning,
                     finish_reason=choice.finish_reason, model=result.model,
                     usage=result.usage, latency_s=round(result.latency_s, 4))
        self.asked_log.append(entry)
        self.logged.note_asked(key, entry)
        return entry

    # ---------------------------------------------------------------- grading

    def is_graded(self, target: str, cluster_key: tuple[str, int, int]) -> bool:
        return (target, cluster_key) in self.graded

    def submit(self, entry: dict[str, Any], context: str, **fields: Any) -> None:
        """Queue the target reply of ``entry`` (an answer of the log) for grading against
        ``context`` (marker string), unless it was graded before."""
        reasoning_inline, reply = split_reasoning(entry["content"])
        kind, _, ident = entry["cluster"].partition(":")
        usage = entry.get("usage") or {}
        record = GradedReply(
            target=entry["target"], sample=entry["sample"], turn=entry["turn"],
            context=context, reply=reply.strip(),
            reasoning=entry.get("reasoning") or reasoning_inline,
            grader=self.grader.name, latency_s=entry.get("latency_s"),
            prompt_tokens=_int(usage.get("prompt_tokens")),
            completion_tokens=_int(usage.get("completion_tokens")),
            **({"prompt_id": ident} if kind == "prompt" else {"conversation_id": ident}),
            **fields)
        if self.is_graded(record.target, record.key):
            return
        self.graded.add((record.target, record.key))
        self.queue.put_nowait((record, reply_example(context, record.reply,
                                                     f"{record.cluster}#{record.sample}"
                                                     f"#{record.turn}")))

    async def grade_loop(self) -> None:
        """Drain the queue in batches until None, at most ``batch_size * parallel`` replies
        being graded at once.

        The limit counts replies, not batches: a batch frees its replies' slots when it
        returns and the next batch takes whatever is queued then (up to ``batch_size``), so
        the grader keeps its whole capacity busy instead of holding a slot per batch until
        a full batch's worth has queued (which left the last replies waiting on a backlog).
        """
        loop = asyncio.get_running_loop()
        capacity = max(1, self.grader.batch_size) * max(1, self.grader.parallel)
        slots = asyncio.Semaphore(capacity)
        # A grader in worker threads (a model on the CPU) runs ``parallel`` batches at once.
        calls = None if self.grader.asynchronous else asyncio.Semaphore(
            max(1, self.grader.parallel))
        running: set[asyncio.Task[None]] = set()
        done = False

        async def run(batch: list[tuple[GradedReply, Example]]) -> None:
            try:
                todo = [(i, ex) for i, (rec, ex) in enumerate(batch) if rec.reply]
                grades: list[Grade] = [Grade(None, None, EMPTY_REPLY)] * len(batch)
                if todo:
                    try:
                        items = [ex for _, ex in todo]
                        got = (await self.grader.agrade(items) if self.grader.asynchronous
                               else await loop.run_in_executor(self.pool, self.grader.grade,
                                                               items))
                    except Exception as exc:  # noqa: BLE001 - one failed batch: ungraded
                        got = [Grade(None, None, f"grader failed: {exc.__class__.__name__}: "
                                                 f"{str(exc)[:200]}")] * len(todo)
                    for (i, _), grade in zip(todo, got):
                        grades[i] = grade
                for (record, _), grade in zip(batch, grades):
                    record.pred, record.probs, record.grader_error, record.binary = (
                        grade.pred, grade.probs, grade.error, grade.binary)
                    self.replies_log.append(record.to_dict())
                    self.logged.replies[(record.target, record.key)] = record
                    self.tally.graded += 1
                self.grade_bar.update(len(batch))
            finally:
                for _ in batch:
                    slots.release()
                if calls is not None:
                    calls.release()

        while not done:
            item = await self.queue.get()
            if item is None:
                break
            if calls is not None:
                await calls.acquire()
            await slots.acquire()
            # One turn of the loop lets the replies that arrived with this one queue too
            # (they come in bursts): fewer, fuller grader calls at no added wait.
            await asyncio.sleep(0)
            batch = [item]
            # Take what is queued now while slots are free (never wait for more to queue).
            while (len(batch) < self.grader.batch_size and not self.queue.empty()
                   and not slots.locked()):
                nxt = self.queue.get_nowait()
                if nxt is None:
                    done = True
                    break
                await slots.acquire()  # free (not locked): returns at once
                batch.append(nxt)
            task = asyncio.create_task(run(batch))
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.gather(*running)

    # ---------------------------------------------------------------- crisis

    def crisis_complete(self) -> Callable[[list[dict[str, str]]], str]:
        """The crisis grader as ``complete(messages) -> text`` (called from a thread)."""
        from ..judge.client import chat

        settings, transport = self.crisis_settings, self.transport

        def complete(messages: list[dict[str, str]]) -> str:
            result = chat(messages, settings, transport)
            if isinstance(result, Failure):  # recorded by the rubric as a failed call
                raise RuntimeError(result.reason)  # noqa: TRY004 - a failure, not a type
            return result.content

        return complete

    def record_crisis(self, verdict: CrisisVerdict) -> None:
        self.crisis_log.append(verdict.to_dict())
        self.crisis_done.add((verdict.target, verdict.conversation_id))

    async def aclose(self) -> None:
        for client in [*self.clients.values(), *([self.seeker] if self.seeker else [])]:
            await client.aclose()
        await self.grader.aclose()
        for log in (self.asked_log, self.replies_log, self.crisis_log):
            log.close()
        self.pool.shutdown(wait=False)
        self.bar.close()
        self.grade_bar.close()


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- the manifest: a rerun resumes only the same audit -------------------------------------


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def audit_identity(settings: ProbeSettings, source_sha: str, grader: Grader) -> dict[str, Any]:
    """What decides the answers and grades of an audit (a rerun must match it)."""
    system = (_sha(settings.system_prompt.read_text(encoding="utf-8"))
              if settings.system_prompt else None)
    return {
        "targets": {ep.name: f"{ep.model}@{ep.base_url.rstrip('/')}"
                    for ep in settings.endpoints},
        "probe": "multi-turn" if settings.multi_turn else "single-turn",
        "source_sha256": source_sha, "samples": settings.samples,
        "system_prompt_sha256": system,
        "sampling": {"max_tokens": settings.max_tokens, "temperature": settings.temperature,
                     "top_p": settings.top_p, "reasoning_effort": settings.reasoning_effort},
        "seeker": settings.seeker, "grader": grader.name,
    }


def check_manifest(out: Path, identity: dict[str, Any]) -> None:
    """Refuse to mix two audits in one folder; a target added to the same audit is fine."""
    path = out / MANIFEST
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))["audit"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(f"{path}: unreadable; choose another --out") from None
    for name, value in identity.items():
        before = old.get(name)
        if name == "targets":
            changed = [t for t in value if t in before and before[t] != value[t]]
            if changed:
                raise UsageError(f"{out}: target {changed[0]!r} was {before[changed[0]]} in "
                                 f"this folder's audit, now {value[changed[0]]}; choose "
                                 "another --out (a rerun resumes only the same audit)")
            continue
        if before != value:
            raise UsageError(f"{out}: this folder holds an audit with another {name} "
                             f"({before!r}, now {value!r}); choose another --out (a rerun "
                             "resumes only the same audit)")


# -- the run --------------------------------------------------------------------------------


@dataclass
class ProbeResult:
    summary: dict[str, Any]
    out: Path


def _calibration(settings: ProbeSettings, grader: Grader, out: Path
                 ) -> tuple[Calibration | None, dict[str, Any] | None]:
    """The grader's errors on ``grader_calibration`` (refused when it overlaps the
    grader's training data unless allow_overlap); cached in ``calibration.json``."""
    path = settings.grader_calibration
    if path is None:
        return None, None
    from ..classifiers.base import read_manifest
    from ..data import check_checkpoint_overlap, examples_hash, load_examples

    examples = load_examples(path)
    shared: list[str] = []
    if grader.checkpoint is not None:
        found = check_checkpoint_overlap(read_manifest(grader.checkpoint), examples,
                                         f"grader {grader.checkpoint}", str(path),
                                         settings.allow_overlap)
        shared = list(found.shared)
    sha = examples_hash(examples)
    cache = out / CALIBRATION
    preds: list[int] | None = None
    if cache.exists():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            old = json.loads(cache.read_text(encoding="utf-8"))
            if old["sha256"] == sha and old["grader"] == grader.name:
                preds = [int(p) for p in old["unsafe"]]
    if preds is None:
        preds = []
        size = max(grader.batch_size * grader.parallel, 64)
        for start in range(0, len(examples), size):
            # The binary view (1 unsafe, 0 safe, -1 ungraded): what Se and Sp are about,
            # and all a binary-only grader answers.
            preds += [-1 if g.unsafe is None else int(g.unsafe)
                      for g in grader.grade(examples[start:start + size])]
        write_json(cache, {"source": str(path), "sha256": sha, "grader": grader.name,
                           "unsafe": preds})
    calibration = Calibration.from_binary([ex.label for ex in examples], preds,
                                          groups=[ex.context for ex in examples])
    info = {"source": str(path), "items": len(examples), "sha256": sha,
            "overlap_with_grader_training": len(shared)}
    return calibration, info


async def _arun(settings: ProbeSettings, out: Path, grader: Grader, source: list[Any],
                transport: Transport | None, show_progress: bool
                ) -> tuple[dict[str, Any], Logged]:
    from . import simulate, single

    session = Session(settings, out, grader, transport, show_progress)
    start = time.perf_counter()
    grading = asyncio.create_task(session.grade_loop())
    try:
        if settings.multi_turn:
            await simulate.probe_conversations(session, source[:settings.limit])
        else:
            await single.probe_contexts(session, single.distinct_contexts(
                source, settings.limit))
        session.queue.put_nowait(None)
        await grading
    finally:
        if not grading.done():
            grading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await grading
        await session.aclose()
    t = session.tally
    return {"requests": dict(t.asked), "failed": dict(t.failed), "graded": t.graded,
            "resumed": t.resumed, "wall_s": round(time.perf_counter() - start, 3)
            }, session.logged


def _load_source(settings: ProbeSettings) -> tuple[list[Any], str]:
    """The personas or the dataset's items (validated, read once) and their content hash."""
    if settings.multi_turn:
        from .personas import load_personas

        personas = load_personas(settings.personas)
        cards = [p.to_dict() for p in personas]
        return personas, _sha(json.dumps(cards, sort_keys=True, ensure_ascii=False))
    from ..data import examples_hash, load_examples

    examples = load_examples(settings.data, require_label=False)
    return examples, examples_hash(examples)


def write_summary(out: Path, settings: ProbeSettings, calibration: Calibration | None = None,
                  calibration_info: dict[str, Any] | None = None,
                  run: dict[str, Any] | None = None, logged: Logged | None = None
                  ) -> dict[str, Any]:
    """``summary.json`` from the folder's records (every run's), returned; ``logged``: the
    records as the run that just wrote them holds them (else read from the folder)."""
    from ..judge.results import Usage, cost

    logged = logged if logged is not None else Logged.read(out)
    replies = logged.replies
    verdicts = {}
    for obj in read_jsonl(out / CRISIS):
        with contextlib.suppress(TypeError, KeyError):
            verdict = CrisisVerdict.from_dict(obj)
            verdicts[(verdict.target, verdict.conversation_id)] = verdict
    summary = build_summary(replies.values(), calibration=calibration,
                            crisis=verdicts.values(), level=settings.level,
                            resamples=settings.resamples, seed=settings.seed)
    tokens = logged.usage()
    failed = logged.failures()
    for ep in settings.endpoints:
        block = summary["targets"].setdefault(ep.name, {
            "n": 0, "ungraded": 0,
            "unsafe_rate": {"observed": None, "ci": [None, None], "corrected": None,
                            "corrected_ci": None},
            "categories": {name: 0 for name in LABEL_NAMES}, "by_risk": {}, "crisis": {}})
        block["failed"] = failed.get(ep.name, 0)
        block["model"] = ep.model
        block["tokens"] = tokens.get(ep.name, {"prompt_tokens": 0, "completion_tokens": 0,
                                               "total_tokens": 0})
        usage = Usage()
        usage.tokens.update(block["tokens"])
        block["cost"] = cost(usage, chat_settings(ep, settings))
    summary["seeker_tokens"] = tokens.get("seeker")
    summary["price_per_million"] = {"in": settings.price_in, "out": settings.price_out}
    summary["calibration"] = calibration_info
    summary["probe"] = "multi-turn" if settings.multi_turn else "single-turn"
    if run is not None:
        summary["this_run"] = run
    write_json(out / SUMMARY, summary)
    return summary


def run_probe(settings: ProbeSettings, out: str | os.PathLike[str], *,
              transport: Transport | None = None, grader: Grader | None = None,
              show_progress: bool = False) -> ProbeResult:
    """Audit ``settings.targets`` into folder ``out`` (created, or resumed when it holds
    this audit) and return the summary (also in ``out/summary.json``).

    ``transport`` carries every chat request (targets, seeker, crisis grader; default: the
    built-in HTTP client); ``grader`` replaces the one ``settings.grader`` names (tests).
    Raises :class:`~mhsafety.errors.UsageError` / :class:`~mhsafety.errors.DataError` for
    bad input, before any request.
    """
    out = Path(out)
    for name in ("system_prompt", "grader_calibration"):
        path = getattr(settings, name)
        if path is not None and not Path(path).is_file():
            raise SettingsError.about(name, f"names no file: {path}")
    grader = grader or load_grader(settings.grader, settings.grader_concurrency)
    source, source_sha = _load_source(settings)
    identity = audit_identity(settings, source_sha, grader)
    prepare_output_dir(out, command="probe", create=True, force_flag=None)
    with exclusive(out, "probe"):
        check_manifest(out, identity)
        old: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            old = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        targets = {**(old.get("audit", {}).get("targets") or {}), **identity["targets"]}
        from .. import __version__

        write_json(out / MANIFEST, {"kind": "mhsafety-probe-run",
                                    "mhsafety_version": __version__,
                                    "audit": {**identity, "targets": targets},
                                    "settings": json.loads(json.dumps(
                                        settings.to_dict(), default=str))})
        calibration, info = _calibration(settings, grader, out)
        from ..judge.client import run_sync

        stats, logged = run_sync(_arun(settings, out, grader, source, transport,
                                       show_progress))
        summary = write_summary(out, settings, calibration, info, stats, logged)
    return ProbeResult(summary, out)


__all__ = ["ASKED", "CRISIS", "MANIFEST", "SUMMARY", "AppendLog", "ProbeResult", "Session",
           "run_probe", "write_summary"]
