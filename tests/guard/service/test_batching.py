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
