"""The seeker rule tier: screen the seeker's turns for current suicide or self-harm risk.

The reply rules (:mod:`.rules`) read the chatbot's reply; these read the *user's* turns, so a
gateway can act before the upstream answers. The result is a risk level — ``none``, ``low``,
``high`` or ``imminent`` — with the deciding rule's id and, for every finding, the span
offsets in the turns it covers. Results never carry the text itself, so they can be logged.

Levels
    ``imminent``: a current plan, the means at hand, a time or place, a goodbye, or an act in
    progress ("我已经攒够了药，打算今晚吃掉", "I have the pills ready"). ``high``: current
    ideation or self-harm without a plan ("我真的不想活了", "I want to die"). ``low``:
    hopelessness without stated ideation ("活着没意思", "what's the point of living").

Current risk only
    A *qualifier* marks a match as not current risk: negated ("我没有想自杀", "I'm not going
    to kill myself"), past or resolved ("我以前想过自杀，现在好多了", "I used to self-harm"),
    reported about someone else ("我朋友说他想死", "my friend said she wants to die"), media or
    an explicit hypothetical ("电影里的主角想自杀"). Qualified matches are kept in
    :attr:`SeekerScreen.discounted` (rule, qualifier, spans) but add no risk. Conditional
    wording ("如果我想死怎么办", "what if I killed myself") is *not* a qualifier: seekers often
    voice real ideation that way.

The whole conversation
    Every seeker turn is screened, and as one text: the turns are joined (nothing between two
    turns when either side is a CJK character, one space otherwise), so a message split over
    several turns reads exactly as the single message would (NeMo Guardrails' issue #1413 is
    the bypass this closes). The level is the maximum over current findings in any turn; a
    later calm turn or an explicit retraction ("开玩笑的", "I'm fine now") never lowers it:
    **rules can only raise risk**. A retraction that follows a *past-form* disclosure in the
    same sentence ("想过自杀，现在好多了") is what makes that disclosure past, so writing the
    same words in two turns gives the same answer. Limits: an answer to the supporter's
    question ("你还想自杀吗？" — "想") is invisible to rules (supporter turns are not read);
    that is the model tier's job.

Rules and qualifiers are data (``guard/data/seeker_rules.json``); a team's file adds rules,
replaces rules or qualifiers of the same id, or drops the defaults, as for reply rules::

    {"replace_defaults": false,
     "rules": [{"id": "team-zh-1", "level": "high", "lang": "zh",
                "patterns": ["..."], "description": "...", "requires": null}],
     "qualifiers": [{"id": "team-neg", "kind": "negation", "lang": "zh", "scope": "before",
                     "window": 8, "patterns": ["...$"], "stops": ["[。！？]"]}]}

Rule fields: ``id``; ``level`` (low, high, imminent); ``patterns`` (Python regular
expressions, case-insensitive); ``lang`` (``zh``, ``en`` or absent for both: qualifiers of
the same language apply); ``description``; ``requires`` (a level: the rule counts only when
another current finding at that level or above exists in the conversation — for words such
as "tonight's the night" that signal risk only beside ideation).

Qualifier fields: ``id``; ``kind`` (negation, past, reported, hypothetical); ``lang``;
``scope``: ``before`` (a pattern found in the ``window`` characters before the match, with
no ``stops`` pattern between its end and the match; anchor a pattern with ``$`` to require
it right before the match, and keep what should stop it out of its filler, since stops
are looked for only after the cue), ``after`` (found in the ``window`` characters after the match,
no stop between), or ``self`` (the matched text itself matches, e.g. the experiential 过 of
"想过自杀", and no stop occurs in the match's sentence); ``when`` (optional: the qualifier
applies only when the matched text matches this pattern); ``description``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from ..data import Turn
from ..errors import DataError
from .rules import merge_rules, read_json_or_yaml

SEEKER_RULES_FORMAT = "mhsafety-seeker-rules"
DEFAULT_SEEKER_RULES_RESOURCE = "seeker_rules.json"

RiskLevel = Literal["none", "low", "high", "imminent"]
RISK_LEVELS: tuple[str, ...] = ("none", "low", "high", "imminent")
QUALIFIER_KINDS: tuple[str, ...] = ("negation", "past", "reported", "hypothetical")
SCOPES: tuple[str, ...] = ("before", "after", "self")
# The roles whose turns are the seeker's: OpenAI chat messages say "user", our data "seeker".
SEEKER_ROLES = frozenset({"user", "seeker"})

_RULE_FIELDS = {"id", "level", "patterns", "lang", "description", "requires"}
_QUALIFIER_FIELDS = {"id", "kind", "lang", "scope", "window", "patterns", "stops", "when",
                     "description"}
_FILE_FIELDS = {"format", "version", "about", "rules", "qualifiers", "replace_defaults"}
# Where a sentence ends, for the "self" scope (a recent-time cue must be in the same sentence).
_SENTENCE_END = re.compile(r"[。！？!?；;\n]|\.(?=\s|$)")
_SELF_REACH = 60


def level_rank(level: str) -> int:
    """0 for none .. 3 for imminent; a ValueError for anything else."""
    return RISK_LEVELS.index(level)


def max_level(levels: Iterable[str]) -> str:
    """The highest of ``levels`` (``none`` when empty)."""
    return max(levels, key=level_rank, default="none")


@dataclass(frozen=True)
class SeekerRule:
    """Any pattern found in the seeker's turns is a finding at ``level``."""

    id: str
    level: str
    patterns: tuple[re.Pattern[str], ...]
    lang: str | None = None
    description: str = ""
    requires: str | None = None


@dataclass(frozen=True)
class Qualifier:
    """Text around (or in) a match that makes it not current risk; see the module doc."""

    id: str
    kind: str
    scope: str
    patterns: tuple[re.Pattern[str], ...]
    stops: tuple[re.Pattern[str], ...] = ()
    window: int = 20
    when: re.Pattern[str] | None = None
    lang: str | None = None
    description: str = ""

    def applies(self, text: str, start: int, end: int) -> bool:
        """Whether this qualifier discounts the match ``text[start:end]``."""
        if self.when is not None and not self.when.search(text[start:end]):
            return False
        if self.scope == "before":
            pre = text[max(0, start - self.window):start]
            for pattern in self.patterns:
                for cue in pattern.finditer(pre):
                    if not any(stop.search(pre, cue.end()) for stop in self.stops):
                        return True
            return False
        if self.scope == "after":
            post = text[end:end + self.window]
            for pattern in self.patterns:
                cue = pattern.search(post)
                if cue and not any(stop.search(post[:cue.start()]) for stop in self.stops):
                    return True
            return False
        matched = text[start:end]
        if not any(pattern.search(matched) for pattern in self.patterns):
            return False
        sentence = _sentence_around(text, start, end)
        return not any(stop.search(sentence) for stop in self.stops)


def _sentence_around(text: str, start: int, end: int) -> str:
    lo = max(0, start - _SELF_REACH)
    ends_before = list(_SENTENCE_END.finditer(text, lo, start))
    if ends_before:
        lo = ends_before[-1].end()
    hi = min(len(text), end + _SELF_REACH)
    after = _SENTENCE_END.search(text, end, hi)
    if after:
        hi = after.start()
    return text[lo:hi]


@dataclass(frozen=True)
class Span:
    """Characters ``start:end`` of message ``turn`` (its index in the screened sequence)."""

    turn: int
    start: int
    end: int

    def to_list(self) -> list[int]:
        return [self.turn, self.start, self.end]


@dataclass(frozen=True)
class Finding:
    """One rule match: current risk when ``discounted_by`` is None."""

    rule_id: str
    level: str
    spans: tuple[Span, ...]
    discounted_by: str | None = None
    discount_kind: str | None = None

    @property
    def current(self) -> bool:
        return self.discounted_by is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule_id, "level": self.level,
                               "spans": [s.to_list() for s in self.spans]}
        if self.discounted_by is not None:
            out["qualifier"] = self.discounted_by
            out["kind"] = self.discount_kind
        return out


@dataclass(frozen=True)
class SeekerScreen:
    """The seeker rule tier's answer for one conversation (no dialogue text in it)."""

    level: str
    rule_id: str | None
    findings: tuple[Finding, ...] = ()
    discounted: tuple[Finding, ...] = ()

    @property
    def at_risk(self) -> bool:
        """High or imminent: the level that triggers the hand-over policy by default."""
        return level_rank(self.level) >= level_rank("high")

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "rule_id": self.rule_id,
                "findings": [f.to_dict() for f in self.findings],
                "discounted": [f.to_dict() for f in self.discounted]}


NO_RISK = SeekerScreen("none", None)


# ---------------------------------------------------------------------- the seeker's turns

def _content_text(content: Any) -> str:
    """An OpenAI message's content: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(part.get("text", "") for part in content
                       if isinstance(part, Mapping) and part.get("type") == "text"
                       and isinstance(part.get("text"), str))
    return ""


def seeker_turns(messages: str | Sequence[Any]) -> list[tuple[int, str]]:
    """``(index, text)`` of every seeker turn in ``messages``.

    ``messages`` is one turn's text, or a sequence of turns: plain strings (each a seeker
    turn), :class:`~mhsafety.data.Turn` objects, ``(role, text)`` pairs or OpenAI chat
    messages (``{"role": "user", "content": ...}``, content a string or a list of parts).
    Roles ``user`` and ``seeker`` are the seeker's; every other role is skipped. The index is
    the turn's position in ``messages``, so spans point at the request's own messages.
    """
    if isinstance(messages, str):
        return [(0, messages)]
    out = []
    for index, item in enumerate(messages):
        if isinstance(item, str):
            role, text = "user", item
        elif isinstance(item, Turn):
            role, text = item.role, item.text
        elif isinstance(item, Mapping):
            role = item.get("role")
            text = _content_text(item["content"]) if "content" in item else \
                _content_text(item.get("text"))
        elif isinstance(item, Sequence) and len(item) == 2:
            role, text = item[0], _content_text(item[1])
        else:
            raise DataError(f"message {index}: expected a string, a turn or a "
                            f"{{role, content}} object, got {type(item).__name__}")
        if role in SEEKER_ROLES and text:
            out.append((index, text))
    return out


def _wide(ch: str) -> bool:
    """CJK and full-width characters: scripts written without spaces between words."""
    return ord(ch) >= 0x2E80


def join_turns(turns: Sequence[tuple[int, str]]) -> tuple[str, list[tuple[int, int, int]]]:
    """The turns as one text, and ``(joined_start, turn_index, offset)`` per turn.

    Each turn is stripped; two turns are joined with nothing when either side is a wide
    (CJK) character, else with one space — so a message cut at a space or between CJK
    characters joins back to the same text.
    """
    parts: list[str] = []
    segments: list[tuple[int, int, int]] = []
    length = 0
    for index, raw in turns:
        stripped = raw.strip()
        if not stripped:
            continue
        if parts and not (_wide(parts[-1][-1]) or _wide(stripped[0])):
            parts.append(" ")
            length += 1
        segments.append((length, index, len(raw) - len(raw.lstrip())))
        parts.append(stripped)
        length += len(stripped)
    return "".join(parts), segments


def _spans(segments: list[tuple[int, int, int]], lengths: dict[int, int], start: int,
           end: int) -> tuple[Span, ...]:
    out = []
    for joined_start, index, offset in segments:
        seg_end = joined_start + lengths[index]
        lo, hi = max(start, joined_start), min(end, seg_end)
        if lo < hi:
            out.append(Span(index, offset + lo - joined_start, offset + hi - joined_start))
    return tuple(out)


# ---------------------------------------------------------------------- the rule set

def _applies_to(qualifier: Qualifier, rule: SeekerRule) -> bool:
    return qualifier.lang is None or rule.lang is None or qualifier.lang == rule.lang


@dataclass(frozen=True)
class SeekerRuleSet:
    rules: tuple[SeekerRule, ...] = field(default_factory=tuple)
    qualifiers: tuple[Qualifier, ...] = field(default_factory=tuple)
    source: str = "none"

    def __len__(self) -> int:
        return len(self.rules)

    def screen(self, messages: str | Sequence[Any]) -> SeekerScreen:
        """The current risk in the seeker's turns of ``messages`` (see :func:`seeker_turns`)."""
        turns = seeker_turns(messages)
        text, segments = join_turns(turns)
        if not text or not self.rules:
            return NO_RISK
        lengths = {index: len(raw.strip()) for index, raw in turns}
        found: list[tuple[int, Finding, str | None]] = []
        seen: set[tuple[str, int]] = set()
        for rule in self.rules:
            for pattern in rule.patterns:
                for match in pattern.finditer(text):
                    start, end = match.span()
                    if start == end or (rule.id, start) in seen:
                        continue
                    seen.add((rule.id, start))
                    qualifier = next((q for q in self.qualifiers if _applies_to(q, rule)
                                      and q.applies(text, start, end)), None)
                    finding = Finding(rule.id, rule.level,
                                      _spans(segments, lengths, start, end),
                                      qualifier.id if qualifier else None,
                                      qualifier.kind if qualifier else None)
                    found.append((start, finding, rule.requires))
        found.sort(key=lambda item: item[0])
        unconditional = max_level(f.level for _, f, needs in found if f.current and not needs)
        current, discounted = [], []
        for _, finding, needs in found:
            if not finding.current:
                discounted.append(finding)
            elif needs is None or level_rank(unconditional) >= level_rank(needs):
                current.append(finding)
        level = max_level(f.level for f in current)
        deciding = next((f.rule_id for f in current if f.level == level), None)
        return SeekerScreen(level, deciding, tuple(current), tuple(discounted))

    def describe(self) -> list[dict[str, Any]]:
        return [{"id": r.id, "level": r.level, "lang": r.lang, "requires": r.requires,
                 "description": r.description} for r in self.rules]


# ---------------------------------------------------------------------- reading rule files

def _strings(value: Any, where: str, name: str, required: bool = True) -> list[str]:
    if value is None and not required:
        return []
    if not isinstance(value, list) or not value or \
            not all(isinstance(v, str) and v for v in value):
        raise DataError(f"{where}: field '{name}' must be a non-empty list of non-empty strings")
    return value


def _compile(text: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as exc:
        raise DataError(f"{where}: pattern {text!r} is not a valid regular expression: "
                        f"{exc}") from None


def _checked_fields(obj: Any, allowed: set[str], where: str, what: str) -> str:
    if not isinstance(obj, Mapping):
        raise DataError(f"{where}: a {what} must be an object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise DataError(f"{where}: unknown field '{unknown[0]}' (expected some of "
                        f"{', '.join(sorted(allowed))})")
    item_id = obj.get("id")
    if not isinstance(item_id, str) or not item_id.strip():
        raise DataError(f"{where}: field 'id' must be a non-empty string")
    return item_id


def _optional_str(obj: Mapping[str, Any], name: str, where: str) -> str | None:
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        raise DataError(f"{where}: field '{name}' must be a string")
    return value


def seeker_rule_from_dict(obj: Any, where: str) -> SeekerRule:
    """Validate one rule object; errors name the file and the rule."""
    rule_id = _checked_fields(obj, _RULE_FIELDS, where, "rule")
    where = f"{where} (rule {rule_id!r})"
    level = obj.get("level")
    if level not in RISK_LEVELS[1:]:
        raise DataError(f"{where}: field 'level' must be one of low, high, imminent, "
                        f"got {level!r}")
    requires = obj.get("requires")
    if requires is not None and requires not in RISK_LEVELS[1:]:
        raise DataError(f"{where}: field 'requires' must be one of low, high, imminent, "
                        f"got {requires!r}")
    patterns = tuple(_compile(p, where) for p in _strings(obj.get("patterns"), where,
                                                            "patterns"))
    return SeekerRule(rule_id, level, patterns, _optional_str(obj, "lang", where),
                      _optional_str(obj, "description", where) or "", requires)


def qualifier_from_dict(obj: Any, where: str) -> Qualifier:
    """Validate one qualifier object; errors name the file and the qualifier."""
    qid = _checked_fields(obj, _QUALIFIER_FIELDS, where, "qualifier")
    where = f"{where} (qualifier {qid!r})"
    kind, scope, window = obj.get("kind"), obj.get("scope"), obj.get("window", 20)
    if kind not in QUALIFIER_KINDS:
        raise DataError(f"{where}: field 'kind' must be one of {', '.join(QUALIFIER_KINDS)}, "
                        f"got {kind!r}")
    if scope not in SCOPES:
        raise DataError(f"{where}: field 'scope' must be one of {', '.join(SCOPES)}, "
                        f"got {scope!r}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise DataError(f"{where}: field 'window' must be a positive integer, got {window!r}")
    when = _optional_str(obj, "when", where)
    return Qualifier(
        qid, kind, scope,
        tuple(_compile(p, where) for p in _strings(obj.get("patterns"), where, "patterns")),
        tuple(_compile(p, where) for p in _strings(obj.get("stops"), where, "stops",
                                                   required=False)),
        window, _compile(when, where) if when else None, _optional_str(obj, "lang", where),
        _optional_str(obj, "description", where) or "")


def _unique(items: Sequence[Any], source: str, what: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise DataError(f"{source}: duplicate {what} id {item.id!r}")
        seen.add(item.id)


def _rule_file(obj: Any, source: str) -> tuple[list[SeekerRule], list[Qualifier], bool]:
    if not isinstance(obj, Mapping) or not isinstance(obj.get("rules", []), list) or \
            not isinstance(obj.get("qualifiers", []), list) or \
            ("rules" not in obj and "qualifiers" not in obj):
        raise DataError(f"{source}: expected an object with a 'rules' list (and optionally "
                        "a 'qualifiers' list)")
    unknown = sorted(set(obj) - _FILE_FIELDS)
    if unknown:
        raise DataError(f"{source}: unknown field '{unknown[0]}' (expected rules, "
                        "qualifiers, replace_defaults, about)")
    rules = [seeker_rule_from_dict(r, f"{source} rule {i}")
             for i, r in enumerate(obj.get("rules", []))]
    qualifiers = [qualifier_from_dict(q, f"{source} qualifier {i}")
                  for i, q in enumerate(obj.get("qualifiers", []))]
    _unique(rules, source, "rule")
    _unique(qualifiers, source, "qualifier")
    replace = obj.get("replace_defaults", False)
    if not isinstance(replace, bool):
        raise DataError(f"{source}: field 'replace_defaults' must be true or false")
    return rules, qualifiers, replace


def default_seeker_rules() -> SeekerRuleSet:
    """The seeker rules shipped with the package."""
    text = resources.files(__package__).joinpath("data", DEFAULT_SEEKER_RULES_RESOURCE) \
        .read_text(encoding="utf-8")
    rules, qualifiers, _ = _rule_file(json.loads(text), DEFAULT_SEEKER_RULES_RESOURCE)
    return SeekerRuleSet(tuple(rules), tuple(qualifiers), "default")


def load_seeker_rules(path: str | os.PathLike[str] | None = None, *,
                      use_defaults: bool = True) -> SeekerRuleSet:
    """The default seeker rules, extended (or replaced) by the file at ``path``.

    Rules and qualifiers of the same id as a default replace it; new ones are added.
    ``use_defaults=False`` or ``"replace_defaults": true`` keeps only the file's.
    """
    base = default_seeker_rules() if use_defaults else SeekerRuleSet()
    if path is None:
        return base
    p = Path(path)
    rules, qualifiers, replace = _rule_file(read_json_or_yaml(p), str(p))
    if replace or not use_defaults:
        return SeekerRuleSet(tuple(rules), tuple(qualifiers), str(p))
    return SeekerRuleSet(tuple(merge_rules(base.rules, rules)),  # type: ignore[arg-type]
                         tuple(merge_rules(base.qualifiers, qualifiers)),  # type: ignore[arg-type]
                         f"default+{p}")


NO_SEEKER_RULES = SeekerRuleSet((), (), "none")
