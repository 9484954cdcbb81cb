"""The fake streaming upstream, read by the official openai client."""

from __future__ import annotations

import openai
import pytest

from mhsafety.testing import FakeUpstream, UpstreamFault
from mhsafety.testing.upstream import echo


def test_plain_streamed_and_models():
    with FakeUpstream("你好呀，我在听。", piece_chars=2) as up:
        client = openai.OpenAI(base_url=up.url, api_key="x", max_retries=0)
        messages = [{"role": "user", "content": "hi"}]
        plain = client.chat.completions.create(model="m", messages=messages)
        assert plain.choices[0].message.content == "你好呀，我在听。"
        chunks = list(client.chat.completions.create(
            model="m", messages=messages, stream=True, stream_options={"include_usage": True}))
        pieces = [c.choices[0].delta.content for c in chunks if c.choices]
        assert "".join(p or "" for p in pieces) == "你好呀，我在听。"
        assert pieces[1] == "你好" and chunks[-1].usage is not None
        assert [m.id for m in client.models.list().data] == ["fake-chat"]
        assert len(up.requests) == 2 and up.requests[1]["stream"] is True


def test_faults_keys_and_echo():
    with FakeUpstream(lambda m, b: UpstreamFault(503, "busy")) as up:
        client = openai.OpenAI(base_url=up.url, api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "a"}])
    with FakeUpstream(echo, api_key="k") as up:
        wrong = openai.OpenAI(base_url=up.url, api_key="x", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        right = openai.OpenAI(base_url=up.url, api_key="k", max_retries=0)
        reply = right.chat.completions.create(model="m",
                                              messages=[{"role": "user", "content": "回声"}])
        assert reply.choices[0].message.content == "回声"


def test_port_zero_picks_a_free_port():
    with FakeUpstream() as a, FakeUpstream() as b:
        assert a.port != b.port and a.port > 0
