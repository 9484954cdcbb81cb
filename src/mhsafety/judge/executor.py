"""The judge's executor: send jobs through one pool of ``concurrency`` requests in flight.

:func:`execute` pulls jobs lazily (a generator is fine) as slots free up, sends each through
a :class:`~mhsafety.judge.client.ChatClient` (retries, back-off, token-field switch), and
hands every outcome, as its :func:`~mhsafety.judge.jobs.log_entry`, to ``on_entry`` the
moment it arrives. It touches no file: the folder runner's ``on_entry`` appends to the
resume log, the in-memory judge's keeps the entry.

It stops the run (raising :class:`~mhsafety.judge.client.FatalAPIError`) when the server
refuses outright, when nothing listens before the first answer, and after
``settings.stop_after_failures`` failures in a row.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from .client import UNREACHABLE, Answer, ChatClient
from .jobs import Job, log_entry

OnEntry = Callable[[Job, dict[str, Any]], None]
FollowUp = Callable[[Job, dict[str, Any]], "Job | None"]

__all__ = ["execute"]


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, **kwargs: Any) -> None: ...
    def close(self) -> None: ...


class _Tally:
    """This run's counts and the progress bar that shows them."""

    def __init__(self, total: int | None, show_progress: bool) -> None:
        from ..progress import progress_bar

        self.counts: Counter[str] = Counter()
        self.bar = progress_bar(total=total, desc="judge", unit="req") if show_progress \
            else _NoBar()
        self.last_postfix = 0.0

    def show(self, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self.last_postfix > 0.5:
            self.last_postfix = now
            self.bar.set_postfix(errors=self.counts["failed"], retries=self.counts["retries"],
                                 refresh=False)

    def on_retry(self, reason: str) -> None:
        self.counts["retries"] += 1
        self.show(force=self.counts["retries"] == 1)  # the first retry shows at once

    def fatal(self, kind: str) -> bool:
        # Until the server has answered once, nothing listening / DNS / TLS means a wrong
        # URL, not a hiccup: stop at once instead of spending every item's retry budget.
        return kind in UNREACHABLE and not self.counts["answered"]

    def outcome(self, answered: bool, reason: str, stop_after: int) -> None:
        counts = self.counts
        if answered:
            counts["answered"] += 1
            counts["streak"] = 0
            return
        counts["failed"] += 1
        counts["streak"] += 1
        self.show(force=counts["failed"] == 1)
        if 0 < stop_after <= counts["streak"]:
            from .client import FatalAPIError

            # A server that is down would otherwise cost every item its whole retry
            # budget; stop, keep what was recorded, and let a rerun resume.
            raise FatalAPIError(f"{counts['streak']} items in a row failed (last: {reason}); "
                                "the server seems down or overloaded. Rerun the same "
                                "command to resume")

    def stats(self, wall: float) -> dict[str, Any]:
        c = self.counts
        done = c["answered"] + c["failed"]
        return {"requests": done, "answered": c["answered"], "failed": c["failed"],
                "retries": c["retries"], "wall_s": round(wall, 3),
                "per_second": round(done / wall, 2) if wall > 0 and done else 0.0}


async def execute(jobs: Iterable[Job], client: ChatClient, key: str, on_entry: OnEntry,
                  total: int | None = None, show_progress: bool = False,
                  follow_up: FollowUp | None = None) -> dict[str, Any]:
    """Send ``jobs`` with ``client.settings.concurrency`` in flight; each outcome goes to
    ``on_entry(job, entry)`` as it arrives. ``total`` sizes the progress bar and the pool
    when ``jobs`` has no length. ``follow_up(job, entry)`` may name a request that depends
    on that answer (the sequential protocol's next node); the same slot sends it next, and
    the bar counts the chain as one. Returns this run's counts and timing."""
    if total is None and hasattr(jobs, "__len__"):
        total = len(jobs)  # type: ignore[arg-type]
    tally = _Tally(total, show_progress)
    work = iter(jobs)
    stop_after = client.settings.stop_after_failures

    async def worker() -> None:
        for first in work:
            job: Job | None = first
            while job is not None:
                result = await client.send(job.messages_json, tally.on_retry, tally.fatal)
                entry = log_entry(job, key, result)
                on_entry(job, entry)
                tally.outcome(isinstance(result, Answer), entry.get("error", ""), stop_after)
                job = follow_up(job, entry) if follow_up is not None else None
            tally.bar.update(1)
            tally.show()

    concurrency = client.settings.concurrency
    slots = concurrency if total is None else min(concurrency, max(1, total))
    start = time.perf_counter()
    tasks = [asyncio.create_task(worker()) for _ in range(slots)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tally.bar.close()
    out = tally.stats(time.perf_counter() - start)
    if client.shape.switched_from is not None:
        out["token_param"] = client.shape.token_field  # what auto settled on
    return out
