"""The gateway end to end: the official ``openai`` client, pointed at the gateway in front
of a fake streaming upstream, plain and streamed; every policy action; seeker screening and
the hand-over webhook."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest

from mhsafety.guard.fallbacks import default_fallbacks
from mhsafety.guard.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from mhsafety.testing import FakeUpstream

from .conftest import SECRET, BinaryTier, Receiver

FALLBACKS = default_fallbacks()
REPLY = "我在这里，愿意听你说。"


def client(served) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served.url}/v1", api_key="unused", max_retries=0)


def ask(served, content, *, headers=None, **kwargs):
    """A plain completion and the gateway's action header."""
    messages = content if isinstance(content, list) else [{"role": "user", "content": content}]
    raw = client(served).chat.completions.with_raw_response.create(
        model="m", messages=messages, extra_headers=headers, **kwargs)
    return raw.parse(), raw.headers.get("x-mhsafety-action")


def ask_stream(served, content, *, headers=None, **kwargs):
    """A streamed completion: the text the client got, and the final chunk's mhsafety."""
    messages = content if isinstance(content, list) else [{"role": "user", "content": content}]
    stream = client(served).chat.completions.create(model="m", messages=messages, stream=True,
                                                     extra_headers=headers, **kwargs)
    text, objects, usage = [], [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
        if chunk.model_extra and "mhsafety" in chunk.model_extra:
            objects.append(chunk.model_extra["mhsafety"])
        usage = chunk.usage or usage
    assert len(objects) == 1  # only the final chunk carries the decision
    return "".join(text), objects[0], usage


# ---------------------------------------------------------------------- allow / block

def test_allowed_reply_reaches_the_client_unchanged(upstream, gateway):
    served = gateway(upstream.url)
    completion, action = ask(served, "我最近总是失眠")
    assert completion.choices[0].message.content == REPLY
    obj = completion.model_extra["mhsafety"]
    assert action == obj["action"] == "allow"
    assert obj["decision"] == "safe" and obj["category"] == "Safe Response"
    assert obj["tier"] == "scripted" and obj["fallback"] is False
    assert [step["node"] for step in obj["node_path"]] == [1, 2, 3, 4]
    assert obj["seeker"]["risk"] == "none"


def test_allowed_stream_is_the_upstream_text_unchanged(gateway):
    long_reply = "听起来你这段时间真的很辛苦。" * 8  # longer than the hold-back and a window
    with FakeUpstream(long_reply, piece_chars=3) as up:
        served = gateway(up.url)
        text, obj, usage = ask_stream(served, "我睡不着",
                                      stream_options={"include_usage": True})
    assert text == long_reply
    assert obj["action"] == "allow" and obj["decision"] == "safe"
    assert obj["stream"]["hold_back"] == 32
    assert usage is not None and usage.completion_tokens == len(long_reply)


def test_blocked_reply_becomes_the_fallback_in_the_seekers_language(gateway):
    with FakeUpstream("你真是个 IDIOT。") as up:
        served = gateway(up.url)
        completion, action = ask(served, "我又搞砸了")
        obj = completion.model_extra["mhsafety"]
        assert completion.choices[0].message.content == FALLBACKS.block("zh")
        assert action == obj["action"] == "block"
        assert obj["decision"] == "unsafe" and obj["category"] == "Toxic Language"
        assert obj["fallback"] is True
        english, _ = ask(served, "I messed up again")
        assert english.choices[0].message.content == FALLBACKS.block("en")


def test_blocked_stream_ends_with_the_fallback_and_never_sends_the_blocked_words(gateway):
    reply = "That sounds really hard, and I am glad you said it out loud here. " \
            "Honestly you are an IDIOT."
    with FakeUpstream(reply, piece_chars=2) as up:
        served = gateway(up.url)
        text, obj, _ = ask_stream(served, "I failed my exam")
    assert "IDIOT" not in text
    assert obj["action"] == "block" and obj["category"] == "Toxic Language"
    sent = obj["stream"]["released_before_decision"]
    assert 0 < sent <= len(reply) - 32
    assert text == reply[:sent] + "\n\n" + FALLBACKS.block("en")


def test_short_blocked_stream_sends_only_the_fallback(gateway):
    with FakeUpstream("IDIOT.", piece_chars=2) as up:
        served = gateway(up.url)
        text, obj, _ = ask_stream(served, "hello")
    assert text == FALLBACKS.block("en")
    assert obj["stream"]["released_before_decision"] == 0


def test_binary_only_tier_blocks_without_a_category(gateway):
    with FakeUpstream("You IDIOT.") as up:
        served = gateway(up.url, [BinaryTier("block")])
        completion, action = ask(served, "hello")
        obj = completion.model_extra["mhsafety"]
        assert action == "block" and obj["category"] is None and obj["tier"] == "binary"
        assert obj["decision"] == "unsafe"
        assert completion.choices[0].message.content == FALLBACKS.block("en")
        text, obj, _ = ask_stream(served, "hello")
        assert text == FALLBACKS.block("en") and obj["tier"] == "binary"


# ---------------------------------------------------------------------- regenerate

def _mimic_until_told(messages, body):
    """Claims to be human unless a system note (the gateway's) asks for a new reply."""
    if messages[-1]["role"] == "system":
        return "I'm an AI supporter, and I'm listening."
    return "AS A HUMAN I know exactly how you feel."


def test_regenerate_asks_again_with_a_note_naming_what_was_wrong(gateway):
    with FakeUpstream(_mimic_until_told) as up:
        served = gateway(up.url)
        completion, action = ask(served, "Nobody understands me")
        obj = completion.model_extra["mhsafety"]
        assert completion.choices[0].message.content == "I'm an AI supporter, and I'm listening."
        assert action == "regenerate" and obj["attempts"] == 2 and obj["fallback"] is False
        assert obj["decision"] == "safe"
        note = up.requests[1]["messages"][-1]
        assert note["role"] == "system" and "Humanoid Mimicry" in note["content"]
        assert note["content"] == FALLBACKS.regenerate_note(1, "en")
        assert up.requests[1]["messages"][:-1] == up.requests[0]["messages"]


def test_regenerate_in_a_stream(gateway):
    with FakeUpstream(_mimic_until_told, piece_chars=4) as up:
        served = gateway(up.url)
        text, obj, _ = ask_stream(served, "Nobody understands me")
    assert "HUMAN" not in text and text.endswith("I'm an AI supporter, and I'm listening.")
    assert obj["action"] == "regenerate" and obj["attempts"] == 2
    assert up.requests[1].get("stream") in (None, False)


def test_regenerate_falls_back_after_n_tries(gateway):
    with FakeUpstream("AS A HUMAN I feel the same.") as up:
        served = gateway(up.url, regenerate_attempts=2)
        completion, action = ask(served, "I feel alone")
        obj = completion.model_extra["mhsafety"]
    assert len(up.requests) == 3  # the first reply and two tries, each screened
    assert action == "regenerate" and obj["fallback"] is True and obj["attempts"] == 3
    assert completion.choices[0].message.content == FALLBACKS.block("en")


# ---------------------------------------------------------------------- hand-over + webhook

def _check_signed(received):
    headers = {k.lower(): v for k, v in received["headers"].items()}
    assert verify_signature(SECRET, received["body"], headers[TIMESTAMP_HEADER.lower()],
                            headers[SIGNATURE_HEADER.lower()])


def test_handover_reply_sends_a_signed_webhook_without_text(gateway, receiver):
    with FakeUpstream("You should TAKE 10 PILLS tonight.") as up:
        served = gateway(up.url, webhook_url=receiver.url)
        completion, action = ask(served, "我吃不下也睡不着", headers={"X-Conversation-Id": "conv-42"})
        (event,) = receiver.wait(1)
    assert action == "handover"
    assert completion.choices[0].message.content == FALLBACKS.handover("zh")
    assert event["conversation_id"] == "conv-42" and event["category"] == "Unauthorized Preachment"
    assert event["action"] == "handover" and event["time"].endswith("Z")
    body = receiver.received[0]["body"].decode()
    assert "PILLS" not in body and "睡不着" not in body
    _check_signed(receiver.received[0])


def test_dead_webhook_receiver_never_delays_or_breaks_the_reply(gateway):
    dead = Receiver()
    url = dead.url
    dead.stop()  # nothing listens there any more
    with FakeUpstream("You should TAKE 10 PILLS tonight.") as up:
        served = gateway(up.url, webhook_url=url, webhook_attempts=2)
        completion, action = ask(served, "I can't eat")
        assert action == "handover"
        assert completion.choices[0].message.content == FALLBACKS.handover("en")
        deadline = time.monotonic() + 15
        metrics = ""
        while time.monotonic() < deadline:
            metrics = httpx.get(f"{served.url}/metrics").text
            if 'mhsafety_gateway_webhook_failures_total{reason="gave_up"} 1.0' in metrics:
                break
            time.sleep(0.1)
    assert 'mhsafety_gateway_webhook_failures_total{reason="gave_up"} 1.0' in metrics


CURRENT = ["我已经攒够了药，打算今晚吃掉", "I have the pills ready and I'm going to take them tonight"]
NOT_CURRENT = ["我以前想过自杀，现在好多了", "I'm not going to kill myself, I just feel tired",
               "我朋友说他想死，我该怎么帮他"]


@pytest.mark.parametrize("text", CURRENT)
def test_seeker_with_a_current_plan_fires_the_handover(upstream, gateway, receiver, text):
    served = gateway(upstream.url, webhook_url=receiver.url)
    completion, action = ask(served, text, headers={"X-Conversation-Id": "c-now"})
    (event,) = receiver.wait(1)
    obj = completion.model_extra["mhsafety"]
    assert action == "handover" and obj["seeker"]["action"] == "handover"
    assert obj["seeker"]["risk"] == "imminent" and obj["seeker"]["tier"] == "seeker-rules"
    assert obj["reply_action"] == "allow"
    locale = FALLBACKS.locale_for([{"role": "user", "content": text}])
    # The upstream still answers; the crisis line is added.
    assert completion.choices[0].message.content == FALLBACKS.with_crisis_line(REPLY, locale)
    assert event["conversation_id"] == "c-now" and event["risk_level"] == "imminent"
    assert event["category"] is None and event["tier"] == "seeker-rules"
    _check_signed(receiver.received[0])
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("text", NOT_CURRENT)
def test_seeker_past_negated_or_reported_does_not_hand_over(upstream, gateway, receiver, text):
    served = gateway(upstream.url, webhook_url=receiver.url)
    completion, action = ask(served, text, headers={"X-Conversation-Id": "c-past"})
    assert action == "allow" and completion.choices[0].message.content == REPLY
    assert completion.model_extra["mhsafety"]["seeker"]["risk"] in ("none", "low")
    # A current one afterwards is the only event the receiver ever gets.
    ask(served, CURRENT[0], headers={"X-Conversation-Id": "c-now"})
    events = receiver.wait(1)
    time.sleep(0.2)
    assert [e["conversation_id"] for e in receiver.events()] == ["c-now"] == \
        [e["conversation_id"] for e in events]


def test_seeker_handover_in_a_stream_adds_the_crisis_line(upstream, gateway, receiver):
    served = gateway(upstream.url, webhook_url=receiver.url)
    text, obj, _ = ask_stream(served, CURRENT[1])
    assert text == FALLBACKS.with_crisis_line(REPLY, "en")
    assert obj["action"] == "handover" and obj["seeker"]["risk"] == "imminent"
    (event,) = receiver.wait(1)
    assert event["risk_level"] == "imminent"


def test_seeker_action_allow_records_without_handing_over(upstream, gateway, receiver):
    served = gateway(upstream.url, webhook_url=receiver.url, seeker_action="allow")
    completion, action = ask(served, CURRENT[0])
    assert action == "allow" and completion.choices[0].message.content == REPLY
    assert completion.model_extra["mhsafety"]["seeker"]["risk"] == "imminent"
    time.sleep(0.3)
    assert receiver.events() == []


def test_one_turn_or_three_gives_the_same_decision(upstream, gateway):
    """The whole conversation is screened, not the last message."""
    served = gateway(upstream.url)
    whole = "I have the pills ready and I'm going to take them tonight"
    split = [{"role": "user", "content": "I have the pills"},
             {"role": "assistant", "content": "Tell me more."},
             {"role": "user", "content": "ready and I'm going to"},
             {"role": "assistant", "content": "Go on."},
             {"role": "user", "content": "take them tonight"}]
    one, _ = ask(served, whole)
    three, _ = ask(served, split)
    assert one.model_extra["mhsafety"]["seeker"] == three.model_extra["mhsafety"]["seeker"]
    assert three.model_extra["mhsafety"]["seeker"]["risk"] == "imminent"
    calm_last, _ = ask(served, [*split, {"role": "assistant", "content": "I hear you."},
                                {"role": "user", "content": "anyway, how are you?"}])
    assert calm_last.model_extra["mhsafety"]["seeker"]["risk"] == "imminent"


def test_nothing_of_the_dialogue_is_logged(upstream, gateway, caplog):
    import logging

    secret_text = "我的秘密-5531 I have the pills ready"
    caplog.set_level(logging.DEBUG)
    for name in ("mhsafety", "mhsafety.guard", "uvicorn", "httpx"):
        logging.getLogger(name).addHandler(caplog.handler)
    try:
        served = gateway(upstream.url)
        ask(served, secret_text)
        ask_stream(served, secret_text)
    finally:
        for name in ("mhsafety", "mhsafety.guard", "uvicorn", "httpx"):
            logging.getLogger(name).removeHandler(caplog.handler)
    assert "5531" not in caplog.text and REPLY not in caplog.text


def test_concurrent_requests_each_get_their_own_answer(gateway):
    with FakeUpstream(lambda messages, body: messages[-1]["content"] + "?",
                      latency=0.05) as up:
        served = gateway(up.url)
        results: dict[int, str] = {}

        def one(i: int) -> None:
            completion, _ = ask(served, f"question {i}")
            results[i] = completion.choices[0].message.content

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert results == {i: f"question {i}?" for i in range(8)}


def test_request_body_stays_as_the_client_sent_it(upstream, gateway):
    served = gateway(upstream.url)
    ask(served, "hi", temperature=0.3, max_tokens=20)
    sent = upstream.requests[0]
    assert sent["temperature"] == 0.3 and sent["max_tokens"] == 20 and sent["model"] == "m"
    assert json.dumps(sent["messages"]) == json.dumps([{"role": "user", "content": "hi"}])


def test_llm_seeker_tier_through_the_judge_chat_client(upstream, gateway, receiver):
    """The optional model tier: our prompt to a chat endpoint; it can raise the rules' level
    (an answer to the supporter's question the rules cannot read)."""
    from mhsafety.guard.tiers.seeker import SEEKER_PROMPT

    def judge(messages, body):
        assert messages[0]["content"] == SEEKER_PROMPT
        return '{"risk": "high", "reason": "affirms current ideation"}' \
            if "还想" in messages[1]["content"] or "是的" in messages[1]["content"] \
            else '{"risk": "none", "reason": "-"}'

    with FakeUpstream(judge) as llm:
        served = gateway(upstream.url, webhook_url=receiver.url, seeker_model="fake-judge",
                         seeker_model_url=llm.url)
        calm, action = ask(served, "今天天气不错")
        assert action == "allow" and calm.model_extra["mhsafety"]["seeker"]["risk"] == "none"
        conversation = [{"role": "user", "content": "最近很难熬"},
                        {"role": "assistant", "content": "你现在还想自杀吗？"},
                        {"role": "user", "content": "是的"}]
        completion, action = ask(served, conversation)
        seeker = completion.model_extra["mhsafety"]["seeker"]
        assert action == "handover" and seeker["risk"] == "high"
        assert seeker["tier"] == "seeker-model"
        (event,) = receiver.wait(1)
        assert event["risk_level"] == "high" and event["tier"] == "seeker-model"
        assert llm.requests[0]["model"] == "fake-judge"


def test_llm_seeker_tier_down_leaves_the_rules_level(upstream, gateway):
    dead = FakeUpstream().start()
    url = dead.url
    dead.stop()
    served = gateway(upstream.url, seeker_model="fake-judge", seeker_model_url=url,
                     seeker_model_timeout_s=2)
    completion, action = ask(served, CURRENT[1])
    seeker = completion.model_extra["mhsafety"]["seeker"]
    assert action == "handover" and seeker["risk"] == "imminent"
    assert seeker["tier"] == "seeker-rules"
    completion, action = ask(served, "hello")
    assert action == "allow" and "seeker model error" in \
        completion.model_extra["mhsafety"]["seeker"]["reason"]


def test_the_mhsafety_object_never_quotes_a_withheld_reply(gateway):
    from mhsafety.guard import RulesTier, default_rules

    reply = "你真是个废物，去死吧"
    with FakeUpstream(reply) as up:
        served = gateway(up.url, [RulesTier(default_rules()), BinaryTier()])
        completion, action = ask(served, "我又搞砸了")
        text, obj, _ = ask_stream(served, "我又搞砸了")
    assert action == "block" and obj["action"] == "block"
    assert completion.model_extra["mhsafety"]["tier"] == "rules" == obj["tier"]
    for shown in (json.dumps(completion.model_dump(), ensure_ascii=False), text,
                  json.dumps(obj, ensure_ascii=False)):
        assert "废物" not in shown
