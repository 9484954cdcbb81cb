"""Fixtures of the judge tests: a real OpenAI-compatible server on 127.0.0.1, port 0."""

from __future__ import annotations

import pytest

from mhsafety.testing.fakeserver import FakeServer


@pytest.fixture
def server():
    srv = FakeServer(latency=0.0, hang_s=3.0).start()
    yield srv
    srv.stop()


@pytest.fixture
def small_examples(test_examples):
    """40 items covering every label, so few-shot draws and votes have something to do."""
    by_label: dict[int, list] = {}
    for ex in test_examples:
        by_label.setdefault(ex.label, []).append(ex)
    picked = [ex for lab in sorted(by_label) for ex in by_label[lab][:5]]
    return picked[:40]


def settings(server, **kw):
    from mhsafety.judge.runner import JudgeSettings

    base = {"model": "fake-judge", "base_url": server.url if server else "", "rounds": 1,
            "concurrency": 8,
            "timeout": 1.0, "max_attempts": 4, "backoff_base": 0.01}
    base.update(kw)
    return JudgeSettings(**base)
