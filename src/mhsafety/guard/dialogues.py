"""Dialogue audits: screen every supporter turn of whole conversations.

Each supporter turn is checked against the turns before it (its context), as the chatbot
would have been checked live. A conversation is ``{"id"?: ..., "turns": [...]}`` where
``turns`` is a list of ``{"role", "text"}`` objects or one string with ``[seeker]`` /
``[supporter]`` markers. Files are a JSON list or JSONL, as every data file.

A supporter turn with nothing before it (an opening line) has no context to be judged
against; it is reported ``unverified`` with that reason, never dropped and never passed. An
empty supporter turn is "unverified: empty reply", as everywhere (:mod:`.items`).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import Example, Turn, format_turns, parse_turns
from ..errors import DataError, UsageError
from .core import Guard
from .items import _turn
from .results import CheckResult, unverified

NO_CONTEXT = "no turns before this supporter turn to judge it against"


@dataclass(frozen=True)
class Dialogue:
    id: str
    turns: tuple[Turn, ...]


def dialogue_from_dict(obj: Any, where: str, default_id: str) -> Dialogue:
    if not isinstance(obj, Mapping):
        raise DataError(f"{where}: expected an object with 'turns', got {type(obj).__name__}")
    unknown = sorted(set(obj) - {"id", "turns"})
    if unknown:
        raise DataError(f"{where}: unknown field '{unknown[0]}' (expected id, turns)")
    if "turns" not in obj:
        raise DataError(f"{where}: missing field 'turns'")
    raw = obj["turns"]
    if isinstance(raw, str):
        turns = parse_turns(raw, default_role="seeker")
    elif isinstance(raw, list):
        try:
            turns = [Turn(*_turn(t, f"{where} turn {i}"))  # type: ignore[arg-type]
                     for i, t in enumerate(raw)]
        except UsageError as exc:  # bad input in a file is a DataError
            raise DataError(str(exc)) from None
    else:
        raise DataError(f"{where}: field 'turns' must be a list of turns or a marker string")
    if not any(t.role == "supporter" for t in turns):
        raise DataError(f"{where}: no supporter turn to screen")
    item_id = obj.get("id", default_id)
    if isinstance(item_id, bool) or not isinstance(item_id, (str, int)) or str(item_id) == "":
        raise DataError(f"{where}: field 'id' must be a non-empty string or integer")
    return Dialogue(str(item_id), tuple(turns))


def dialogues_from_items(items: Sequence[Any], source: str) -> list[Dialogue]:
    """Validated conversations; ids default to the 0-based index, duplicates are refused."""
    dialogues, seen = [], set()
    for i, obj in enumerate(items):
        dialogue = dialogue_from_dict(obj, f"{source} item {i}", str(i))
        if dialogue.id in seen:
            raise DataError(f"{source} item {i}: duplicate id {dialogue.id!r}")
        seen.add(dialogue.id)
        dialogues.append(dialogue)
    if not dialogues:
        raise DataError(f"{source}: no conversations")
    return dialogues


def read_dialogues(path: str | os.PathLike[str]) -> list[Dialogue]:
    from ..data import read_json_items

    p = Path(path)
    return dialogues_from_items([obj for _, obj in read_json_items(p)], str(p))


def turn_items(dialogue: Dialogue) -> list[tuple[int, Example | None]]:
    """(turn index, item) for each supporter turn; None where there is no context."""
    out: list[tuple[int, Example | None]] = []
    for k, turn in enumerate(dialogue.turns):
        if turn.role != "supporter":
            continue
        before = [t for t in dialogue.turns[:k] if t.text.strip()]
        if not before:
            out.append((k, None))
            continue
        # An empty supporter turn is screened like any reply: the guard's one rule for
        # empty replies answers it (unverified), as in `check` and the HTTP service.
        out.append((k, Example(format_turns(before), format_turns([turn]), None,
                               f"{dialogue.id}:{k}")))
    return out


def summarise(results: Sequence[CheckResult]) -> dict[str, Any]:
    unsafe = [r for r in results if r.decision == "unsafe"]
    return {"screened": len(results),
            "decisions": dict(Counter(r.decision for r in results)),
            "categories": dict(Counter(r.label_name for r in unsafe)),
            "actions": dict(Counter(r.action for r in results)),
            "rule_hits": dict(Counter(r.rule_id for r in results if r.rule_id)),
            "escalated": sum(r.tier == "escalation" for r in results)}


Plan = list[tuple[Dialogue, list[tuple[int, Example | None]]]]


def audit_plan(dialogues: Sequence[Dialogue]) -> tuple[Plan, list[Example]]:
    """Each conversation's supporter turns as items, and all items to screen, in order."""
    plans = [(d, turn_items(d)) for d in dialogues]
    return plans, [ex for _, items in plans for _, ex in items if ex is not None]


def audit_report(guard: Guard, plans: Plan, results: Sequence[CheckResult]) -> dict[str, Any]:
    """The audit report from the screened items: per conversation, its turn results and
    summary; then the summary over all conversations."""
    screened = iter(results)
    conversations, everything = [], []
    for dialogue, items in plans:
        turn_results = []
        for k, ex in items:
            result = next(screened) if ex is not None else unverified(
                NO_CONTEXT, guard.threshold, f"{dialogue.id}:{k}", policy=guard.policy)
            turn_results.append((k, result))
        flat = [r for _, r in turn_results]
        everything.extend(flat)
        conversations.append({
            "id": dialogue.id, "turns": len(dialogue.turns),
            "results": [{"turn": k, **r.to_dict()} for k, r in turn_results],
            "summary": {**summarise(flat),
                        "flagged_turns": [k for k, r in turn_results if not r.safe]}})
    overall = summarise(everything)
    overall["conversations"] = len(plans)
    overall["conversations_flagged"] = sum(bool(c["summary"]["flagged_turns"])
                                           for c in conversations)
    return {"conversations": conversations, "summary": overall}


def audit_dialogues(guard: Guard, data: str | os.PathLike[str] | Sequence[Dialogue]
                    ) -> dict[str, Any]:
    """Screen every supporter turn of the conversations in ``data`` (a file or Dialogues)."""
    dialogues = read_dialogues(data) if isinstance(data, (str, os.PathLike)) else list(data)
    plans, examples = audit_plan(dialogues)
    return audit_report(guard, plans, guard.check_examples(examples))
