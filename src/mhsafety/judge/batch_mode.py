"""The folder runner's batch modes: pending jobs as a request file, or through a Batch API.

``--batch-file-only`` writes the pending requests to ``OUT/batch/requests.jsonl`` (for
``vllm run-batch``); ``--batch`` sends them through the server's Batch API
(:class:`~mhsafety.judge.batch.BatchRun`: upload, create, poll, download); ``--batch-results``
joins such a run's output file. Either way every result becomes a line of the run's resume
log, as if it had been answered synchronously (see :mod:`mhsafety.judge.batch`).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from . import batch as bt
from .client import Answer, RequestShape, api_key_of
from .jobs import Job, log_entry
from .log import Log, RoundLog
from .settings import JudgeSettings

OnEntry = Callable[[Job, dict[str, Any]], None]


def batch_jobs(jobs: Sequence[Job], settings: JudgeSettings) -> list[bt.BatchJob]:
    """The jobs with their exact request bodies (what the synchronous judge would send)."""
    shape = RequestShape(settings)
    return [bt.BatchJob(job.round_no, job.item_id, job.prompt_hash,
                        shape.body(json.loads(job.messages_json))) for job in jobs]


def write_batch_file(jobs: Sequence[Job], settings: JudgeSettings, key: str, out: Path) -> Path:
    """``--batch-file-only``: the pending requests as a batch input file, nothing sent."""
    if not jobs:
        raise UsageError("nothing to write: every request of this run is answered")
    path = out / "batch" / bt.REQUESTS_FILE
    bt.write_request_file(path, bt.request_lines(key, batch_jobs(jobs, settings)))
    return path


def _read_results_file(results_file: str | os.PathLike[str]) -> bytes:
    path = Path(results_file)
    if not path.is_file():
        raise UsageError(f"{path}: no such batch results file")
    return path.read_bytes()


def _through_api(jobs: Sequence[Job], settings: JudgeSettings, key: str, out: Path,
                 say: Callable[[str], None], show_progress: bool
                 ) -> tuple[bytes, bt.BatchRun, bt.BatchState, dict[str, Any]]:
    """Submit (or resume) the batch, wait for it, download its results."""
    api = bt.BatchAPI(settings.base_url, api_key_of(settings), settings.timeout,
                      settings.max_attempts - 1)
    run = bt.BatchRun(out / "batch", api, settings.batch_poll, say, show_progress)
    try:
        state = run.submit(key, batch_jobs(jobs, settings),
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
    return data, run, state, {"batch_id": state.batch_id, "status": batch["status"]}


def _expected(jobs: Sequence[Job], logs: dict[int, RoundLog]) -> dict[int, dict[str, str]]:
    """The prompt hash each (round, item) of today's settings was asked with; answered ones
    too (a result for them is ours, not stale)."""
    expected: dict[int, dict[str, str]] = {r: {} for r in logs}
    for job in jobs:
        expected[job.round_no][job.item_id] = job.prompt_hash
    for r, lg in logs.items():
        for item_id, entry in lg.answers.items():
            expected[r].setdefault(item_id, entry["prompt_hash"])
    return expected


def _join(data: bytes, source: str, jobs: Sequence[Job], logs: dict[int, RoundLog], key: str,
          via: dict[str, Any], log_dir: Path, on_entry: OnEntry
          ) -> tuple[Counter[str], bt.Joined]:
    """Append every result of ours that the log lacks; count them."""
    joined = bt.join_results(bt.result_objects(data, source), key, _expected(jobs, logs))
    added: Counter[str] = Counter()
    log = Log(log_dir)
    try:
        for round_no, item_id, digest, outcome in joined.results:
            if item_id in logs[round_no].answers:
                continue  # answered already (a results file joined twice, say)
            job = Job(round_no, item_id, b"", digest, extra=dict(via))
            entry = log_entry(job, key, outcome)
            on_entry(job, entry)
            log.append(round_no, entry)
            added["answered" if isinstance(outcome, Answer) else "failed"] += 1
    finally:
        log.close()
    return added, joined


def ask_batch(jobs: Sequence[Job], settings: JudgeSettings, key: str,
              logs: dict[int, RoundLog], out: Path, on_entry: OnEntry,
              say: Callable[[str], None], show_progress: bool,
              results_file: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The pending requests through a Batch API (or a ``--batch-results`` file) into the
    log at ``out/log``; returns this run's counts, timing and the batch's phases."""
    start = time.perf_counter()
    if not jobs and results_file is None:
        return {"requests": 0, "answered": 0, "failed": 0, "retries": 0, "wall_s": 0.0,
                "per_second": 0.0}
    run = state = None
    info: dict[str, Any] = {}
    if results_file is not None:
        data = _read_results_file(results_file)
        via: dict[str, Any] = {"via": "batch", "batch_results": Path(results_file).name}
    else:
        data, run, state, info = _through_api(jobs, settings, key, out, say, show_progress)
        via = {"via": "batch", "batch_id": state.batch_id}
    join_start = time.perf_counter()
    added, joined = _join(data, str(results_file or "batch output"), jobs, logs, key, via,
                          out / "log", on_entry)
    if run is not None and state is not None:
        run.finish(state)
        info.update(run.timings)
    info["join_s"] = round(time.perf_counter() - join_start, 4)
    if joined.stale or joined.foreign or joined.corrupt:
        say(f"note: {joined.stale} results from other settings, {joined.foreign} with ids "
            f"this judge did not write and {joined.corrupt} unreadable lines were ignored")
    wall = time.perf_counter() - start
    done = added["answered"] + added["failed"]
    return {"requests": done, "answered": added["answered"], "failed": added["failed"],
            "retries": 0, "wall_s": round(wall, 3),
            "per_second": round(done / wall, 2) if wall > 0 and done else 0.0,
            "batch": {**info, "answered": added["answered"], "failed": added["failed"],
                      "stale": joined.stale, "foreign": joined.foreign,
                      "corrupt": joined.corrupt}}
