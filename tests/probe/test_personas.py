"""Persona cards: the default set's coverage, the loader's one-sentence errors, the prompts
and messages built from a dialogue."""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from mhsafety.data.examples import Turn
from mhsafety.errors import DataError
from mhsafety.probe import personas as P
from mhsafety.probe.personas import (
    LANGUAGES,
    RISK_LEVELS,
    STOP_TOKEN,
    TOPICS,
    default_personas,
    load_personas,
    seeker_system_prompt,
    simulator_messages,
    split_stop,
    target_messages,
)

DATA = Path(P.__file__).parent / "data" / "personas"
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def default():
    return default_personas()


def test_default_set_size_languages_and_risk_levels(default):
    assert len(default) >= 24
    for language in LANGUAGES:
        own = [p for p in default if p.language == language]
        assert {p.risk for p in own} == set(RISK_LEVELS), language
        assert {p.topic for p in own} == set(TOPICS), language


def test_every_default_card_has_a_counterpart_in_the_other_language(default):
    by_name = {p.name: p for p in default}
    assert len(by_name) == len(default)
    for p in default:
        other = by_name[p.counterpart]
        assert other.counterpart == p.name
        assert other.language != p.language
        assert (other.risk, other.topic) == (p.risk, p.topic), p.name
    assert Counter(p.language for p in default)["zh"] == Counter(
        p.language for p in default)["en"]


def test_default_cards_are_written_in_their_language(default):
    for p in default:
        assert re.fullmatch(r"[a-z]{2}-[a-z0-9-]+", p.name) and p.name.startswith(p.language)
        text = p.background + p.opening + "".join(p.reactions.values())
        if p.language == "zh":
            assert CJK.search(p.opening) and CJK.search(p.background), p.name
        else:
            assert not CJK.search(text), p.name


def test_crisis_personas_disclose_their_risk_and_others_do_not(default):
    for p in default:
        assert p.crisis == (p.risk in ("high", "imminent"))
        assert (p.risk_disclosure_turn is not None) == p.crisis, p.name
        assert all(k in p.reactions for k in P.REQUIRED_REACTIONS)
    imminent = [p for p in default if p.risk == "imminent"]
    assert all(p.topic == "suicidal-plan" for p in imminent)


def test_every_shipped_file_loads_and_matches_the_default_set(default):
    files = sorted(DATA.glob("*.json"))
    assert files
    loaded = load_personas(DATA)
    assert [p.to_dict() for p in loaded] == [p.to_dict() for p in default]
    assert [p.name for p in load_personas("default")] == [p.name for p in default]
    for file in files:
        assert load_personas(file)


def test_a_card_round_trips_through_its_dict(default, tmp_path):
    card = default[0].to_dict()
    path = tmp_path / "one.json"
    path.write_text(json.dumps(card, ensure_ascii=False), encoding="utf-8")
    (again,) = load_personas(path)
    assert again.to_dict() == card


def test_yaml_cards_load(tmp_path, default):
    yaml = pytest.importorskip("yaml")
    path = tmp_path / "cards.yaml"
    path.write_text(yaml.safe_dump([default[1].to_dict()], allow_unicode=True),
                    encoding="utf-8")
    assert load_personas(path)[0].to_dict() == default[1].to_dict()
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.yaml: not valid YAML \(line"):
        load_personas(tmp_path / "bad.yaml")


def _card(**changes):
    card = copy.deepcopy(default_personas()[0].to_dict())
    card.pop("counterpart")
    for key, value in changes.items():
        if value is None:
            card.pop(key)
        else:
            card[key] = value
    return card


@pytest.mark.parametrize("changes, message", [
    ({"risk": "medium"}, r"field 'risk' must be one of none, low, high, imminent, got 'medium'"),
    ({"language": "fr"}, r"field 'language' must be one of zh, en"),
    ({"background": None}, r"field 'background' is missing"),
    ({"opening": "  "}, r"field 'opening' must be a non-empty string"),
    ({"mood": "sad"}, r"unknown field 'mood'"),
    ({"disclosures": "all at once"}, r"field 'disclosures' must be a list"),
    ({"disclosures": [{"turn": 0, "text": "x"}]}, (r"disclosures\[0\]: field 'turn' must be "
                                                  r"an integer >= 1, got 0")),
    ({"disclosures": [{"turn": 1, "txt": "x"}]}, r"disclosures\[0\]: unknown field 'txt'"),
    ({"disclosures": [{"turn": 2, "text": "plan", "risk": True}]},
     r"marks a current risk, but the persona's risk is 'low'"),
    ({"risk": "high"}, r"needs one with \"risk\": true"),
    ({"reactions": {"dodged": "a", "lectured": "b"}}, r"reactions is missing 'referred'"),
    ({"reactions": {"dodged": "a", "lectured": "b", "referred": "c", "ignored": "d"}},
     r"reactions has unknown key 'ignored'"),
])
def test_bad_cards_get_one_sentence_naming_file_card_and_field(tmp_path, changes, message):
    path = tmp_path / "cards.json"
    path.write_text(json.dumps([_card(**changes)], ensure_ascii=False), encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        load_personas(path)
    text = str(info.value)
    assert text.startswith(f"{path}: persona 0 ('")
    assert "\n" not in text


def test_bad_files_and_sets(tmp_path):
    with pytest.raises(DataError, match="no such persona file or folder"):
        load_personas(tmp_path / "nope.json")
    with pytest.raises(DataError, match="no persona files"):
        load_personas(tmp_path)
    (tmp_path / "broken.json").write_text("[{", encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.json: not valid JSON \(line 1"):
        load_personas(tmp_path / "broken.json")
    (tmp_path / "empty.json").write_text("[]", encoding="utf-8")
    with pytest.raises(DataError, match="holds no persona card"):
        load_personas(tmp_path / "empty.json")
    (tmp_path / "list.json").write_text("[3]", encoding="utf-8")
    with pytest.raises(DataError, match="must be an object, got int"):
        load_personas(tmp_path / "list.json")
    twice = tmp_path / "twice"
    twice.mkdir()
    for name in ("a.json", "b.json"):
        (twice / name).write_text(json.dumps(_card(), ensure_ascii=False), encoding="utf-8")
    with pytest.raises(DataError, match=r"b\.json: persona name '.*' is used twice \(also in "
                                        r".*a\.json\)"):
        load_personas(twice)
    pair = tmp_path / "pair.json"
    pair.write_text(json.dumps([_card(name="a", counterpart="b"), _card(name="b")],
                               ensure_ascii=False), encoding="utf-8")
    with pytest.raises(DataError, match="'counterpart' names 'b', which is in the same "
                                        "language"):
        load_personas(pair)


def test_seeker_prompt_carries_the_card_the_turn_and_the_stop_token(default):
    zh = next(p for p in default if p.language == "zh" and p.risk == "imminent")
    en = next(p for p in default if p.name == zh.counterpart)
    for persona in (zh, en):
        prompt = seeker_system_prompt(persona, turn=3)
        assert persona.background in prompt
        assert STOP_TOKEN in prompt
        assert all(d.text in prompt for d in persona.disclosures)
        assert all(text in prompt for text in persona.reactions.values())
    assert "第 3 条消息" in seeker_system_prompt(zh, 3)
    assert "message number 3" in seeker_system_prompt(en, 3)
    assert [d.turn for d in en.disclosures] == [1, 2, 4]
    assert "From your 2nd message on" in seeker_system_prompt(en, 3)
    assert "From your 4th message on" in seeker_system_prompt(en, 3)
    assert not CJK.search(seeker_system_prompt(en, 1))


def test_split_stop():
    assert split_stop("thanks, bye\n[END]") == ("thanks, bye", True)
    assert split_stop(" [END] ") == ("", True)
    assert split_stop("still here") == ("still here", False)


def test_target_messages_from_marker_text_and_turns():
    assert target_messages("[seeker]hi[supporter]hello[seeker]bad day") == [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bad day"}]
    turns = [Turn("seeker", "a"), Turn("seeker", "b"), Turn("supporter", "c")]
    assert target_messages(turns, system_prompt="be kind") == [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": "a\nb"}, {"role": "assistant", "content": "c"}]
    # text without markers reads as one seeker turn, as every other reader does
    assert target_messages("just text") == [{"role": "user", "content": "just text"}]


def test_simulator_messages_flip_the_roles(default):
    persona = default[0]
    messages = simulator_messages(persona, "[seeker]hi[supporter]how can I help?")
    assert messages[0]["role"] == "system"
    assert "2" in messages[0]["content"].splitlines()[-1]  # next: the seeker's 2nd message
    assert [m["role"] for m in messages[1:]] == ["user", "assistant", "user"]
    assert messages[2] == {"role": "assistant", "content": "hi"}
    assert messages[3] == {"role": "user", "content": "how can I help?"}
    assert messages[1]["content"] == P._LEAD_IN[persona.language]
    supporter_first = simulator_messages(persona, [Turn("supporter", "hello")], turn=1)
    assert [m["role"] for m in supporter_first] == ["system", "user"]
