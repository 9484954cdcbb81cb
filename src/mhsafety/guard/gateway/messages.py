"""The request's chat messages as the guard reads them: the conversation as turns, the
reply's text, the conversation id a hand-over names (never any text)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from ...data import Example
from ...errors import UsageError
from ..items import make_example
from ..seeker_rules import _content_text

# OpenAI roles -> the dataset's: the seeker talks to the supporter (the chatbot).
ROLES = {"user": "seeker", "assistant": "supporter"}
_PROCESS_KEY = secrets.token_bytes(32)


class BadRequest(UsageError):
    """A chat request the gateway cannot read; ``param`` names the field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def check_body(body: Any) -> list[dict[str, Any]]:
    """The request's ``messages``, checked enough to screen them (the upstream checks the
    rest); a :class:`BadRequest` naming the field otherwise."""
    if not isinstance(body, Mapping):
        raise BadRequest("the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list of messages", "messages")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise BadRequest(f"messages[{i}] must be an object with a 'role'", f"messages[{i}]")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise BadRequest(f"messages[{i}].content must be a string or a list of parts",
                             f"messages[{i}].content")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise BadRequest("'stream' must be true or false", "stream")
    return messages


def turns_of(messages: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The user and assistant turns with text, as (seeker|supporter, text); system, tool
    and developer messages are instructions, not the conversation."""
    out = []
    for message in messages:
        role = ROLES.get(message.get("role"))  # type: ignore[arg-type]
        text = _content_text(message.get("content"))
        if role and text.strip():
            out.append((role, text))
    return out


def reply_example(messages: Sequence[Mapping[str, Any]], reply: str) -> Example:
    """The (conversation, reply) item the guard's tiers screen; a UsageError for a reply
    with nothing in it (the caller answers "unverified")."""
    turns = turns_of(messages) or [("seeker", "(no user turn)")]
    return make_example(turns, reply, where="gateway")


def reply_text(completion: Mapping[str, Any]) -> str | None:
    """The first choice's message content of a chat completion, or None."""
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        return None
    message = choices[0].get("message")
    if not isinstance(message, Mapping):
        return None
    content = message.get("content")
    return content if isinstance(content, str) else None


def conversation_id(body: Mapping[str, Any], header: str | None,
                    key: bytes | None = None) -> str:
    """The conversation's id for a hand-over: the request header, else
    ``metadata.conversation_id``, else a keyed hash of the first user turn (stable over a
    conversation's requests, not reversible without the key; the key is the webhook secret,
    else one drawn per process)."""
    for value in (header, (body.get("metadata") or {}).get("conversation_id")
                  if isinstance(body.get("metadata"), Mapping) else None):
        if isinstance(value, str) and 0 < len(value) <= 200 and value.isprintable():
            return value
    first = next((_content_text(m.get("content")) for m in body.get("messages", [])
                  if isinstance(m, Mapping) and m.get("role") == "user"), "")
    digest = hmac.new(key or _PROCESS_KEY, first.encode(), hashlib.sha256).hexdigest()
    return f"h-{digest[:24]}"
