"""What the gateway says when it does not pass a reply on: fallbacks in the seeker's language.

- ``block``: the reply was withheld; a warm turn that keeps the conversation open;
- ``handover``: a person will follow up;
- ``crisis``: a resource line added to the reply when the seeker may be at risk. Phone
  numbers are configuration: the defaults name only the emergency numbers every reader of the
  locale can rely on (zh-CN: 110 and 120) or none at all (en, whose readers are in many
  countries); a service puts its own crisis lines in a team file;
- ``regenerate_note``: the system note that asks the upstream for a new reply, naming what
  was wrong with the taxonomy's label name (Chinese names for ``zh`` locales) and a short
  instruction per category (``unverified`` when no check could confirm the reply).

The texts are data (``guard/data/fallbacks.json``, written for this project). A team file
overrides any text of any locale, adds locales, and remaps languages::

    {"locales": {"en": {"crisis": "In the US, call or text 988 ..."},
                 "en-GB": {"crisis": "..."}},
     "languages": {"en": "en-GB"}}

A new locale takes every text it does not give from the default locale. The seeker's
language is read from the user turns (:func:`seeker_language`): Chinese when Han characters
dominate, English when Latin letters do, else the default locale (zh-CN).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import DataError
from ..taxonomy import CATEGORIES, SAFE_LABEL, category
from .policy import UNVERIFIED
from .rules import read_json_or_yaml
from .seeker_rules import seeker_turns

FALLBACKS_FORMAT = "mhsafety-fallbacks"
DEFAULT_FALLBACKS_RESOURCE = "fallbacks.json"
_TEXT_FIELDS = ("block", "handover", "crisis", "regenerate_note", "unverified_name")
_LOCALE_FIELDS = {*_TEXT_FIELDS, "regenerate"}
_FILE_FIELDS = {"format", "version", "about", "default_locale", "languages", "locales"}


@dataclass(frozen=True)
class LocaleTexts:
    block: str
    handover: str
    crisis: str
    regenerate_note: str
    unverified_name: str
    regenerate: Mapping[str, str] = field(default_factory=dict)


def detect_language(texts: Iterable[str]) -> str | None:
    """``zh`` when Han characters dominate ``texts``, ``en`` when Latin letters do, else None.

    One Han character carries about as much as a short English word, so Han characters count
    three times.
    """
    han = latin = 0
    for text in texts:
        for ch in text:
            if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf":
                han += 1
            elif ch.isascii() and ch.isalpha():
                latin += 1
    if han == latin == 0:
        return None
    return "zh" if 3 * han >= latin else "en"


def seeker_language(messages: str | Sequence[Any]) -> str | None:
    """The language of the seeker's turns of ``messages`` (see :func:`detect_language`)."""
    return detect_language(text for _, text in seeker_turns(messages))


@dataclass(frozen=True)
class Fallbacks:
    locales: Mapping[str, LocaleTexts]
    languages: Mapping[str, str]
    default_locale: str = "zh-CN"
    source: str = "default"

    def locale(self, language_or_locale: str | None = None) -> str:
        """The locale for a language (``zh``), a locale (``en-GB``), or the default.

        A language code is looked up in ``languages`` first, so ``"en"`` means whatever
        locale English is mapped to, even when a locale is also called ``en``.
        """
        mapped = self.languages.get(language_or_locale or "")
        if mapped in self.locales:
            return mapped  # type: ignore[return-value]
        if language_or_locale in self.locales:
            return language_or_locale  # type: ignore[return-value]
        return self.default_locale

    def locale_for(self, messages: str | Sequence[Any]) -> str:
        """The locale of the seeker's turns of a conversation."""
        return self.locale(seeker_language(messages))

    def texts(self, locale: str | None = None) -> LocaleTexts:
        return self.locales[self.locale(locale)]

    def block(self, locale: str | None = None) -> str:
        return self.texts(locale).block

    def handover(self, locale: str | None = None) -> str:
        return self.texts(locale).handover

    def crisis_line(self, locale: str | None = None) -> str:
        return self.texts(locale).crisis

    def with_crisis_line(self, reply: str, locale: str | None = None) -> str:
        """``reply`` followed by the crisis resource line (once, on its own paragraph)."""
        line = self.crisis_line(locale)
        if line in reply:
            return reply
        return f"{reply.rstrip()}\n\n{line}" if reply.strip() else line

    def regenerate_note(self, label: int | str | None, locale: str | None = None) -> str:
        """The system note naming what was wrong: a label (id or name), or None/unverified."""
        name = self.locale(locale)
        texts = self.locales[name]
        if label is None or label == UNVERIFIED:
            key, shown = UNVERIFIED, texts.unverified_name
        else:
            cat = category(label)
            if cat.id == SAFE_LABEL:
                raise ValueError("a safe reply needs no regeneration note")
            key, shown = cat.name, cat.name_zh if name.startswith("zh") else cat.name
        return texts.regenerate_note.format(category=shown, instruction=texts.regenerate[key])


# ---------------------------------------------------------------------- reading files

def _regenerate_keys(obj: Any, where: str) -> dict[str, str]:
    if not isinstance(obj, Mapping):
        raise DataError(f"{where}: field 'regenerate' must be an object of category: text")
    out = {}
    for key, text in obj.items():
        if key == UNVERIFIED:
            name = key
        else:
            try:
                cat = category(key)
            except (TypeError, ValueError):
                raise DataError(f"{where}: {key!r} in 'regenerate' is not a category of the "
                                f"taxonomy (nor '{UNVERIFIED}')") from None
            if cat.id == SAFE_LABEL:
                raise DataError(f"{where}: 'regenerate' needs no text for 'Safe Response'")
            name = cat.name
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: the 'regenerate' text for {name!r} must be a "
                            "non-empty string")
        out[name] = text
    return out


def _locale_changes(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, Mapping):
        raise DataError(f"{where}: a locale must be an object of texts")
    unknown = sorted(set(obj) - _LOCALE_FIELDS)
    if unknown:
        raise DataError(f"{where}: unknown field '{unknown[0]}' (expected some of "
                        f"{', '.join(sorted(_LOCALE_FIELDS))})")
    changes: dict[str, Any] = {}
    for name in _TEXT_FIELDS:
        if name in obj:
            if not isinstance(obj[name], str) or not obj[name].strip():
                raise DataError(f"{where}: field '{name}' must be a non-empty string")
            changes[name] = obj[name]
    if "regenerate_note" in changes:
        try:
            changes["regenerate_note"].format(category="", instruction="")
        except (KeyError, IndexError, ValueError):
            raise DataError(f"{where}: 'regenerate_note' may use only {{category}} and "
                            "{instruction} (write other braces as {{ and }})") from None
    if "regenerate" in obj:
        changes["regenerate"] = _regenerate_keys(obj["regenerate"], where)
    return changes


def _merged(base: LocaleTexts, changes: Mapping[str, Any]) -> LocaleTexts:
    regenerate = dict(base.regenerate)
    regenerate.update(changes.get("regenerate", {}))
    texts = {k: v for k, v in changes.items() if k != "regenerate"}
    return replace(base, **texts, regenerate=MappingProxyType(regenerate))


def fallbacks_from_mapping(obj: Any, source: str, base: Fallbacks | None = None) -> Fallbacks:
    """The fallbacks in ``obj``, over ``base`` (None: ``obj`` must give every text)."""
    if not isinstance(obj, Mapping):
        raise DataError(f"{source}: expected an object with 'locales'")
    unknown = sorted(set(obj) - _FILE_FIELDS)
    if unknown:
        raise DataError(f"{source}: unknown field '{unknown[0]}' (expected locales, languages, "
                        "default_locale, about)")
    locales = dict(base.locales) if base else {}
    default = obj.get("default_locale", base.default_locale if base else None)
    raw_locales = obj.get("locales", {})
    if not isinstance(raw_locales, Mapping):
        raise DataError(f"{source}: field 'locales' must be an object of locale: texts")
    if not isinstance(default, str) or (default not in locales and default not in raw_locales):
        raise DataError(f"{source}: 'default_locale' must name one of the locales, "
                        f"got {default!r}")
    if default in raw_locales and default not in locales:
        # The default locale comes first: new locales fill their gaps from it.
        raw_locales = {default: raw_locales[default],
                       **{k: v for k, v in raw_locales.items() if k != default}}
    for name, texts in raw_locales.items():
        where = f"{source} locale {name!r}"
        changes = _locale_changes(texts, where)
        if name in locales:
            locales[name] = _merged(locales[name], changes)
        elif default in locales:
            locales[name] = _merged(locales[default], changes)
        else:
            missing = [f for f in _TEXT_FIELDS if f not in changes]
            if missing or "regenerate" not in changes:
                raise DataError(f"{where}: field '{(missing or ['regenerate'])[0]}' is missing")
            locales[name] = _merged(LocaleTexts(**{f: changes[f] for f in _TEXT_FIELDS}),
                                    changes)
    for name, texts in locales.items():
        gaps = [c for c in [*_unsafe_names(), UNVERIFIED] if c not in texts.regenerate]
        if gaps:
            raise DataError(f"{source} locale {name!r}: 'regenerate' has no text for "
                            f"{gaps[0]!r}")
    languages = dict(base.languages) if base else {}
    raw_languages = obj.get("languages", {})
    if not isinstance(raw_languages, Mapping) or not all(
            isinstance(v, str) and v in locales for v in raw_languages.values()):
        raise DataError(f"{source}: field 'languages' must map languages to locales of the "
                        "file or the defaults")
    languages.update(raw_languages)
    return Fallbacks(MappingProxyType(locales), MappingProxyType(languages), default, source)


def _unsafe_names() -> list[str]:
    return [c.name for c in CATEGORIES if not c.safe]


def default_fallbacks() -> Fallbacks:
    """The fallback texts shipped with the package (zh-CN and en)."""
    text = resources.files(__package__).joinpath("data", DEFAULT_FALLBACKS_RESOURCE) \
        .read_text(encoding="utf-8")
    return fallbacks_from_mapping(json.loads(text), DEFAULT_FALLBACKS_RESOURCE)


def load_fallbacks(path: str | os.PathLike[str] | None = None) -> Fallbacks:
    """The default fallbacks, overridden by the file at ``path`` (JSON, or YAML by suffix)."""
    if path is None:
        return default_fallbacks()
    p = Path(path)
    return replace(fallbacks_from_mapping(read_json_or_yaml(p), str(p), default_fallbacks()),
                   source=f"default+{p}")
