"""The seeker tiers: rules over the whole conversation, the LLM tier over an injected
completion function, and risk that only ever rises."""

from __future__ import annotations

import asyncio

import pytest

from mhsafety.guard.tiers.seeker import (
    SEEKER_PROMPT,
    SeekerModelTier,
    SeekerRulesTier,
    assess_seeker,
    parse_risk,
    seeker_prompt,
)


def run(coro):
    return asyncio.run(coro)


def user(*texts):
    return [{"role": "user", "content": t} for t in texts]


@pytest.mark.parametrize("text, level", [
    ("我已经攒够了药，打算今晚吃掉", "imminent"),
    ("I want to die", "high"),
    ("我以前想过自杀，现在好多了", "none"),
    ("我朋友说他想死", "none"),
    ("I'm not going to kill myself", "none"),
])
def test_rules_tier_levels(text, level):
    risk = run(SeekerRulesTier().assess(user(text)))
    assert risk.level == level
    assert (risk.tier == "seeker-rules") == (level != "none" or risk.reason is not None)
    assert text not in str(risk.to_dict())


def test_discounted_mentions_say_why_without_text():
    risk = SeekerRulesTier().assess_now(user("我以前想过自杀，现在好多了"))
    assert risk.level == "none" and "past" in (risk.reason or "")


@pytest.mark.parametrize("answer, level", [
    ('{"risk": "high", "reason": "current ideation"}', "high"),
    ('Sure: {"risk":"IMMINENT","reason":"plan"}', "imminent"),
    ("low", "low"),
    ("I cannot tell", None),
])
def test_parse_risk(answer, level):
    assert parse_risk(answer) == level


def test_model_tier_sends_our_prompt_and_the_joined_seeker_turns():
    sent = []

    async def complete(messages):
        sent.append(messages)
        return '{"risk": "high", "reason": "x"}'

    messages = [{"role": "system", "content": "be kind"}, *user("我不想"),
                {"role": "assistant", "content": "嗯"}, *user("活了")]
    risk = run(SeekerModelTier(complete).assess(messages))
    assert risk.level == "high" and risk.tier == "seeker-model"
    assert sent == [seeker_prompt(messages)]
    assert sent[0][0]["content"] == SEEKER_PROMPT and sent[0][1]["content"] == "我不想活了"


def test_model_failure_adds_no_risk_and_says_so():
    async def broken(messages):
        raise ConnectionError("down")

    risk = run(SeekerModelTier(broken).assess(user("hello")))
    assert risk.level == "none" and "ConnectionError" in risk.reason


def test_a_tier_can_only_raise_the_risk():
    async def calm(messages):
        return '{"risk": "none"}'

    async def alarmed(messages):
        return '{"risk": "imminent"}'

    rules = SeekerRulesTier()
    text = user("I want to die")
    assert run(assess_seeker([rules, SeekerModelTier(calm)], text)).level == "high"
    raised = run(assess_seeker([rules, SeekerModelTier(alarmed)], text))
    assert raised.level == "imminent" and raised.tier == "seeker-model"
    assert run(assess_seeker([rules, SeekerModelTier(alarmed)], user("hi"))).level == \
        "imminent"
