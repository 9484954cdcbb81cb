"""OpenAI chat streaming on the wire: decoding upstream events, building client chunks."""

from __future__ import annotations

import asyncio
import json

import pytest

from mhsafety.guard.sse import (
    SSE_DONE,
    SSEDecoder,
    StreamFormatError,
    chunk_error,
    chunk_finish_reason,
    chunk_role,
    chunk_text,
    encode_event,
    is_usage_chunk,
    iter_chunks,
    make_chunk,
)

BASE = {"id": "chatcmpl-1", "model": "m", "created": 1700000000}


def upstream_stream(pieces: list[str], usage: bool = True) -> bytes:
    """What an OpenAI-compatible server sends for ``pieces`` (role first, finish last)."""
    chunks = [make_chunk(**BASE, role="assistant", content="")]
    chunks += [make_chunk(**BASE, content=p) for p in pieces[:-1]]
    chunks.append(make_chunk(**BASE, content=pieces[-1], finish_reason="stop"))
    if usage:
        chunks.append(make_chunk(**BASE, with_choice=False, usage={
            "prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}))
    return b"".join(encode_event(c) for c in chunks) + SSE_DONE


async def _collect(byte_chunks):
    async def source():
        for b in byte_chunks:
            yield b
    return [c async for c in iter_chunks(source())]


def collect(byte_chunks):
    return asyncio.run(_collect(byte_chunks))


@pytest.mark.parametrize("cut", [1, 3, 7, 64, 10_000])
def test_chunks_survive_any_cut_between_reads(cut):
    raw = upstream_stream(["你好，", "我在", "这里。"])
    chunks = collect([raw[i:i + cut] for i in range(0, len(raw), cut)])
    assert [chunk_role(c) for c in chunks][:1] == ["assistant"]
    assert "".join(chunk_text(c) for c in chunks) == "你好，我在这里。"
    assert [chunk_finish_reason(c) for c in chunks] == [None, None, None, "stop", None]
    assert [is_usage_chunk(c) for c in chunks] == [False, False, False, False, True]


def test_done_ends_the_stream_and_comments_crlf_and_multiline_data_are_read():
    raw = (b": keep-alive\r\n\r\n"
           b"data: {\"choices\": [{\"index\": 0,\r\ndata: \"delta\": {\"content\": \"a\"}}]}\r\n\r\n"
           b"event: ping\ndata: {\"choices\": []}\n\n"
           b"data: [DONE]\n\n"
           b"data: {\"never\": \"read\"}\n\n")
    chunks = collect([raw])
    assert [chunk_text(c) for c in chunks] == ["a", ""]


def test_an_unterminated_last_event_is_still_read():
    decoder = SSEDecoder()
    assert decoder.feed("data: {\"a\": 1}") == []
    assert [e.data for e in decoder.close()] == ['{"a": 1}']


def test_a_usage_chunk_with_null_or_missing_choices():
    assert is_usage_chunk({"usage": {"total_tokens": 3}, "choices": None})
    assert is_usage_chunk({"usage": {"total_tokens": 3}})
    assert not is_usage_chunk({"usage": None, "choices": [{"index": 0, "delta": {}}]})
    assert chunk_text({"usage": {"total_tokens": 3}, "choices": None}) == ""


def test_an_error_mid_stream_is_yielded_and_bad_data_is_one_sentence():
    chunks = collect([b'data: {"error": {"message": "overloaded", "code": 503}}\n\n'])
    assert chunk_error(chunks[0]) == {"message": "overloaded", "code": 503}
    with pytest.raises(StreamFormatError, match="not JSON"):
        collect([b"data: you are a worthless person\n\n"])
    with pytest.raises(StreamFormatError, match="not a JSON object"):
        collect([b"data: [1, 2]\n\n"])
    with pytest.raises(StreamFormatError, match="not UTF-8"):
        collect([b"data: \xff\xfe\n\n"])


def test_built_chunks_are_what_the_openai_sdk_reads():
    from openai.types.chat import ChatCompletionChunk

    mhsafety = {"decision": "unsafe", "category": "Toxic Language", "action": "block"}
    final = make_chunk(**BASE, finish_reason="stop", mhsafety=mhsafety)
    parsed = ChatCompletionChunk.model_validate(final)
    assert parsed.object == "chat.completion.chunk"
    assert parsed.choices[0].finish_reason == "stop" and parsed.choices[0].delta.content is None
    assert parsed.mhsafety == mhsafety  # kept as an extra field
    first = ChatCompletionChunk.model_validate(make_chunk(**BASE, role="assistant", content=""))
    assert first.choices[0].delta.role == "assistant"
    usage = ChatCompletionChunk.model_validate(make_chunk(**BASE, with_choice=False, usage={
        "prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}))
    assert usage.choices == [] and usage.usage.total_tokens == 3


def test_encode_event_is_one_data_line_and_a_blank_line():
    raw = encode_event(make_chunk(**BASE, content="第一行\n第二行"))
    assert raw.endswith(b"\n\n") and raw.count(b"\n") == 2
    assert json.loads(raw[len(b"data: "):])["choices"][0]["delta"]["content"] == "第一行\n第二行"
    assert encode_event("[DONE]") == SSE_DONE
