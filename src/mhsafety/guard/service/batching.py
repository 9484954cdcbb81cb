"""Micro-batching: concurrent requests share one model call per tier.

:class:`MicroBatcher` collects jobs (lists of items) from concurrent requests and runs one
call over all of them on one long-lived worker thread. :class:`Screener` puts each batched
tier of a guard (``tier.batched``) behind its own batcher and runs the cheap ones inline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...data import Example
from ..core import Guard
from ..results import CheckResult
from ..tiers import Outcome, Pending, Tier
from .config import ServiceConfig

LOG = logging.getLogger("mhsafety.guard")


@dataclass
class _Job:
    items: list
    future: asyncio.Future


class MicroBatcher:
    """Collects concurrent requests and scores them in one call on one worker thread.

    ``score`` takes a list and returns one answer per element (a list, or anything sliceable
    in step with it). Whatever is queued when the worker is free goes into the next call (up
    to ``max_batch`` items); when the queue is empty it waits ``wait_s`` for company.
    """

    def __init__(self, score: Callable[[list], Any], max_batch: int, wait_s: float) -> None:
        self._score = score
        self._max_batch = max_batch
        self._wait_s = wait_s
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="mhsafety-guard-model")
        self.busy_since: float | None = None
        self.batches = 0

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="mhsafety-guard-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        # A hung model call must not keep the process alive at shutdown.
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def score(self, items: list, timeout: float) -> Any:
        """The answer for ``items``; raises TimeoutError or the call's exception."""
        if self._queue is None:
            raise RuntimeError("the batcher is not running")
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(list(items), future))
        return await asyncio.wait_for(future, timeout)

    async def _collect(self) -> list[_Job]:
        assert self._queue is not None
        jobs = [await self._queue.get()]
        size = len(jobs[0].items)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_s
        while size < self._max_batch:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except (asyncio.TimeoutError, TimeoutError):
                    break
            jobs.append(job)
            size += len(job.items)
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [j for j in await self._collect() if not j.future.done()]
            if not jobs:
                continue
            items = [item for job in jobs for item in job.items]
            self.busy_since = time.monotonic()
            try:
                result = await loop.run_in_executor(self._executor, self._score, items)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            finally:
                self.busy_since = None
                self.batches += 1
            start = 0
            for job in jobs:
                end = start + len(job.items)
                if not job.future.done():
                    job.future.set_result(result[start:end])
                start = end

    def stuck_for(self) -> float:
        """Seconds the current call has been running (0 when idle)."""
        since = self.busy_since
        return 0.0 if since is None else time.monotonic() - since


class Screener:
    """A guard's tiers for the service: batched tiers behind micro-batchers, the others
    inline; one deadline of ``timeout_s`` for the whole request."""

    def __init__(self, guard: Guard, cfg: ServiceConfig) -> None:
        self.guard, self.cfg = guard, cfg
        wait = cfg.batch_wait_ms / 1000.0
        self.batchers: list[MicroBatcher | None] = [
            MicroBatcher(tier.screen, cfg.max_model_batch, wait) if tier.batched else None
            for tier in guard.tiers]

    def running(self) -> list[MicroBatcher]:
        return [b for b in self.batchers if b is not None]

    async def start(self) -> None:
        for batcher in self.running():
            await batcher.start()

    async def stop(self) -> None:
        for batcher in self.running():
            await batcher.stop()

    def stuck_for(self) -> float:
        return max((b.stuck_for() for b in self.running()), default=0.0)

    async def warm_up(self, examples: Sequence[Example]) -> None:
        """One call per batched tier before the first request: lazy imports and caches
        inside a model would otherwise land on the first client."""
        items = [Pending(ex) for ex in examples]
        for batcher in self.running():
            try:
                await batcher.score(items, self.cfg.timeout_s)
            except Exception as exc:  # noqa: BLE001 - requests will fail closed on their own
                LOG.warning("warm-up call failed: %s", type(exc).__name__)

    async def _ask(self, tier: Tier, batcher: MicroBatcher, items: list[Pending],
                   deadline: float, request_id: str) -> list[Outcome]:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            if remaining <= 0:
                raise TimeoutError
            return list(await batcher.score(items, remaining))
        except (asyncio.TimeoutError, TimeoutError):
            return tier.fail(items, f"timeout: the model did not answer within "
                                    f"{self.cfg.timeout_s:g} s")
        except Exception as exc:  # noqa: BLE001 - fail closed, never "safe"
            LOG.warning("request_id=%s model error: %s", request_id, type(exc).__name__)
            return tier.fail(items, f"model error: {type(exc).__name__}")

    async def screen(self, examples: list[Example], threshold: float | None,
                     request_id: str) -> list[CheckResult]:
        """Every tier in order, as :meth:`Guard.check_examples` does, within the deadline."""
        deadline = asyncio.get_running_loop().time() + self.cfg.timeout_s
        screening = self.guard.begin(examples, threshold)
        for tier, batcher in zip(self.guard.tiers, self.batchers):
            indices, items = screening.waiting()
            if not items:
                break
            if batcher is None:
                outcomes = tier.screen(items)
            else:
                outcomes = await self._ask(tier, batcher, items, deadline, request_id)
            screening.record(indices, outcomes)
        return screening.finish(self.guard.policy)
