"""Fallback texts: the seeker's language, crisis lines per locale, regeneration notes."""

from __future__ import annotations

import json

import pytest

from mhsafety.errors import DataError
from mhsafety.guard.fallbacks import (
    default_fallbacks,
    detect_language,
    load_fallbacks,
    seeker_language,
)
from mhsafety.taxonomy import CATEGORIES, SAFE_LABEL

FALLBACKS = default_fallbacks()


@pytest.mark.parametrize("messages, language", [
    ([{"role": "user", "content": "我最近睡不好，总是很焦虑。"}], "zh"),
    ([{"role": "user", "content": "I can't sleep and I feel anxious all the time."}], "en"),
    ([{"role": "user", "content": "我在 Google 上班，最近压力很大"}], "zh"),
    ([{"role": "user", "content": "I work at 腾讯 and I'm exhausted every single day"}], "en"),
    ([{"role": "system", "content": "You are a supportive assistant."},
      {"role": "user", "content": "最近很难过"}], "zh"),
    ([{"role": "user", "content": "😢 ..."}], None),
    ([], None),
])
def test_the_seekers_language_comes_from_the_user_turns(messages, language):
    assert seeker_language(messages) == language


def test_locales_follow_the_language_and_default_to_zh_cn():
    assert FALLBACKS.locale_for([{"role": "user", "content": "I feel lost"}]) == "en"
    assert FALLBACKS.locale_for([{"role": "user", "content": "我很迷茫"}]) == "zh-CN"
    assert FALLBACKS.locale_for([{"role": "user", "content": "..."}]) == "zh-CN"
    assert FALLBACKS.locale("fr") == "zh-CN" and FALLBACKS.locale("en") == "en"
    assert detect_language(["", "123"]) is None


def test_texts_exist_in_both_default_locales_and_in_their_language():
    for locale in ("zh-CN", "en"):
        for text in (FALLBACKS.block(locale), FALLBACKS.handover(locale),
                     FALLBACKS.crisis_line(locale)):
            assert detect_language([text]) == locale[:2]
    assert "110" in FALLBACKS.crisis_line("zh-CN") and "120" in FALLBACKS.crisis_line("zh-CN")
    assert not any(ch.isdigit() for ch in FALLBACKS.crisis_line("en"))


def test_crisis_line_is_appended_once():
    reply = "I'm really glad you told me."
    once = FALLBACKS.with_crisis_line(reply, "en")
    assert once.startswith(reply) and once.endswith(FALLBACKS.crisis_line("en"))
    assert FALLBACKS.with_crisis_line(once, "en") == once
    assert FALLBACKS.with_crisis_line("", "zh-CN") == FALLBACKS.crisis_line("zh-CN")


@pytest.mark.parametrize("cat", [c for c in CATEGORIES if not c.safe], ids=lambda c: c.name)
def test_every_unsafe_category_has_a_regeneration_note_naming_it(cat):
    en = FALLBACKS.regenerate_note(cat.id, "en")
    zh = FALLBACKS.regenerate_note(cat.name, "zh")
    assert cat.name in en and cat.name_zh in zh
    assert FALLBACKS.regenerate_note(cat.name_zh, "en") == en


def test_regeneration_note_for_unverified_and_safe():
    assert "could not be confirmed" in FALLBACKS.regenerate_note(None, "en")
    assert FALLBACKS.regenerate_note("unverified", "zh-CN") == FALLBACKS.regenerate_note(None)
    with pytest.raises(ValueError, match="safe reply"):
        FALLBACKS.regenerate_note(SAFE_LABEL)


def test_a_team_file_overrides_texts_adds_locales_and_remaps_languages(tmp_path):
    path = tmp_path / "team.json"
    path.write_text(json.dumps({
        "locales": {"en": {"crisis": "Call our line at 0000 (placeholder)."},
                    "en-GB": {"crisis": "UK placeholder line."},
                    "zh-CN": {"regenerate": {"Toxic Language": "换一种温和的说法。"}}},
        "languages": {"en": "en-GB"}}, ensure_ascii=False), encoding="utf-8")
    team = load_fallbacks(path)
    assert team.source == f"default+{path}"
    assert team.crisis_line("en") == "UK placeholder line."  # en now maps to en-GB
    assert team.crisis_line("en-GB") == "UK placeholder line."
    assert team.texts("en-GB").block == FALLBACKS.block("zh-CN")  # gaps from the default
    assert team.locales["en"].crisis == "Call our line at 0000 (placeholder)."
    assert team.regenerate_note(4, "zh-CN").endswith("换一种温和的说法。")
    assert team.regenerate_note(3, "zh-CN") == FALLBACKS.regenerate_note(3, "zh-CN")


@pytest.mark.parametrize("body, message", [
    ({"locales": {"en": {"blok": "x"}}}, "unknown field 'blok'"),
    ({"locales": {"en": {"block": ""}}}, "field 'block' must be a non-empty string"),
    ({"locales": {"en": {"regenerate": {"Rudeness": "x"}}}}, "not a category"),
    ({"locales": {"en": {"regenerate": {"Safe Response": "x"}}}}, "needs no text"),
    ({"locales": {"en": {"regenerate_note": "{what}"}}}, "only {category} and"),
    ({"languages": {"fr": "fr-FR"}}, "field 'languages'"),
    ({"default_locale": "fr-FR"}, "'default_locale' must name"),
    ({"colour": 1}, "unknown field 'colour'"),
])
def test_bad_fallback_files_are_one_sentence(tmp_path, body, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_fallbacks(path)
