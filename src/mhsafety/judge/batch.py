"""Judging through an OpenAI-compatible Batch API (``--batch``), or offline via a request file.

A batch run sends every pending request of the run (all rounds) as one batch:

1. the request JSONL is written to ``OUT/batch/requests.jsonl``, one line per request:
   ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}`` -- the body is
   exactly what the synchronous judge would send, so ``vllm run-batch`` runs the same file;
2. it is uploaded to ``/v1/files`` (purpose ``batch``) and a batch is created at
   ``/v1/batches``; ``OUT/batch/state.json`` (written atomically after each step) holds the
   file's sha256, the file id and the batch id;
3. the batch is polled (progress from its ``request_counts``) until it ends, then its output
   file and error file are downloaded and joined by ``custom_id``: every result becomes a
   line of the run's resume log, as if it had been answered synchronously.

``custom_id`` is ``<settings key>.<round>.<prompt hash>.<item id>``: a result whose settings
key or prompt hash is not what the run would send now is counted as stale and never used, so
answers of an older batch (another model, prompt or sampling) cannot mix in. A rerun after a
kill resumes the batch named in ``state.json`` when its settings key matches (polling it, or
joining its results if it already finished); the only window that could leave a batch
unrecorded, between creating it and writing its id, is closed by looking the batch up by its
input file id.

The Batch API endpoints are called through the official ``openai`` SDK: they are a handful
of calls per run (the fast client's per-request speed buys nothing here), and the SDK brings
the multipart upload, the binary download and retries of transient faults.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError, UsageError
from ..io import atomic_write, write_json
from .client import Answer, Failure, FatalAPIError, Reply, _interpret, _Retryable

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"  # the only window OpenAI offers
TERMINAL = ("completed", "failed", "expired", "cancelled")
MAX_REQUESTS = 50_000  # OpenAI's limit per batch
STATE_FILE = "state.json"
REQUESTS_FILE = "requests.jsonl"


# --------------------------------------------------------------------------- request file


@dataclass(frozen=True)
class BatchJob:
    """One request of a batch: which round and item it answers, and its exact body."""

    round: int
    item_id: str
    prompt_hash: str
    body: dict[str, Any]


def custom_id(key: str, job: BatchJob) -> str:
    return f"{key}.{job.round}.{job.prompt_hash}.{job.item_id}"


def parse_custom_id(value: Any) -> tuple[str, int, str, str] | None:
    """``(key, round, prompt_hash, item_id)``; None for an id this judge did not write."""
    if not isinstance(value, str):
        return None
    parts = value.split(".", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2], parts[3]


def request_lines(key: str, jobs: Sequence[BatchJob]) -> bytes:
    """The batch input file: one request per line, ids unique (one job per round and item)."""
    out = []
    for job in jobs:
        out.append(json.dumps({"custom_id": custom_id(key, job), "method": "POST",
                               "url": ENDPOINT, "body": job.body},
                              ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(out) + "\n").encode("utf-8") if out else b""


def write_request_file(path: Path, data: bytes) -> str:
    """Write the request file atomically; returns its sha256."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- results


@dataclass
class Joined:
    """What a result file gave: ``(round, item id, prompt hash, outcome)`` per usable line,
    and how many lines were left out and why."""

    results: list[tuple[int, str, str, Answer | Failure]] = field(default_factory=list)
    stale: int = 0
    foreign: int = 0
    corrupt: int = 0


def result_objects(data: bytes, source: str) -> Iterable[dict[str, Any] | None]:
    """The result file's lines as objects (None for a line that is not a JSON object)."""
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            yield None
            continue
        yield obj if isinstance(obj, dict) else None


def join_results(objects: Iterable[dict[str, Any] | None], key: str,
                 expected: dict[int, dict[str, str]]) -> Joined:
    """Match result lines to the requests of the current settings.

    ``expected[round][item_id]`` is the prompt hash the run would send now; a result for
    another settings key or prompt hash is stale. A result's body is read exactly as a
    synchronous reply is (the client's own reading: reasoning apart, finish reason,
    logprobs), so batch answers log like any other.
    """
    out = Joined()
    seen: set[tuple[int, str]] = set()
    for obj in objects:
        if obj is None:
            out.corrupt += 1
            continue
        parsed = parse_custom_id(obj.get("custom_id"))
        if parsed is None:
            out.foreign += 1
            continue
        line_key, round_no, prompt_hash, item_id = parsed
        if line_key != key or expected.get(round_no, {}).get(item_id) != prompt_hash:
            out.stale += 1
            continue
        if (round_no, item_id) in seen:
            continue  # a result file should not repeat an id; the first one counts
        seen.add((round_no, item_id))
        out.results.append((round_no, item_id, prompt_hash, _outcome(obj)))
    return out


def _outcome(obj: dict[str, Any]) -> Answer | Failure:
    response = obj.get("response") if isinstance(obj.get("response"), dict) else None
    body = response.get("body") if response else None
    status = response.get("status_code") if response else None
    if obj.get("error"):
        err = obj["error"]
        reason = (f"{err.get('code') or 'error'}: {err.get('message')}"
                  if isinstance(err, dict) else str(err))
    elif not isinstance(status, int) or not isinstance(body, dict):
        reason = "result line without a response"
    else:
        try:
            choices, data = _interpret(Reply(status, {}, json.dumps(body).encode()), None)
        except (_Retryable, FatalAPIError) as exc:
            reason = str(exc)
        else:
            return Answer(choices, data.get("model"), data.get("system_fingerprint"),
                          data.get("usage") or {}, 0.0, 1)
    return Failure(f"batch request failed: {reason}", 1)


# --------------------------------------------------------------------------- state


@dataclass
class BatchState:
    """What a batch run has done so far (``OUT/batch/state.json``)."""

    key: str
    input_sha256: str
    requests: int
    input_file_id: str | None = None
    batch_id: str | None = None
    status: str | None = None
    joined: bool = False
    created: float = field(default_factory=time.time)

    @classmethod
    def load(cls, path: Path) -> BatchState | None:
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text("utf-8"))
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ValueError, TypeError, KeyError):
            raise DataError(f"{path}: not a batch state file; move it away to start a new "
                            "batch") from None

    def save(self, path: Path) -> None:
        write_json(path, asdict(self))


# --------------------------------------------------------------------------- the API


class BatchAPI:
    """The Batch API endpoints of one server, through the ``openai`` SDK (sync client)."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float,
                 max_retries: int) -> None:
        try:
            import openai
        except ModuleNotFoundError as exc:
            from ..errors import missing_extra

            raise missing_extra(exc.name or "openai", "judge") from None
        self._openai = openai
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key or "unused",
                                    timeout=timeout, max_retries=max_retries)

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        openai = self._openai
        try:
            return fn(*args, **kw)
        except openai.APIStatusError as exc:
            detail = exc.message
            raise FatalAPIError(f"{what}: the server refused with HTTP {exc.status_code}: "
                                f"{detail}") from None
        except openai.APIConnectionError as exc:
            raise FatalAPIError(f"{what}: cannot reach the server "
                                f"({type(exc.__cause__ or exc).__name__})") from None

    def upload(self, name: str, data: bytes) -> str:
        obj = self._call("uploading the batch file", self.client.files.create,
                         file=(name, data, "application/jsonl"), purpose="batch")
        return str(obj.id)

    def create(self, input_file_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        obj = self._call("creating the batch", self.client.batches.create,
                         input_file_id=input_file_id, endpoint=ENDPOINT,
                         completion_window=COMPLETION_WINDOW, metadata=metadata)
        return obj.model_dump()

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        return self._call(f"polling batch {batch_id}", self.client.batches.retrieve,
                          batch_id).model_dump()

    def find(self, input_file_id: str) -> dict[str, Any] | None:
        """The most recent batch made from ``input_file_id`` (first page of the list)."""
        page = self._call("listing batches", self.client.batches.list, limit=100)
        for obj in page.data:
            if obj.input_file_id == input_file_id:
                return obj.model_dump()
        return None

    def content(self, file_id: str) -> bytes:
        return self._call(f"downloading file {file_id}", self.client.files.content,
                          file_id).content

    def close(self) -> None:
        self.client.close()


def batch_errors(batch: dict[str, Any], limit: int = 3) -> str:
    """The first few of a failed batch's ``errors.data``, as one line."""
    data = ((batch.get("errors") or {}).get("data")) or []
    parts = []
    for err in data[:limit]:
        where = f"line {err['line']}: " if err.get("line") is not None else ""
        parts.append(f"{where}{err.get('code') or 'error'}: {err.get('message')}")
    if len(data) > limit:
        parts.append(f"and {len(data) - limit} more")
    return "; ".join(parts) or "no reason given"


# --------------------------------------------------------------------------- the run


@dataclass
class BatchRun:
    """Where a batch run writes and how it reports."""

    folder: Path
    api: BatchAPI
    poll_s: float
    say: Callable[[str], None]
    show_progress: bool = True
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def state_path(self) -> Path:
        return self.folder / STATE_FILE

    def _timed(self, phase: str, start: float) -> None:
        self.timings[phase] = round(self.timings.get(phase, 0.0) + time.perf_counter() - start, 4)

    def submit(self, key: str, jobs: Sequence[BatchJob], metadata: dict[str, str]) -> BatchState:
        """Resume the recorded batch of these settings, or upload and create a new one."""
        state = BatchState.load(self.state_path)
        if state is not None and state.key == key and not state.joined:
            if state.batch_id is not None:
                self.say(f"resuming batch {state.batch_id} ({state.requests} requests, "
                         f"status {state.status})")
                return state
            if state.input_file_id is not None:
                found = self.api.find(state.input_file_id)
                if found is not None:  # created, then killed before its id was saved
                    state.batch_id, state.status = found["id"], found["status"]
                    state.save(self.state_path)
                    self.say(f"resuming batch {state.batch_id} (found by its input file)")
                    return state
        elif state is not None and state.batch_id and not state.joined:
            self.say(f"note: batch {state.batch_id} was made with other settings; its "
                     "answers will not be used. Starting a new batch")
        if not jobs:
            raise UsageError("nothing to send: every request of this run is answered")
        if len(jobs) > MAX_REQUESTS:
            raise UsageError(f"{len(jobs)} requests exceed the {MAX_REQUESTS} a batch may "
                             "hold; judge fewer items or rounds per run")
        start = time.perf_counter()
        data = request_lines(key, jobs)
        sha = write_request_file(self.folder / REQUESTS_FILE, data)
        self._timed("write_s", start)
        if state is not None and state.key == key and state.input_sha256 == sha \
                and state.input_file_id is not None and not state.joined:
            file_id = state.input_file_id  # uploaded before a kill; the same bytes
        else:
            start = time.perf_counter()
            file_id = self.api.upload(REQUESTS_FILE, data)
            self._timed("upload_s", start)
        state = BatchState(key=key, input_sha256=sha, requests=len(jobs),
                           input_file_id=file_id)
        state.save(self.state_path)
        start = time.perf_counter()
        batch = self.api.create(file_id, {**metadata, "input_sha256": sha[:16]})
        self._timed("create_s", start)
        state.batch_id, state.status = batch["id"], batch["status"]
        state.save(self.state_path)
        self.say(f"created batch {state.batch_id}: {len(jobs)} requests; polling every "
                 f"{self.poll_s:g} s (a kill is safe: rerun the same command to resume)")
        return state

    def wait(self, state: BatchState) -> dict[str, Any]:
        """Poll until the batch ends; returns the final batch object."""
        from ..progress import progress_bar

        assert state.batch_id is not None
        bar = progress_bar(total=state.requests, desc="batch", unit="req") \
            if self.show_progress else None
        shown = 0
        start = time.perf_counter()
        try:
            while True:
                batch = self.api.retrieve(state.batch_id)
                if batch["status"] != state.status:
                    state.status = batch["status"]
                    state.save(self.state_path)
                counts = batch.get("request_counts") or {}
                done = int(counts.get("completed") or 0) + int(counts.get("failed") or 0)
                if bar is not None:
                    bar.update(max(0, done - shown))
                    bar.set_postfix(status=batch["status"], failed=counts.get("failed") or 0,
                                    refresh=True)
                shown = max(shown, done)
                if batch["status"] in TERMINAL:
                    return batch
                time.sleep(self.poll_s)
        finally:
            self._timed("poll_s", start)
            if bar is not None:
                bar.close()

    def download(self, batch: dict[str, Any]) -> bytes:
        """The output file and the error file of a finished batch, one after the other."""
        start = time.perf_counter()
        parts = []
        for name in ("output_file_id", "error_file_id"):
            if batch.get(name):
                data = self.api.content(batch[name])
                parts.append(data if data.endswith(b"\n") or not data else data + b"\n")
        self._timed("download_s", start)
        return b"".join(parts)

    def finish(self, state: BatchState) -> None:
        state.joined = True
        state.save(self.state_path)
