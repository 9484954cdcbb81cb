"""The judge behind the classifier interface (what `benchmark --system judge:...` uses)."""

from __future__ import annotations

import numpy as np
import pytest

from mhsafety.errors import UsageError
from mhsafety.registry import create_classifier, load_classifier


def test_spec_with_url_and_predictions(server, small_examples, tmp_path):
    answers = iter(["Nonsense", "gibberish"] * 100)
    server.responder = lambda prompt, body: next(answers)
    clf = create_classifier(f"judge:fake-judge@{server.url}", seed=3,
                            work_dir=str(tmp_path / "w"), concurrency=1)
    assert clf.needs_training is False and clf.config["model"] == "fake-judge"
    items = small_examples[:6]
    recs = clf.predict_records(items, system="judge")
    assert [r.pred for r in recs] == [0, None] * 3  # invalid answers stay invalid
    assert all(r.error for r in recs[1::2])
    probs = clf.predict_proba(items)  # reuses the logged answers
    assert server.requests == 6
    assert np.allclose(probs.sum(axis=1), 1) and probs[0, 0] == 1 and probs[1, 0] == 0.125

    clf.save(tmp_path / "ckpt")
    again = load_classifier(tmp_path / "ckpt")
    assert again.config == clf.config


def test_few_shot_judge_draws_from_fit_data(server, small_examples, tmp_path, monkeypatch):
    monkeypatch.setenv("MHSAFETY_JUDGE_BASE_URL", server.url)
    clf = create_classifier("judge:fake-judge", seed=1, shots=8, rounds=3,
                            work_dir=str(tmp_path / "w"))
    assert clf.needs_training is True
    with pytest.raises(UsageError, match="fit"):
        clf.predict(small_examples[:2])
    clf.fit(small_examples)
    assert list(clf.predict(small_examples[:3])) == [7, 7, 7]
    assert server.requests == 9


def test_judge_without_url_is_a_usage_error(monkeypatch):
    monkeypatch.delenv("MHSAFETY_JUDGE_BASE_URL", raising=False)
    with pytest.raises(UsageError, match="base URL"):
        create_classifier("judge:gpt-4o-mini")


def test_runs_inside_a_running_event_loop(server, small_examples, tmp_path):
    """Notebooks already run an event loop; run_judge must still work there."""
    import asyncio

    from mhsafety.judge.runner import run_judge

    from .conftest import settings

    async def notebook_cell():
        return run_judge(small_examples[:3], tmp_path, settings(server), show_progress=False)

    result = asyncio.run(notebook_cell())
    assert result.summary["answered"] == 3
