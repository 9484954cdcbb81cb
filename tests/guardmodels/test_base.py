"""The shared pieces: chat turns from an item, answers from a reply, first-token probability."""

from __future__ import annotations

import itertools
import math

import pytest

from mhsafety.data import Example
from mhsafety.guardmodels.base import (
    CUT_OFF,
    EMPTY_ANSWER,
    REASONING_ONLY,
    Answer,
    GuardVerdict,
    answer_from_choice,
    chat_messages,
    first_token_probability,
    split_answer,
)
from tests.helpers.guard_answers import logprobs_for

ITEM = Example("[seeker]I lost my job.[supporter]That sounds hard.[seeker]I feel ashamed.",
               "[supporter]Shame is common after a loss like this.")
OPENS_WITH_SUPPORTER = Example("[supporter]Hi, how are you?[seeker]Not great.[seeker]Tired.",
                               "[supporter]Tell me more.")


def test_seeker_is_user_supporter_is_assistant_and_the_reply_comes_last():
    messages = chat_messages(ITEM)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[-1]["content"] == "Shame is common after a loss like this."
    assert messages[0]["content"] == "I lost my job."


def test_alternating_turns_merge_one_speaker_and_never_open_with_the_assistant():
    plain = chat_messages(OPENS_WITH_SUPPORTER)
    assert [m["role"] for m in plain] == ["assistant", "user", "user", "assistant"]
    alt = chat_messages(OPENS_WITH_SUPPORTER, alternate=True)
    assert [m["role"] for m in alt] == ["user", "assistant", "user", "assistant"]
    assert alt[0]["content"] == ""  # nothing put in the seeker's mouth
    assert alt[2]["content"] == "Not great.\nTired."


def test_every_test_item_alternates(test_examples):
    for ex in test_examples:
        roles = [m["role"] for m in chat_messages(ex, alternate=True)]
        assert roles[0] == "user" and roles[-1] == "assistant"
        assert all(a != b for a, b in itertools.pairwise(roles))


def test_answer_from_an_openai_choice_keeps_reasoning_and_logprobs():
    choice = {"message": {"content": "safe", "reasoning_content": "thinking"},
              "logprobs": {"content": [{"token": "safe", "logprob": -0.1}]},
              "finish_reason": "stop"}
    answer = answer_from_choice(choice)
    assert answer == Answer("safe", "thinking", [{"token": "safe", "logprob": -0.1}], "stop")
    assert answer_from_choice({"message": {"content": None}}).text is None


@pytest.mark.parametrize("answer, reason", [
    (Answer(""), EMPTY_ANSWER), (Answer(None), EMPTY_ANSWER),
    (Answer("<think>still going"), REASONING_ONLY),
    (Answer("<think>long</think>  "), REASONING_ONLY),
    (Answer("", reasoning="the whole budget went here"), REASONING_ONLY),
    (Answer("", finish_reason="length"), CUT_OFF),
])
def test_no_answer_text_gives_the_reason(answer, reason):
    assert split_answer(answer)[2] == reason


def test_reasoning_from_the_block_and_the_field_is_kept_together():
    reasoning, text, problem = split_answer(Answer("<think>a</think>\nsafe", reasoning="b"))
    assert (text, problem) == ("safe", None)
    assert reasoning == "b\n\na"


def test_first_token_probability_renormalises_over_the_two_verdicts():
    tokens = logprobs_for("unsafe", {"unsafe": 0.6, "safe": 0.2, "The": 0.1}, blank_first=True)
    assert first_token_probability(tokens, ["unsafe"], ["safe"]) == pytest.approx(0.75)
    yes = logprobs_for("No", {"No": 0.9, "Yes": 0.05})
    assert first_token_probability(yes, ["yes"], ["no"]) == pytest.approx(0.05 / 0.95)


def test_no_probability_is_made_up():
    assert first_token_probability(None, ["unsafe"], ["safe"]) is None
    assert first_token_probability([], ["unsafe"], ["safe"]) is None
    other = logprobs_for("Hello", {"Hello": 0.9})
    assert first_token_probability(other, ["unsafe"], ["safe"]) is None


def test_a_verdict_abstains_only_without_a_binary_answer():
    assert GuardVerdict(None, abstain="x").abstained
    assert not GuardVerdict(False).abstained
    assert GuardVerdict(True, probability=0.9).to_dict()["probability"] == 0.9
    assert math.isclose(GuardVerdict(True, probability=0.25).probability, 0.25)
