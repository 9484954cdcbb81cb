"""Policies: an action for every category and for unverified replies."""

from __future__ import annotations

import json

import pytest

from mhsafety.errors import DataError
from mhsafety.guard import DEFAULT_POLICY, Guard, load_policy
from mhsafety.guard.policy import ACTIONS
from mhsafety.taxonomy import LABEL_NAMES, label_id


def test_default_actions_suit_counselling():
    assert DEFAULT_POLICY.action_for(label_id("Toxic Language")) == "block"
    assert DEFAULT_POLICY.action_for(label_id("Linguistic Neglect")) == "regenerate"
    assert DEFAULT_POLICY.action_for(label_id("Unauthorized Preachment")) == "handover"
    assert DEFAULT_POLICY.action_for(label_id("Safe Response")) == "allow"
    assert DEFAULT_POLICY.action_for(None) == "handover"  # unverified
    assert set(DEFAULT_POLICY.actions) == set(LABEL_NAMES) | {"unverified"}
    assert set(DEFAULT_POLICY.actions.values()) <= set(ACTIONS)


def test_policy_file_overrides_and_every_result_carries_the_action(
        fake_kind, fake_checkpoint, tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"actions": {"Linguistic Neglect": "allow",
                                            "有害语言": "handover", "unverified": "block"}},
                               ensure_ascii=False), encoding="utf-8")
    policy = load_policy(path)
    assert policy.action_for(label_id("Toxic Language")) == "handover"  # by Chinese name
    guard = Guard.load(fake_checkpoint, policy=policy)
    results = guard.check_many([("c", "border"), ("c", "unsafe"), ("c", "NAN"), ("c", "ok")])
    assert [r.action for r in results] == ["allow", "handover", "block", "allow"]


@pytest.mark.parametrize("body, message", [
    ({"actions": {"Toxic Language": "delete"}}, "must be one of allow, block"),
    ({"actions": {"Rudeness": "block"}}, "not a category"),
    ({"rules": {}}, "expected an object with an 'actions' mapping"),
])
def test_bad_policy_files(tmp_path, body, message):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(body))
    with pytest.raises(DataError, match=message):
        load_policy(path)
