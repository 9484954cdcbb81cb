"""The tier protocol: any object with ``name``, ``batched``, ``screen`` (and the defaults of
``TierBase``) can stand in a guard's list, in the library and behind the service alike."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from mhsafety.guard import (
    NO_RULES,
    EscalationTier,
    Guard,
    ModelTier,
    Pass,
    Pending,
    RulesTier,
    Tier,
    TierBase,
    default_rules,
    labelled,
)
from mhsafety.guard.core import NO_TIER_DECIDED


class Keyword(TierBase):
    """A toy tier (as the gateway's seeker tier would be): decides replies with a word,
    passes the others on, and counts its calls."""

    name = "keyword"

    def __init__(self, word: str, label: int = 4, batched: bool = False) -> None:
        self.word, self.label, self.batched = word, label, batched
        self.calls = 0

    def screen(self, items: Sequence[Pending]) -> list:
        self.calls += 1
        return [labelled(self.label, None, item.shown, item.example.id, tier=self.name,
                         why=f"said {self.word!r}", policy=self.policy)
                if self.word in item.example.response else Pass(f"no {self.word!r}")
                for item in items]


def test_built_in_tiers_speak_the_protocol(fake_kind, fake_checkpoint):
    model = ModelTier.load(fake_checkpoint)
    for tier in (RulesTier(default_rules()), model, EscalationTier(model), Keyword("x")):
        assert isinstance(tier, Tier), tier


def test_tiers_run_in_order_and_each_sees_only_what_is_undecided(fake_kind, fake_checkpoint):
    first, last = Keyword("zebra"), Keyword("unsafe", label=2)
    guard = Guard([first, ModelTier.load(fake_checkpoint), last])
    results = guard.check_many([("c", "zebra unsafe"), ("c", "fine"), ("c", "unsafe")])
    assert [r.tier for r in results] == ["keyword", "model", "model"]
    assert results[0].label == 4 and results[0].why == "said 'zebra'"
    assert last.calls == 0  # the model decided everything it was given


def test_a_reply_no_tier_decides_is_unverified(fake_kind):
    guard = Guard([Keyword("never")])
    (result,) = guard.check_many([("c", "fine")])
    assert result.decision == "unverified" and result.reason == NO_TIER_DECIDED
    assert not result.safe


def test_pass_reasons_reach_the_next_tier(fake_kind, fake_checkpoint):
    model = ModelTier.load(fake_checkpoint, band=(0.3, 0.6))
    guard = Guard([model, EscalationTier(ModelTier.load(fake_checkpoint))])
    (result,) = guard.check_many([("c", "border")])
    assert result.tier == "escalation"
    assert result.why.startswith("escalated: first-tier P(safe) 0.4")


def test_default_tiers_and_their_order(fake_kind, fake_checkpoint):
    guard = Guard.load(fake_checkpoint, escalate_to=fake_checkpoint, band="0.3,0.6")
    assert [t.name for t in guard.tiers] == ["rules", "model", "escalation"]
    assert [t.name for t in Guard.load(fake_checkpoint, rules=NO_RULES).tiers] == ["model"]
    with pytest.raises(Exception, match="at least one tier"):
        Guard([])


def test_a_custom_batched_tier_runs_behind_the_service(fake_kind, fake_checkpoint):
    from fastapi.testclient import TestClient

    from mhsafety.guard.service import ServiceConfig, create_app

    keyword = Keyword("zebra", batched=True)
    guard = Guard([keyword, ModelTier.load(fake_checkpoint)])
    with TestClient(create_app(guard, ServiceConfig())) as client:
        body = {"items": [{"context": "c", "response": "a zebra"},
                          {"context": "c", "response": "fine"}]}
        results = client.post("/v1/check", json=body).json()["results"]
    assert [r["tier"] for r in results] == ["keyword", "model"]
    assert keyword.calls >= 1


def test_a_guard_without_a_model_serves_and_fails_closed():
    from fastapi.testclient import TestClient

    from mhsafety.guard.service import create_app

    with TestClient(create_app(Guard([Keyword("zebra")]))) as client:
        assert client.get("/healthz").json()["kind"] == "none"
        body = {"items": [{"context": "c", "response": "zebra"},
                          {"context": "c", "response": "fine"}]}
        first, second = client.post("/v1/check", json=body).json()["results"]
    assert first["tier"] == "keyword" and first["decision"] == "unsafe"
    assert second["decision"] == "unverified" and second["reason"] == NO_TIER_DECIDED


def test_one_classifier_goes_through_around(fake_kind, fake_checkpoint):
    model = ModelTier.load(fake_checkpoint)
    with pytest.raises(TypeError, match="Guard.around"):
        Guard(model)  # type: ignore[arg-type]
    assert [t.name for t in Guard.around(model.classifier).tiers] == ["rules", "model"]
