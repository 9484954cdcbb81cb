"""The request's messages as the guard reads them, and conversation ids."""

from __future__ import annotations

import pytest

from mhsafety.errors import UsageError
from mhsafety.guard.gateway.messages import (
    BadRequest,
    check_body,
    conversation_id,
    reply_example,
    reply_text,
    turns_of,
)

MESSAGES = [{"role": "system", "content": "You are kind."},
            {"role": "user", "content": "我睡不着"},
            {"role": "assistant", "content": "能说说吗？"},
            {"role": "user", "content": [{"type": "text", "text": "压力"},
                                         {"type": "image_url", "image_url": {"url": "x"}},
                                         {"type": "text", "text": "很大"}]}]


def test_turns_skip_instructions_and_read_content_parts():
    assert turns_of(MESSAGES) == [("seeker", "我睡不着"), ("supporter", "能说说吗？"),
                                  ("seeker", "压力很大")]
    example = reply_example(MESSAGES, "我在听")
    assert example.context == "[seeker]我睡不着[supporter]能说说吗？[seeker]压力很大"
    assert example.response_text == "我在听"


def test_only_a_system_message_still_screens():
    assert reply_example([{"role": "system", "content": "x"}], "hello").response_text == "hello"


def test_empty_reply_is_refused_for_the_caller_to_fail_closed():
    with pytest.raises(UsageError):
        reply_example(MESSAGES, "   ")


def test_reply_text():
    assert reply_text({"choices": [{"message": {"content": "hi"}}]}) == "hi"
    assert reply_text({"choices": []}) is None
    assert reply_text({"choices": [{"message": {"content": None, "tool_calls": []}}]}) is None


def test_conversation_id_header_then_metadata_then_keyed_hash():
    body = {"messages": MESSAGES, "metadata": {"conversation_id": "meta-1"}}
    assert conversation_id(body, "hdr-1") == "hdr-1"
    assert conversation_id(body, None) == "meta-1"
    bare = {"messages": MESSAGES}
    hashed = conversation_id(bare, None, b"k1")
    assert hashed.startswith("h-") and "睡" not in hashed
    later = {"messages": [*MESSAGES, {"role": "user", "content": "还有"}]}
    assert conversation_id(later, None, b"k1") == hashed  # stable over the conversation
    assert conversation_id(bare, None, b"k2") != hashed
    assert conversation_id(bare, "bad\nid", b"k1") == hashed


@pytest.mark.parametrize("body", [[], {"messages": "hi"}, {"messages": [{"role": 1}]}])
def test_check_body_refuses(body):
    with pytest.raises(BadRequest):
        check_body(body)
