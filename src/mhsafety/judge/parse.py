"""Turning an LLM's answer into a label id (or None when it names no category)."""

from __future__ import annotations

from ..taxonomy import LABEL_NAMES

_EXACT = {name: i for i, name in enumerate(LABEL_NAMES)}


def parse_paper(answer: str | None) -> int | None:
    """The paper's rule: the text before the first '.', matched exactly against the names."""
    if answer is None:
        return None
    head = answer.split(".", 1)[0]
    return _EXACT.get(head)
