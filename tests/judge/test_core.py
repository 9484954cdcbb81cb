"""The judge as a function: in memory, through a transport, and no file touched."""

from __future__ import annotations

import numpy as np
import pytest

from mhsafety.data import Example
from mhsafety.errors import UsageError
from mhsafety.judge import ChatClient, chat, judge_examples
from mhsafety.judge.settings import JudgeSettings
from mhsafety.taxonomy import LABEL_NAMES
from mhsafety.testing import MockTransport, Response, chat_response
from tests.helpers.nofiles import run_auditing_files


def twenty_items() -> list[Example]:
    return [Example(f"[seeker]I feel low today, item {i}", f"reply number {i}", i % 8, f"i{i}")
            for i in range(20)]


def handler(request):
    """Item i: i % 5 == 0 gibberish (unparseable), i % 7 == 3 a server error every time,
    the rest the gold label (item 1 with reasoning kept apart)."""
    prompt = request.json()["messages"][-1]["content"]
    i = int(prompt.rsplit("reply number ", 1)[1].split()[0])
    if i % 5 == 0:
        return chat_response("gibberish")
    if i % 7 == 3:
        return Response(500, json={"error": {"message": "server trouble"}})
    return chat_response(LABEL_NAMES[i % 8], reasoning="thinking..." if i == 1 else None)


def settings(**kw) -> JudgeSettings:
    base = {"model": "mock-judge", "base_url": "http://judge.invalid/v1", "rounds": 2,
            "concurrency": 4, "max_attempts": 2, "backoff_base": 0.0}
    return JudgeSettings(**{**base, **kw})


def check_twenty(judgement) -> None:
    preds = judgement.predictions
    labels = list(preds.labels)
    for i in range(20):
        if i % 5 == 0:
            assert labels[i] == -1 and preds.reasons[i] == "unparseable answer: 'gibberish'"
        elif i % 7 == 3:
            assert labels[i] == -1
            assert preds.reasons[i].startswith("request failed: gave up after 2 attempts")
            assert "HTTP 500" in preds.reasons[i]
        else:
            assert labels[i] == i % 8 and preds.reasons[i] is None
    assert np.isnan(preds.probs[0]).all() and np.isclose(preds.probs[1].sum(), 1.0)
    assert set(judgement.records) == {"1", "2"}
    assert judgement.records["1"][0].raw == "gibberish"  # invalid, not failed
    first = judgement.outcomes[1]["i1"]
    assert first["reasoning"] == "thinking..." and first["answer"] == LABEL_NAMES[1]
    assert first["usage"]["total_tokens"] == 12 and first["latency_s"] >= 0
    assert judgement.outcomes[1]["i3"]["error"].startswith("gave up after 2 attempts")
    # Items 3 and 17 fail (10 is gibberish first): 18 answered x 2 rounds, 2 failed x 2.
    assert judgement.stats["answered"] == 36 and judgement.stats["failed"] == 4
    assert judgement.tokens["total_tokens"] == 36 * 12


def test_twenty_items_in_memory_through_the_mock_transport():
    transport = MockTransport(handler)
    judgement = judge_examples(twenty_items(), settings(), transport)
    check_twenty(judgement)
    assert len(transport.requests) == 36 + 2 * 2 * 2  # each failure tried twice
    body = transport.requests[0].json()
    assert body["model"] == "mock-judge" and body["max_tokens"] == 10


def test_the_in_memory_judge_touches_no_file(tmp_path):
    """In a child whose cwd, TMPDIR and HOME are an empty read-only folder, with every file
    system event audited: no write, no folder made, nothing read outside Python's own."""
    touched = run_auditing_files("""
        from tests.judge.test_core import check_twenty, handler, settings, twenty_items
        from mhsafety.judge import judge_examples
        from mhsafety.testing import MockTransport
        with audited():
            judgement = judge_examples(twenty_items(), settings(), MockTransport(handler))
        check_twenty(judgement)
    """, tmp_path)
    assert touched == []


def test_the_file_audit_sees_a_write(tmp_path):
    """The audit itself can fail: a file written inside the audited block is reported."""
    touched = run_auditing_files("""
        with audited():
            with open(os.path.join(os.getcwd(), "..", "x.txt"), "w"):
                pass
    """, tmp_path)
    assert touched and touched[0][0] == "open" and touched[0][1].endswith("x.txt")


def test_the_chat_call_sends_any_messages_and_switches_the_token_field():
    """The public call behind the judge: any messages, the judge's request shapes."""
    seen = []

    def reasoning_model(request):
        body = request.json()
        seen.append(sorted(k for k in body if k.startswith("max_")))
        if "max_tokens" in body:
            return Response(400, json={"error": {
                "message": "Unsupported parameter: 'max_tokens'", "param": "max_tokens"}})
        return chat_response("<think>hmm</think>Hello there", model="o3-mini")

    s = settings(model="o3-mini")
    messages = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}]
    answer = chat(messages, s, MockTransport(reasoning_model))
    assert answer.content == "<think>hmm</think>Hello there"  # parsing is the caller's
    assert seen == [["max_tokens"], ["max_completion_tokens"]]


def test_a_chat_client_reports_failures_after_its_retries():
    import asyncio

    async def go():
        transport = MockTransport(lambda request: Response(503))
        async with ChatClient(settings(max_attempts=3), transport) as client:
            return await client.send([{"role": "user", "content": "Hi"}]), transport

    failure, transport = asyncio.run(go())
    assert failure.attempts == 3 and failure.history == ["HTTP 503"] * 3
    assert len(transport.requests) == 3


def test_the_sequential_protocol_walks_in_memory():
    from mhsafety.judge import sequential as seq
    from mhsafety.taxonomy import NODES

    def annotator(request):  # no node fires until node 4, which says Safe Response
        node = seq.node_of_prompt(request.json()["messages"][-1]["content"])
        if node == 4:
            return chat_response(LABEL_NAMES[7])
        return chat_response("No" if NODES[node - 1].fires_on else "Yes")

    transport = MockTransport(annotator)
    judgement = judge_examples(twenty_items()[:3], settings(protocol="sequential", rounds=1),
                               transport)
    assert list(judgement.predictions.labels) == [7, 7, 7]
    assert len(transport.requests) == 3 * 4
    assert judgement.records["1"][0].meta["node_path"][-1]["verdict"] == LABEL_NAMES[7]


def test_batch_mode_needs_a_folder():
    with pytest.raises(UsageError, match="run_judge"):
        judge_examples(twenty_items()[:2], settings(batch=True),
                       MockTransport(lambda r: chat_response("Safe Response")))


def test_library_errors_name_parameters_not_flags():
    with pytest.raises(UsageError) as caught:
        judge_examples(twenty_items()[:2], settings(shots=8),
                       MockTransport(lambda r: chat_response("Safe Response")))
    assert "needs train" in str(caught.value) and "--" not in str(caught.value)
