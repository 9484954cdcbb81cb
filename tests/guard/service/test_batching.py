"""Micro-batching: concurrent requests share one model call."""

from __future__ import annotations

import asyncio

import numpy as np


def test_microbatcher_shares_model_calls():
    from mhsafety.data import Example
    from mhsafety.guard.service import MicroBatcher

    calls = []

    def score(examples):
        calls.append(len(examples))
        import time

        time.sleep(0.05)
        return np.array([[float(ex.id)] * 8 for ex in examples])

    async def run():
        batcher = MicroBatcher(score, max_batch=256, wait_s=0.001)
        await batcher.start()
        try:
            jobs = [batcher.score([Example("c", "r", None, str(i))], 10) for i in range(30)]
            return await asyncio.gather(*jobs)
        finally:
            await batcher.stop()

    results = asyncio.run(run())
    assert [float(r[0, 0]) for r in results] == list(range(30))  # each got its own row
    assert sum(calls) == 30 and len(calls) < 30


def test_a_lone_request_on_an_idle_model_does_not_wait_for_company():
    from mhsafety.guard.service import MicroBatcher

    async def run():
        # A wait far longer than the answer may take: an idle batcher must not use it.
        batcher = MicroBatcher(lambda items: list(items), max_batch=256, wait_s=30.0)
        await batcher.start()
        try:
            return await asyncio.wait_for(batcher.score(["a"], 30), 5.0)
        finally:
            await batcher.stop()

    assert asyncio.run(run()) == ["a"]


def test_fast_calls_run_on_the_event_loop_only_when_allowed():
    import threading

    from mhsafety.guard.service import MicroBatcher

    def run(inline_below_s):
        threads = []

        def score(items):
            threads.append(threading.current_thread())
            return list(items)

        async def go():
            batcher = MicroBatcher(score, max_batch=256, wait_s=0.0,
                                   inline_below_s=inline_below_s)
            await batcher.start()
            try:
                for i in range(3):
                    assert await batcher.score([i], 10) == [i]
            finally:
                await batcher.stop()
            return threading.current_thread()

        loop_thread = asyncio.run(go())
        return [t is loop_thread for t in threads]

    # The first call is timed on the worker thread; fast ones then stay on the loop.
    assert run(60.0) == [False, True, True]
    assert run(0.0) == [False, False, False]  # a model that may hang never runs inline
