"""The rule tier: explicit unsafe replies caught before any model runs.

A rule ties regular expressions or keyword lists to one category of the taxonomy. Rules match
the reply only (the context is the seeker's and may quote anything), and they can only make a
reply less safe: a rule that fires decides an unsafe label; a rule that does not fire says
nothing and the models decide.

When several rules fire, the one whose category comes first in the sequential framework wins
(node 2 before node 4, as annotators walk the nodes); within a node, the earlier rule in the
set. The default set ships as package data (``guard/data/default_rules.json``); a team adds
rules, replaces rules of the same id, or drops the defaults from a JSON or YAML file::

    {"replace_defaults": false,
     "rules": [{"id": "team-zh-1", "category": "Toxic Language",
                "patterns": ["..."], "keywords": ["..."], "description": "..."}]}
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..data import Example
from ..errors import DataError
from ..taxonomy import SAFE_LABEL, category

RULES_FORMAT = "mhsafety-guard-rules"
DEFAULT_RULES_RESOURCE = "default_rules.json"
_RULE_FIELDS = {"id", "category", "patterns", "keywords", "description", "lang"}


@dataclass(frozen=True)
class Rule:
    """One rule: any pattern or keyword found in the reply makes it ``label``."""

    id: str
    label: int
    patterns: tuple[re.Pattern[str], ...] = ()
    keywords: tuple[str, ...] = ()
    description: str = ""
    lang: str | None = None

    def find(self, text: str) -> str | None:
        """The matched span (for the result's explanation), or None."""
        for pattern in self.patterns:
            match = pattern.search(text)
            if match:
                return match.group(0)
        folded = text.casefold()
        for keyword in self.keywords:
            if keyword.casefold() in folded:
                return keyword
        return None


@dataclass(frozen=True)
class RuleHit:
    rule: Rule
    matched: str

    @property
    def label(self) -> int:
        return self.rule.label


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    source: str = "none"

    def __len__(self) -> int:
        return len(self.rules)

    def match(self, response_text: str) -> RuleHit | None:
        """The deciding hit for one reply's text (without role markers), or None."""
        best: tuple[int, int, RuleHit] | None = None
        for order, rule in enumerate(self.rules):
            matched = rule.find(response_text)
            if matched is None:
                continue
            rank = (category(rule.label).node, order)
            if best is None or rank < best[:2]:
                best = (*rank, RuleHit(rule, matched))
        return None if best is None else best[2]

    def match_examples(self, examples: Sequence[Example]) -> list[RuleHit | None]:
        if not self.rules:
            return [None] * len(examples)
        return [self.match(ex.response_text) for ex in examples]

    def describe(self) -> list[dict[str, Any]]:
        return [{"id": r.id, "category": category(r.label).name, "lang": r.lang,
                 "description": r.description} for r in self.rules]


def _strings(value: Any, where: str, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise DataError(f"{where}: field '{name}' must be a list of non-empty strings")
    return value


def rule_from_dict(obj: Any, where: str) -> Rule:
    """Validate one rule object; errors name the file and the rule."""
    if not isinstance(obj, Mapping):
        raise DataError(f"{where}: a rule must be an object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - _RULE_FIELDS)
    if unknown:
        raise DataError(f"{where}: unknown field '{unknown[0]}' (expected some of "
                        f"{', '.join(sorted(_RULE_FIELDS))})")
    rule_id = obj.get("id")
    if not isinstance(rule_id, str) or not rule_id.strip():
        raise DataError(f"{where}: field 'id' must be a non-empty string")
    where = f"{where} (rule {rule_id!r})"
    try:
        label = category(obj.get("category")).id  # type: ignore[arg-type]
    except (TypeError, ValueError, AttributeError):
        raise DataError(f"{where}: field 'category' must name a category of the taxonomy, "
                        f"got {obj.get('category')!r}") from None
    if label == SAFE_LABEL:
        raise DataError(f"{where}: a rule can only make a reply less safe; "
                        "'Safe Response' is not allowed")
    patterns = []
    for text in _strings(obj.get("patterns"), where, "patterns"):
        try:
            patterns.append(re.compile(text, re.IGNORECASE))
        except re.error as exc:
            raise DataError(f"{where}: pattern {text!r} is not a valid regular expression: "
                            f"{exc}") from None
    keywords = _strings(obj.get("keywords"), where, "keywords")
    if not patterns and not keywords:
        raise DataError(f"{where}: give at least one of 'patterns' or 'keywords'")
    description = obj.get("description") or ""
    if not isinstance(description, str):
        raise DataError(f"{where}: field 'description' must be a string")
    lang = obj.get("lang")
    return Rule(rule_id, label, tuple(patterns), tuple(keywords), description,
                lang if isinstance(lang, str) else None)


def read_json_or_yaml(path: str | os.PathLike[str]) -> Any:
    """A settings file's content: YAML when the name ends in .yaml/.yml, else JSON."""
    from ..data import read_text_file

    text, source = read_text_file(Path(path)), str(path)
    if source.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ModuleNotFoundError:
            raise DataError(f"{source}: reading YAML needs PyYAML (pip install pyyaml); "
                            "or write the rules as JSON") from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise DataError(f"{source}: not valid YAML: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: "
                        f"{exc.msg}") from None


def _rules_of(obj: Any, source: str) -> tuple[list[Rule], bool]:
    if not isinstance(obj, Mapping) or not isinstance(obj.get("rules"), list):
        raise DataError(f"{source}: expected an object with a 'rules' list")
    unknown = sorted(set(obj) - {"format", "version", "about", "rules", "replace_defaults"})
    if unknown:
        raise DataError(f"{source}: unknown field '{unknown[0]}' (expected rules, "
                        "replace_defaults, about)")
    rules = [rule_from_dict(r, f"{source} rule {i}") for i, r in enumerate(obj["rules"])]
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise DataError(f"{source}: duplicate rule id {rule.id!r}")
        seen.add(rule.id)
    replace = obj.get("replace_defaults", False)
    if not isinstance(replace, bool):
        raise DataError(f"{source}: field 'replace_defaults' must be true or false")
    return rules, replace


def default_rules() -> RuleSet:
    """The rule set shipped with the package."""
    text = resources.files(__package__).joinpath("data", DEFAULT_RULES_RESOURCE).read_text(
        encoding="utf-8")
    rules, _ = _rules_of(json.loads(text), DEFAULT_RULES_RESOURCE)
    return RuleSet(tuple(rules), "default")


def merge_rules(base: Iterable[Rule], extra: Iterable[Rule]) -> tuple[Rule, ...]:
    """``base`` with rules of the same id replaced by ``extra``'s, new ones appended."""
    extra = list(extra)
    by_id = {r.id: r for r in extra}
    merged = [by_id.pop(r.id, r) for r in base]
    return tuple(merged + [r for r in extra if r.id in by_id])


def load_rules(path: str | os.PathLike[str] | None = None, *,
               use_defaults: bool = True) -> RuleSet:
    """The default rules, extended (or replaced) by the rules in ``path``.

    ``use_defaults=False`` or ``"replace_defaults": true`` in the file keeps only the file's
    rules; neither and no file gives the defaults.
    """
    base = default_rules().rules if use_defaults else ()
    if path is None:
        return RuleSet(base, "default" if use_defaults else "none")
    p = Path(path)
    rules, replace = _rules_of(read_json_or_yaml(p), str(p))
    if replace or not use_defaults:
        return RuleSet(tuple(rules), str(p))
    return RuleSet(merge_rules(base, rules), f"default+{p}")


NO_RULES = RuleSet((), "none")
