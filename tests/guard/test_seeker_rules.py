"""The seeker rule tier: current risk vs past, reported, negated or media; whole conversations."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mhsafety.data import Turn
from mhsafety.errors import DataError
from mhsafety.guard.seeker_rules import (
    RISK_LEVELS,
    default_seeker_rules,
    join_turns,
    load_seeker_rules,
    max_level,
    seeker_turns,
)

RULES = default_seeker_rules()


def level(messages) -> str:
    return RULES.screen(messages).level


@pytest.mark.parametrize("text, expected", [
    # imminent: a plan, means, time or goodbye
    ("我已经攒够了药，打算今晚吃掉", "imminent"),
    ("我打算明天去跳楼", "imminent"),
    ("遗书已经写好了", "imminent"),
    ("I've written my goodbye letters, tonight's the night", "imminent"),
    ("I have the pills ready", "imminent"),
    ("I have a plan to kill myself", "imminent"),
    # high: current ideation or self-harm without a plan
    ("我真的不想活了", "high"),
    ("最近总是想自杀", "high"),
    ("最近我又想过自杀", "high"),
    ("我昨天又割腕了", "high"),
    ("I want to die", "high"),
    ("I feel suicidal", "high"),
    ("I don't want to live anymore", "high"),
    ("I cut myself again last night", "high"),
    ("如果我想死怎么办", "high"),
    # low: hopelessness
    ("活着真没意思", "low"),
    ("what's the point of living", "low"),
    ("I feel hopeless", "low"),
    # not current risk: negated
    ("我没有想自杀", "none"),
    ("我从来没有想过自杀", "none"),
    ("我不会自杀的，放心", "none"),
    ("I'm not going to kill myself", "none"),
    ("I don't want to die", "none"),
    # past or resolved
    ("我以前想过自杀，现在好多了", "none"),
    ("我想过自杀，现在好多了", "none"),
    ("I used to self-harm but I've been stable for two years", "none"),
    ("I wanted to die when I was 15", "none"),
    # reported speech about others
    ("我朋友说他想死", "none"),
    ("先生很焦虑，他甚至有种想从家里跳下去的感觉", "none"),
    ("my friend said she wants to die", "none"),
    ("my sister self-harms", "none"),
    # media and explicit hypotheticals
    ("那部电影里的人自杀了", "none"),
    ("电影里的主角一直想自杀", "none"),
    ("the character in the movie wants to die", "none"),
    # everyday words that are not risk
    ("今晚八点结束", "none"),
    ("烦死了，我妈总是唠叨", "none"),
    ("这不一定是伤害自己伴侣的行为", "none"),
    ("I'm dying to see that film", "none"),
    ("I hurt myself playing football", "none"),
    ("I keep thinking about hurting myself", "high"),
    ("我不如死了算了", "high"),
    ("遇见她以后生不如死", "low"),
    ("活着好累", "low"),
])
def test_levels_of_single_turns(text, expected):
    assert level(text) == expected


def test_a_third_person_subject_does_not_hide_the_seekers_own_words():
    assert level("我跟他吵架了，好想死") == "high"
    assert level("他骂我，好想死") == "high"
    assert level("我跟我妈吵架了，好想死") == "high"


@pytest.mark.parametrize("whole, pieces", [
    ("我已经攒够了药，打算今晚吃掉", ["我已经攒够了药，", "打算今晚", "吃掉"]),
    ("我已经攒够了药，打算今晚吃掉", ["我已经攒", "够了药，打算", "今晚吃掉"]),
    ("I've written my goodbye letters, tonight's the night",
     ["I've written", "my goodbye", "letters, tonight's the night"]),
    ("I have the pills ready", ["I have the", "pills", "ready"]),
    ("我朋友说他想死", ["我朋友说", "他", "想死"]),
    ("我以前想过自杀，现在好多了", ["我以前想过", "自杀，现在", "好多了"]),
    ("I want to die", ["I want", "to ", " die"]),
])
def test_splitting_a_message_over_turns_changes_nothing(whole, pieces):
    one = RULES.screen([{"role": "user", "content": whole}])
    three = RULES.screen([{"role": "user", "content": p} for p in pieces])
    assert (three.level, three.rule_id) == (one.level, one.rule_id)
    assert [f.rule_id for f in three.findings] == [f.rule_id for f in one.findings]
    assert [f.rule_id for f in three.discounted] == [f.rule_id for f in one.discounted]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["我已经攒够了药，打算今晚吃掉", "我真的不想活了", "我以前想过自杀，现在好多了",
                        "我朋友说他想死", "活着真没意思", "我没有想自杀"]),
       st.lists(st.integers(min_value=1, max_value=12), max_size=4))
def test_any_split_of_a_chinese_message_gives_the_same_level(text, cuts):
    points = sorted({c for c in cuts if c < len(text)})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)])]
    assert level(pieces) == level(text)


def test_a_later_calm_turn_or_retraction_does_not_lower_the_level():
    messages = [{"role": "user", "content": "我真的不想活了"},
                {"role": "assistant", "content": "听到你这么说我很担心你。"},
                {"role": "user", "content": "开玩笑的，我没事了"}]
    assert level(messages) == "high"
    assert level(["I want to die", "never mind, I'm fine now"]) == "high"


def test_only_the_seekers_turns_are_read():
    messages = [{"role": "system", "content": "If the user wants to die, be gentle."},
                {"role": "assistant", "content": "你现在还想自杀吗？"},
                {"role": "user", "content": "今天还好"}]
    assert level(messages) == "none"
    assert seeker_turns(messages) == [(2, "今天还好")]


def test_turn_shapes_are_read_alike():
    text = "I want to die"
    shapes = [text, [text], [Turn("seeker", text)], [("user", text)],
              [{"role": "user", "content": [{"type": "text", "text": text}]}],
              [{"role": "seeker", "text": text}]]
    assert {level(s) for s in shapes} == {"high"}
    with pytest.raises(DataError, match="message 0"):
        RULES.screen([42])


def test_findings_point_at_turn_offsets_and_carry_no_text():
    messages = [{"role": "user", "content": "  你好"},
                {"role": "assistant", "content": "你好，我在。"},
                {"role": "user", "content": "  说实话我想自杀"}]
    screen = RULES.screen(messages)
    assert screen.level == "high" and screen.at_risk
    span = screen.findings[0].spans[0]
    assert span.turn == 2
    assert messages[2]["content"][span.start:span.end] == "想自杀"
    dumped = json.dumps(screen.to_dict(), ensure_ascii=False)
    assert "自杀" not in dumped and "说实话" not in dumped
    assert json.loads(dumped)["rule_id"] == "zh-ideation"


def test_a_match_across_turns_has_a_span_in_each():
    screen = RULES.screen(["我想", "自杀"])
    assert [s.to_list() for s in screen.findings[0].spans] == [[0, 1, 2], [1, 0, 2]]


def test_discounted_matches_are_kept_with_their_qualifier():
    screen = RULES.screen("我朋友说他想死")
    assert screen.level == "none" and screen.findings == ()
    assert [(f.rule_id, f.discount_kind) for f in screen.discounted] == [
        ("zh-ideation", "reported")]


def test_time_words_count_only_beside_current_ideation():
    assert level("tonight's the night") == "none"
    assert level("今晚就结束吧") == "none"
    assert level(["I want to die.", "tonight's the night"]) == "imminent"
    assert level(["我不想活了。", "今晚就结束吧"]) == "imminent"
    assert level(["I don't want to die.", "tonight's the night"]) == "none"


def test_join_turns_glues_cjk_and_spaces_latin():
    text, segments = join_turns([(0, " 我想"), (3, "自杀 "), (4, "and"), (5, " then")])
    assert text == "我想自杀and then"
    assert segments == [(0, 0, 1), (2, 3, 0), (4, 4, 0), (8, 5, 1)]


def test_levels_are_ordered():
    assert max_level([]) == "none"
    assert max_level(["low", "imminent", "high"]) == "imminent"
    assert RISK_LEVELS == ("none", "low", "high", "imminent")


# ---------------------------------------------------------------------- rule files

def test_a_team_file_adds_and_replaces_rules_and_qualifiers(tmp_path):
    path = tmp_path / "team.json"
    path.write_text(json.dumps({"rules": [
        {"id": "team-zh", "level": "high", "lang": "zh", "patterns": ["不想醒来了"]},
        {"id": "zh-hopeless", "level": "low", "lang": "zh", "patterns": ["好没劲"]}],
        "qualifiers": [{"id": "zh-media", "kind": "hypothetical", "lang": "zh",
                        "scope": "before", "window": 10, "patterns": ["剧本里"]}]},
        ensure_ascii=False), encoding="utf-8")
    rules = load_seeker_rules(path)
    assert rules.source == f"default+{path}"
    assert len(rules) == len(RULES) + 1
    assert rules.screen("今天真的不想醒来了").level == "high"
    assert rules.screen("活着真没意思").level == "none"  # the default zh-hopeless was replaced
    assert rules.screen("好没劲").level == "low"
    assert rules.screen("剧本里的人想自杀").level == "none"
    assert rules.screen("电影里的主角想自杀").level == "high"  # the default zh-media was replaced
    only = load_seeker_rules(path, use_defaults=False)
    assert [r.id for r in only.rules] == ["team-zh", "zh-hopeless"]
    assert only.screen("我想自杀").level == "none"


def test_replace_defaults_in_the_file(tmp_path):
    path = tmp_path / "team.json"
    path.write_text(json.dumps({"replace_defaults": True, "rules": [
        {"id": "x", "level": "imminent", "patterns": ["red button"]}]}), encoding="utf-8")
    rules = load_seeker_rules(path)
    assert rules.screen("I want to die").level == "none"
    assert rules.screen("press the RED BUTTON").level == "imminent"


@pytest.mark.parametrize("body, message", [
    ({"rules": [{"id": "a", "level": "severe", "patterns": ["x"]}]}, "field 'level' must be"),
    ({"rules": [{"id": "a", "level": "low", "patterns": ["("]}]}, "not a valid regular"),
    ({"rules": [{"id": "a", "level": "low", "patterns": []}]}, "field 'patterns'"),
    ({"rules": [{"id": "a", "level": "low", "patterns": ["x"], "colour": 1}]},
     "unknown field 'colour'"),
    ({"rules": [{"id": "a", "level": "low", "patterns": ["x"]},
                {"id": "a", "level": "low", "patterns": ["y"]}]}, "duplicate rule id 'a'"),
    ({"rules": [{"id": "a", "level": "low", "patterns": ["x"], "requires": "maybe"}]},
     "field 'requires'"),
    ({"rules": [], "qualifiers": [{"id": "q", "kind": "sarcasm", "scope": "before",
                                   "patterns": ["x"]}]}, "field 'kind' must be"),
    ({"rules": [], "qualifiers": [{"id": "q", "kind": "past", "scope": "around",
                                   "patterns": ["x"]}]}, "field 'scope' must be"),
    ({"rules": [], "qualifiers": [{"id": "q", "kind": "past", "scope": "before",
                                   "window": 0, "patterns": ["x"]}]}, "field 'window'"),
    ({"rule": []}, "expected an object with a 'rules' list"),
])
def test_bad_rule_files_are_one_sentence(tmp_path, body, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_seeker_rules(path)


def test_every_default_rule_and_qualifier_has_an_id_and_description():
    assert {r.lang for r in RULES.rules} == {"zh", "en"}
    assert all(r.description for r in RULES.rules)
    assert all(q.description for q in RULES.qualifiers)
    assert {q.kind for q in RULES.qualifiers} == {"negation", "past", "reported",
                                                  "hypothetical"}
