"""``run_judge``: the in-memory judge made resumable in a folder, round after round.

A layer on top of :mod:`mhsafety.judge.core`, in three parts:

- job source: the round logs read back from ``OUT/log`` (:func:`~mhsafety.judge.log.read_round_log`)
  tell :func:`~mhsafety.judge.core.pending_jobs` what is answered already; a logged answer
  counts only for the same settings and prompt;
- executor: :func:`~mhsafety.judge.core.send_pending` with an ``on_entry`` that also appends
  each outcome to the round's log (one ``write`` per line, fsync every half second), under
  an exclusive lock on the folder; or the batch modes (:mod:`mhsafety.judge.batch_mode`);
- writer: records, manifest and summary (:mod:`mhsafety.judge.writer`,
  :mod:`mhsafety.judge.summary`).

Layout of the output folder::

    manifest.json            what was run (model asked and answered, URL, sampling, prompt
                             template hash, few-shot ids per round, seed, version)
    log/round-<r>.jsonl      one line per answered (or finally failed) request, appended
                             and flushed as it happens: the resume log (see ``log.py``)
    preds/round-<r>.preds.jsonl   prediction records of round r (the project's format)
    preds/vote.preds.jsonl   majority vote over the rounds (with ``vote=True``)
    summary.json             counts, token usage, cost estimate, timing
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import Example
from ..records import PredictionRecord
from ..settings import SettingsError
from .batch_mode import ask_batch, write_batch_file
from .client import ChatClient, FatalAPIError, api_key_of, refusal_message, run_sync
from .core import Pending, RunPlan, check_settings, collector, pending_jobs, plan_run, send_pending
from .jobs import Job, now
from .log import Log, RoundLog, exclusive, read_round_log
from .parse import vote
from .prompts import PromptTemplate
from .results import Verdicts, all_records, usage_counts
from .settings import JudgeSettings
from .summary import Reuse, format_batch_file, format_summary, run_summary
from .writer import (
    finish_manifest,
    start_manifest,
    write_manifest,
    write_predictions,
    write_summary,
)

__all__ = ["JudgeResult", "JudgeSettings", "format_batch_file", "format_summary", "run_judge",
           "vote"]

SYNC_EVERY_S = 0.5  # the log's fsync cadence: a crash loses at most this much of the log


@dataclass
class JudgeResult:
    out_dir: Path
    summary: dict[str, Any]
    manifest: dict[str, Any]
    prediction_files: list[Path]
    records: dict[str, list[PredictionRecord]]


def _check_modes(settings: JudgeSettings, batch_file_only: bool,
                 batch_results: str | os.PathLike[str] | None) -> None:
    if batch_file_only and batch_results is not None:
        raise SettingsError("{batch_file_only} writes the request file and {batch_results} "
                            "joins its answers: use one, then the other", "batch_file_only",
                            "batch_results")
    if settings.protocol == "sequential" and (batch_file_only or batch_results is not None):
        raise SettingsError("batch request files hold flat requests; {protocol} sequential "
                            "asks each node after the previous answer", "protocol")


def run_judge(examples: Sequence[Example], out_dir: str | os.PathLike[str],
              settings: JudgeSettings, *, train: Sequence[Example] | None = None,
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
    check_settings(settings, template)
    _check_modes(settings, batch_file_only, batch_results)
    out = Path(out_dir)
    with exclusive(out):
        plan = plan_run(examples, settings, train, template, data_source=data_source,
                        train_source=train_source, allow_overlap=allow_overlap)
        run = FolderRun(out, plan, on_message or (lambda msg: None), show_progress)
        run.start(list(train) if train is not None else None, data_source, train_source)
        if batch_file_only:
            return run.write_batch_file()
        if settings.batch or batch_results is not None:
            return run.ask_batch(batch_results)
        return run.ask()


class FolderRun:
    """One run in its folder, under the lock: the round logs read back, then the requests
    still to send, then what is written."""

    def __init__(self, out: Path, plan: RunPlan, say: Callable[[str], None],
                 show_progress: bool) -> None:
        self.out, self.plan, self.say, self.show_progress = out, plan, say, show_progress
        self.log_dir = out / "log"
        self.logs: dict[int, RoundLog] = {
            r: read_round_log(self.log_dir / f"round-{r}.jsonl", plan.key)
            for r in range(1, plan.settings.rounds + 1)}
        self.verdicts: Verdicts = {}
        self.manifest: dict[str, Any] = {}

    @property
    def requests(self) -> int:
        """Items times rounds: every answer the finished run holds."""
        return self.plan.settings.rounds * len(self.plan.examples)

    def start(self, train: list[Example] | None, data_source: str | None,
              train_source: str | None) -> None:
        settings = self.plan.settings
        if settings.vote and settings.rounds < 2:
            self.say("note: a vote needs at least 2 rounds; no vote is written")
        if api_key_of(settings) is None:
            self.say(f"note: ${settings.api_key_env} is not set; sending requests without "
                     "an API key")
        self.manifest = start_manifest(self.plan, train, data_source, train_source, now())
        write_manifest(self.out, self.manifest)

    def _say_resuming(self, to_go: int) -> None:
        if self.requests - to_go:
            self.say(f"resuming: {self.requests - to_go} answers already in {self.log_dir}, "
                     f"{to_go} to go")

    def _say_stale(self) -> int:
        stale = sum(lg.stale for lg in self.logs.values())
        if stale:
            self.say(f"note: {stale} logged answers from other settings (model, URL, prompt "
                     "or sampling) are ignored; they stay in the log")
        return stale

    # ------------------------------------------------------------------ synchronous

    def ask(self) -> JudgeResult:
        """Send what the logs lack, logging each outcome as it arrives, then write."""
        pending = pending_jobs(self.plan, self.logs)
        self._say_resuming(pending.total)
        stats = run_sync(self._send_logged(pending))
        stale = self._say_stale()
        asked = pending.total if self.plan.sequential else stats["requests"]
        return self.finish(stats, Reuse(self.requests - asked, stale, self._torn()))

    async def _send_logged(self, pending: Pending) -> dict[str, Any]:
        log = Log(self.log_dir)
        keep = collector(self.logs, self.plan, self.verdicts)

        def on_entry(job: Job, entry: dict[str, Any]) -> None:
            keep(job, entry)
            log.append(job.round_no, entry)

        client = ChatClient(self.plan.settings)
        syncer = asyncio.create_task(_sync_every(log, SYNC_EVERY_S))
        try:
            return await send_pending(pending, client, self.plan.key, on_entry,
                                      self.show_progress)
        except FatalAPIError as exc:
            raise FatalAPIError(f"{refusal_message(exc, self.plan.settings, client.api_key)}"
                                f"; answers received so far are kept in {self.log_dir}"
                                ) from None
        finally:
            syncer.cancel()
            await asyncio.gather(syncer, return_exceptions=True)
            log.close()
            await client.aclose()

    # ------------------------------------------------------------------ batch

    def _listed(self) -> list[Job]:
        """Every pending flat request, listed up front (a batch needs them all)."""
        jobs = list(pending_jobs(self.plan, self.logs).jobs)
        self._say_resuming(len(jobs))
        return jobs

    def write_batch_file(self) -> JudgeResult:
        jobs = self._listed()
        self._say_stale()
        path = write_batch_file(jobs, self.plan.settings, self.plan.key, self.out)
        settings = self.plan.settings
        summary = {"system": settings.name, "items": len(self.plan.examples),
                   "rounds": settings.rounds, "resumed": self.requests - len(jobs),
                   "batch_requests_file": str(path), "batch_requests": len(jobs)}
        return JudgeResult(self.out, summary, self.manifest, [], {})

    def ask_batch(self, results_file: str | os.PathLike[str] | None) -> JudgeResult:
        jobs = self._listed()
        stale = self._say_stale()
        keep = collector(self.logs, self.plan, self.verdicts)
        stats = ask_batch(jobs, self.plan.settings, self.plan.key, self.logs, self.out, keep,
                          self.say, self.show_progress, results_file)
        return self.finish(stats, Reuse(self.requests - len(jobs), stale, self._torn()))

    # ------------------------------------------------------------------ writer

    def _torn(self) -> int:
        return sum(1 for lg in self.logs.values() if lg.torn)

    def finish(self, stats: dict[str, Any], reuse: Reuse) -> JudgeResult:
        """Records, manifest and summary from the logs' view of these settings (answers
        of earlier runs included)."""
        plan = self.plan
        judged = all_records(self.logs, plan.examples, plan.ids, plan.settings, plan.notes,
                             self.verdicts)
        usage = usage_counts(self.logs)
        files = write_predictions(self.out, judged.records)
        write_manifest(self.out, finish_manifest(self.manifest, plan, usage, stats, now()))
        summary = run_summary(plan.settings, len(plan.examples), judged, usage, stats, reuse)
        write_summary(self.out, summary)
        return JudgeResult(self.out, summary, self.manifest, files, judged.records)


async def _sync_every(log: Log, seconds: float) -> None:
    """fsync the log's written lines every ``seconds`` off the event loop's thread."""
    while True:
        await asyncio.sleep(seconds)
        if log.dirty:
            await asyncio.to_thread(log.sync, log.take_dirty())
