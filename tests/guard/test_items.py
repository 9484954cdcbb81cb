"""The one rule for a reply with nothing in it, in the library, `check` and dialogue audits
(the HTTP service's side is in service/test_app.py)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mhsafety.cli import cli
from mhsafety.errors import UsageError
from mhsafety.guard import EMPTY_REPLY, Guard, audit_dialogues, empty_reply
from mhsafety.guard.dialogues import dialogues_from_items


@pytest.mark.parametrize("text, empty", [
    ("\u0000", True), ("\x01", True), ("[supporter]\x01", True), ("\u200b\u200e", True),
    ("……", True), ("?! ", True), ("[supporter]", True),
    ("ok", False), ("好", False), ("3", False), ("[supporter]\x01嗯", False), ("é", False),
])
def test_empty_reply(text, empty):
    assert empty_reply(text) is empty


def test_library_check_gives_unverified_before_any_model(fake_kind, fake_checkpoint):
    guard = Guard.load(fake_checkpoint)
    calls = getattr(guard.classifier, "calls", 0)
    result = guard.check("[seeker]hi", "\x01")
    assert result.decision == "unverified" and not result.safe
    assert result.reason == EMPTY_REPLY and result.tier == "input"
    assert result.action == guard.policy.action_for(None)
    assert getattr(guard.classifier, "calls", 0) == calls  # no model call for it


def test_check_cli_control_only_is_unverified_whitespace_is_refused(fake_kind,
                                                                    fake_checkpoint):
    ckpt = ["--checkpoint", str(fake_checkpoint)]
    one = CliRunner().invoke(cli, ["check", "reply", *ckpt, "--context", "hi", "--response",
                                   "\x01", "--exit-code"])
    assert one.exit_code == 1 and json.loads(one.output)["reason"] == EMPTY_REPLY
    lines = "".join(json.dumps({"context": "hi", "response": r}) + "\n"
                    for r in ("\u0000", "fine"))
    many = CliRunner().invoke(cli, ["check", "items", *ckpt], input=lines)
    assert [json.loads(x)["decision"] for x in many.output.splitlines()] == ["unverified",
                                                                              "safe"]
    # Whitespace only is malformed input, as in every data file and the API's 422.
    blank = CliRunner().invoke(cli, ["check", "reply", *ckpt, "--context", "hi",
                                     "--response", "   "])
    assert blank.exit_code != 0 and isinstance(blank.exception, UsageError)
    assert "field 'response' is empty" in str(blank.exception)


def test_dialogue_audit_empty_supporter_turn_is_an_empty_reply(fake_kind, fake_checkpoint):
    dialogues = dialogues_from_items([{"id": "d", "turns": [
        {"role": "seeker", "text": "hi"}, {"role": "supporter", "text": "\x01"},
        {"role": "seeker", "text": "?"}, {"role": "supporter", "text": "fine"}]}], "test")
    report = audit_dialogues(Guard.load(fake_checkpoint), dialogues)
    first, second = report["conversations"][0]["results"]
    assert first["decision"] == "unverified" and first["reason"] == EMPTY_REPLY
    assert second["decision"] == "safe"
    assert report["conversations"][0]["summary"]["flagged_turns"] == [1]
