"""Dialogue examples: turns, role markers, validation of one item, content hashes.

Upstream format: a JSON list of ``{"context": str, "response": str, "label": int}``; the
context is a run of turns, each prefixed by ``[seeker]`` or ``[supporter]`` with no separator,
and the response starts with ``[supporter]``. Text without role markers is read leniently: a
context as one seeker turn, a response as the supporter's, and the markers are added, so an
item reads the same whichever command (or HTTP body) it arrives through.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import DataError
from ..taxonomy import NUM_LABELS

# The largest item (context + response characters) any reader accepts; a longer one is
# refused with its index rather than exhausting memory in a tokenizer or a model.
MAX_ITEM_CHARS = 100_000
MAX_ITEM_CHARS_ENV = "MHSAFETY_MAX_ITEM_CHARS"


def max_item_chars() -> int:
    """:data:`MAX_ITEM_CHARS`, or ``$MHSAFETY_MAX_ITEM_CHARS`` when set."""
    import os

    text = os.environ.get(MAX_ITEM_CHARS_ENV)
    if not text:
        return MAX_ITEM_CHARS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise DataError(f"${MAX_ITEM_CHARS_ENV} must be a positive integer, got {text!r}")
    return value

Role = Literal["seeker", "supporter"]
ROLE_MARKERS: dict[str, Role] = {"[seeker]": "seeker", "[supporter]": "supporter"}
_MARKER_RE = re.compile(r"\[(seeker|supporter)\]")

@dataclass(frozen=True)
class Turn:
    role: Role
    text: str


@dataclass(frozen=True)
class Example:
    context: str
    response: str
    label: int | None = None
    id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def turns(self) -> list[Turn]:
        return parse_turns(self.context, default_role="seeker")

    @property
    def response_text(self) -> str:
        """The response without its role marker."""
        turns = parse_turns(self.response, default_role="supporter")
        return "".join(t.text for t in turns)

    @property
    def last_seeker_turn(self) -> str:
        for turn in reversed(self.turns):
            if turn.role == "seeker":
                return turn.text
        return ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        out["context"] = self.context
        out["response"] = self.response
        if self.label is not None:
            out["label"] = self.label
        return out


def parse_turns(text: str, default_role: Role = "seeker") -> list[Turn]:
    """Split a string on the role markers into turns.

    Text without markers is read leniently as one turn of ``default_role`` (a context is the
    seeker speaking, a response the supporter). Text before the first marker is kept as a turn
    of ``default_role`` too, so nothing is dropped.
    """
    turns: list[Turn] = []
    pieces = _MARKER_RE.split(text)
    head = pieces[0]
    if head.strip():
        turns.append(Turn(default_role, head))
    for role, body in zip(pieces[1::2], pieces[2::2]):
        turns.append(Turn(role, body))  # type: ignore[arg-type]
    if not turns and text:
        turns.append(Turn(default_role, text))
    return turns


def format_turns(turns: Iterable[Turn | tuple[str, str]]) -> str:
    """Inverse of :func:`parse_turns`: turns back into the upstream marker string."""
    parts = []
    for turn in turns:
        role, text = (turn.role, turn.text) if isinstance(turn, Turn) else turn
        if role not in ("seeker", "supporter"):
            raise ValueError(f"role must be 'seeker' or 'supporter', got {role!r}")
        parts.append(f"[{role}]{text}")
    return "".join(parts)


def mark_roles(text: str, default_role: Role) -> str:
    """``text`` with every turn carrying its role marker (unmarked text: ``default_role``)."""
    return format_turns(parse_turns(text, default_role=default_role))


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def example_from_dict(obj: Any, where: str, require_label: bool = True,
                      default_id: str | None = None) -> Example:
    """Validate one raw item; ``where`` (file and item) starts every error message."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected an object with context/response/label, "
                        f"got {_type_name(obj)}")
    values = {}
    for name in ("context", "response"):
        if name not in obj:
            raise DataError(f"{where}: missing field '{name}'")
        value = obj[name]
        if not isinstance(value, str):
            raise DataError(f"{where}: field '{name}' must be a string, got {_type_name(value)}")
        if not value.strip():
            raise DataError(f"{where}: field '{name}' is empty")
        values[name] = value
    size = len(values["context"]) + len(values["response"])
    limit = max_item_chars()
    if size > limit:
        raise DataError(f"{where}: {size:,} characters of context and response, over the "
                        f"limit of {limit:,} per item (set ${MAX_ITEM_CHARS_ENV} to change it)")
    values = {"context": mark_roles(values["context"], "seeker"),
              "response": mark_roles(values["response"], "supporter")}
    label = obj.get("label")
    if "label" not in obj or label is None:
        if require_label:
            raise DataError(f"{where}: missing field 'label' (an integer 0..7)")
        label = None
    elif isinstance(label, bool) or not isinstance(label, int):
        raise DataError(
            f"{where}: field 'label' must be an integer 0..7, got {_type_name(label)} {label!r}"
        )
    elif not 0 <= label < NUM_LABELS:
        raise DataError(f"{where}: field 'label' must be in 0..7, got {label}")
    item_id = obj.get("id", default_id)
    if item_id is not None:
        if isinstance(item_id, bool) or not isinstance(item_id, (str, int)):
            raise DataError(f"{where}: field 'id' must be a string or integer, "
                            f"got {_type_name(item_id)}")
        item_id = str(item_id)
        if not item_id:
            raise DataError(f"{where}: field 'id' is empty")
    meta = {k: v for k, v in obj.items() if k not in ("context", "response", "label", "id")}
    return Example(values["context"], values["response"], label, item_id, meta)


def examples_from_items(items: Sequence[Any], source: str,
                        require_label: bool = False) -> list[Example]:
    """Validate already-parsed items (a JSON list, JSONL objects, an HTTP batch body).

    Ids are each item's ``id`` or else its 0-based index as a string; duplicate ids are an
    error (records are joined on them). ``source`` starts every error message, followed by
    ``item N``, as for files.
    """
    return _examples(((f"item {i}", obj) for i, obj in enumerate(items)), source,
                     require_label)


def _examples(located: Iterable[tuple[str, Any]], source: str,
              require_label: bool) -> list[Example]:
    examples: list[Example] = []
    seen: dict[str, str] = {}
    for index, (where, obj) in enumerate(located):
        ex = example_from_dict(obj, f"{source} {where}", require_label, default_id=str(index))
        if ex.id in seen:
            raise DataError(f"{source} {where}: duplicate id {ex.id!r} (first at {seen[ex.id]})")
        seen[ex.id] = where  # type: ignore[index]
        examples.append(ex)
    if not examples:
        raise DataError(f"{source}: no items, expected at least one")
    return examples


def examples_hash(examples: Iterable[Example]) -> str:
    """A content hash of a dataset (order-sensitive), for checkpoint manifests."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(json.dumps([ex.context, ex.response, ex.label], ensure_ascii=False)
                      .encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


