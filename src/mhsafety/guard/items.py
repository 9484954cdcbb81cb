"""What the guard screens: items read through the data module's one reader, and the one rule
for a reply with nothing in it.

A reply with no letter, digit or CJK character once control and format characters
(Unicode categories Cc, Cf) and role markers are set aside ("\\u0000", "\\x01", "...") is
never screened as "safe": :func:`empty_reply` says so and the guard answers "unverified"
with :data:`EMPTY_REPLY`, in ``check``, the HTTP service and dialogue audits alike. A reply
that is empty or whitespace-only is malformed input the reader refuses (``check`` exits 2,
the service answers 422), as for every data file.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..data import Example, Turn, format_turns, parse_turns
from ..errors import DataError, UsageError

TurnLike = Turn | tuple[str, str] | Mapping[str, str]
ContextLike = str | Sequence[TurnLike]
ItemLike = Example | Mapping[str, Any] | tuple[ContextLike, str]

EMPTY_REPLY = "empty reply: no letters, digits or CJK characters"


def has_content(text: str) -> bool:
    """Whether ``text`` holds a letter or a digit of any script (CJK ideographs are letters,
    category Lo); control and format characters never count."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


def empty_reply(response: str) -> bool:
    """Whether a reply (role markers allowed) has nothing a reader could judge."""
    return not any(has_content(turn.text) for turn in parse_turns(response, "supporter"))


def _turn(value: Any, where: str) -> tuple[str, str]:
    if isinstance(value, Turn):
        return value.role, value.text
    if isinstance(value, Mapping):
        role, text = value.get("role"), value.get("text")
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        role, text = value
    else:
        raise UsageError(f"{where}: a turn must be a {{'role', 'text'}} object or a "
                         f"(role, text) pair, got {type(value).__name__}")
    if role not in ("seeker", "supporter"):
        raise UsageError(f"{where}: a turn's role must be 'seeker' or 'supporter', got {role!r}")
    if not isinstance(text, str):
        raise UsageError(f"{where}: a turn's text must be a string, got {type(text).__name__}")
    return role, text


def context_text(context: Any, where: str = "context") -> Any:
    """A context given as a list of turns, as the upstream marker string; anything else
    unchanged (the data module's reader validates it)."""
    if isinstance(context, (str, bytes, bytearray)) or not isinstance(context, Sequence):
        return context
    return format_turns([_turn(t, f"{where} turn {i}") for i, t in enumerate(context)])


def item_dict(item: Any, where: str) -> Any:
    """One item (Example, mapping or (context, response) pair) as the reader's raw object."""
    if isinstance(item, Example):
        obj: dict[str, Any] = {"context": item.context, "response": item.response}
        if item.id is not None:
            obj["id"] = item.id
        return obj
    if isinstance(item, Mapping):
        obj = {k: v for k, v in item.items() if not (k == "id" and v is None)}
        if "context" in obj:
            obj["context"] = context_text(obj["context"], f"{where}: context")
        return obj
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return {"context": context_text(item[0], f"{where}: context"), "response": item[1]}
    raise UsageError(f"{where}: expected an Example, a mapping with context/response or a "
                     f"(context, response) pair, got {type(item).__name__}")


def examples_of(items: Iterable[Any], source: str = "input") -> list[Example]:
    """Validated examples through the data module's one reader (ids, leniency, messages)."""
    from ..data import examples_from_items

    raw = [item_dict(item, f"{source} item {i}") for i, item in enumerate(items)]
    try:
        return examples_from_items(raw, source, require_label=False)
    except DataError as exc:
        raise UsageError(str(exc)) from None


def make_example(context: ContextLike, response: str, id: str | None = None,
                 where: str = "input") -> Example:
    obj: dict[str, Any] = {"context": context, "response": response}
    if id is not None:
        obj["id"] = id
    return examples_of([obj], where)[0]
