"""The judge behind the classifier interface (what `benchmark --system judge:...` uses)."""

from __future__ import annotations

import numpy as np
import pytest

from mhsafety.errors import UsageError
from mhsafety.registry import create_classifier, load_classifier


def test_spec_with_url_and_predictions(server, small_examples, tmp_path):
    answers = iter(["Nonsense", "gibberish"] * 100)
    server.responder = lambda prompt, body: next(answers)
    clf = create_classifier(f"judge:fake-judge@{server.url}", seed=3, rounds=1,
                            work_dir=str(tmp_path / "w"), concurrency=1)
    assert clf.needs_training is False and clf.settings.model == "fake-judge"
    items = small_examples[:6]
    recs = clf.predict_records(items, system="judge")
    assert [r.pred for r in recs] == [0, None] * 3  # invalid answers stay invalid
    assert all(r.error == "unparseable answer: 'gibberish'" for r in recs[1::2])
    assert all(r.probs is None for r in recs[1::2])
    predictions = clf.predictions(items)  # reuses the logged answers
    assert server.requests == 6
    probs = predictions.probs
    assert np.allclose(probs[::2].sum(axis=1), 1) and probs[0, 0] == 1
    assert np.isnan(probs[1::2]).all()  # abstained, not a uniform row
    assert list(predictions.valid) == [True, False] * 3
    assert predictions.reasons[1] == "unparseable answer: 'gibberish'"
    assert predictions.reasons[0] is None

    clf.save(tmp_path / "ckpt")
    again = load_classifier(tmp_path / "ckpt")
    assert again.settings == clf.settings


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


def test_cli_and_system_spec_build_the_same_settings(tmp_path):
    """`mhsafety judge ...` and `--system judge:...` share JudgeSettings and its defaults."""
    from mhsafety.judge.settings import JudgeSettings

    clf = create_classifier("judge:gpt-4o-mini@http://127.0.0.1:9/v1")
    assert clf.settings == JudgeSettings(model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1")
    assert clf.settings.rounds == 5
    with pytest.raises(UsageError, match="judge has no setting 'roundz'"):
        create_classifier("judge:m@http://127.0.0.1:9/v1", roundz=3)
    with pytest.raises(UsageError, match="rounds"):
        create_classifier("judge:m@http://127.0.0.1:9/v1", rounds=0)
    with pytest.raises(UsageError, match="output"):
        create_classifier("judge:m@http://127.0.0.1:9/v1", output="xml")
    # --config values arrive as text or JSON; they are coerced and checked the same way.
    assert create_classifier("judge:m@http://127.0.0.1:9/v1", rounds="2").settings.rounds == 2


def test_url_without_scheme_says_so(monkeypatch):
    with pytest.raises(UsageError, match="'127.0.0.1:8000/v1' has no scheme; write "
                                         "judge:m@http://127.0.0.1:8000/v1"):
        create_classifier("judge:m@127.0.0.1:8000/v1")
    with pytest.raises(UsageError, match="has no scheme"):
        create_classifier("judge:m@localhost:11434/v1")
    # An "@" inside a model name is not a URL.
    monkeypatch.setenv("MHSAFETY_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    assert create_classifier("judge:claude-3-5-sonnet@20240620").settings.model == \
        "claude-3-5-sonnet@20240620"


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


def test_predictions_write_nothing_with_a_read_only_tmpdir(tmp_path):
    """What the guard's judge tier calls: no work folder, no temporary file, no cache."""
    from tests.helpers.nofiles import run_auditing_files

    touched = run_auditing_files("""
        from mhsafety.data import Example
        from mhsafety.registry import create_classifier
        from mhsafety.testing import FakeServer, constant
        items = [Example("[seeker]I feel low", f"reply {i}", 7, str(i)) for i in range(4)]
        with FakeServer(constant("Safe Response")) as server:
            clf = create_classifier(f"judge:fake-judge@{server.url}", rounds=2)
            with audited():
                predictions = clf.predictions(items)
            assert list(predictions.labels) == [7] * 4 and server.requests == 8
    """, tmp_path)
    assert touched == []


def test_settings_are_held_once_and_changed_by_copy(small_examples):
    from mhsafety.judge.settings import JudgeSettings
    from mhsafety.testing import MockTransport, chat_response

    clf = create_classifier("judge:m@http://127.0.0.1:9/v1", rounds=3)
    assert clf.settings is clf.settings and isinstance(clf.settings, JudgeSettings)
    changed = clf.with_settings(rounds=1, concurrency=2)
    assert (changed.settings.rounds, changed.settings.concurrency) == (1, 2)
    assert clf.settings.rounds == 3 and clf.settings.concurrency == 8  # untouched
    with pytest.raises(UsageError, match="rounds"):
        clf.with_settings(rounds=0)
    with pytest.raises(UsageError, match="roundz"):
        clf.with_settings(roundz=2)
    changed.transport = MockTransport(lambda request: chat_response("Nonsense"))
    assert list(changed.predict(small_examples[:2])) == [0, 0]
