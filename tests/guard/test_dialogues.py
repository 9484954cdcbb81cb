"""Dialogue audits from the command line and the library."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mhsafety.cli import cli
from mhsafety.errors import DataError
from mhsafety.guard import Guard, audit_dialogues, read_dialogues


def write(path, conversations):
    path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in conversations),
                    encoding="utf-8")
    return path


def test_every_supporter_turn_is_screened_against_the_turns_before(fake_kind,
                                                                    fake_checkpoint, tmp_path):
    data = write(tmp_path / "logs.jsonl", [
        {"id": "a", "turns": [{"role": "seeker", "text": "我睡不着"},
                              {"role": "supporter", "text": "fine"},
                              {"role": "seeker", "text": "还是很难受"},
                              {"role": "supporter", "text": "unsafe"}]},
        {"turns": "[seeker]你好[supporter]border"},
    ])
    report = audit_dialogues(Guard.load(fake_checkpoint), data)
    a, b = report["conversations"]
    assert [(r["turn"], r["decision"]) for r in a["results"]] == [(1, "safe"), (3, "unsafe")]
    assert a["summary"]["flagged_turns"] == [3]
    assert b["id"] == "1" and b["summary"]["categories"] == {"Linguistic Neglect": 1}
    summary = report["summary"]
    assert summary["conversations"] == 2 and summary["conversations_flagged"] == 2
    assert summary["categories"] == {"Toxic Language": 1, "Linguistic Neglect": 1}
    assert summary["actions"] == {"allow": 1, "block": 1, "regenerate": 1}


def test_turn_context_is_only_what_came_before(fake_kind, fake_checkpoint, tmp_path):
    from mhsafety.guard.dialogues import turn_items

    (d,) = read_dialogues(write(tmp_path / "d.jsonl", [
        {"id": "x", "turns": "[seeker]一[supporter]二[seeker]三[supporter]四"}]))
    (_, first), (_, second) = turn_items(d)
    assert first.context == "[seeker]一" and first.response == "[supporter]二"
    assert second.context == "[seeker]一[supporter]二[seeker]三"


def test_check_dialogues_cli(fake_kind, fake_checkpoint, tmp_path):
    data = write(tmp_path / "logs.jsonl", [
        {"id": "a", "turns": "[seeker]hi[supporter]你真是个废物，去死吧"}])
    result = CliRunner().invoke(cli, ["check", "dialogues", str(data), "--checkpoint",
                                      str(fake_checkpoint), "--exit-code"])
    assert result.exit_code == 1  # a conversation was flagged
    body = json.loads(result.output)
    assert body["conversations"][0]["results"][0]["rule_id"] == "abuse-zh-insult"
    assert body["summary"]["rule_hits"] == {"abuse-zh-insult": 1}


@pytest.mark.parametrize("conversation, message", [
    ({"turns": [{"role": "seeker", "text": "a"}]}, "no supporter turn"),
    ({"turns": 5}, "must be a list of turns"),
    ({"dialogue": "x"}, "unknown field 'dialogue'"),
    ({"turns": [{"role": "bot", "text": "a"}]}, "role must be"),
])
def test_bad_dialogue_files(tmp_path, conversation, message):
    path = write(tmp_path / "bad.jsonl", [conversation])
    with pytest.raises(DataError, match=message) as info:
        read_dialogues(path)
    assert str(path) in str(info.value)
