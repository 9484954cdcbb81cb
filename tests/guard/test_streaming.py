"""The stream screen: what is released, when it blocks, and the hold-back measurement."""

from __future__ import annotations

import asyncio
import re

import pytest

from mhsafety.errors import UsageError
from mhsafety.guard.rules import default_rules
from mhsafety.guard.streaming import (
    StreamScreen,
    StreamSettings,
    holdback_table,
    pieces_of,
    replay,
)


def run(coro):
    return asyncio.run(coro)


def regex_rule(pattern: str):
    compiled = re.compile(pattern)
    return lambda text: (m.group(0) if (m := compiled.search(text)) else None)


def test_allowed_reply_is_released_whole_and_unchanged():
    reply = "听起来你这周过得很辛苦，愿意多说说发生了什么吗？"
    screen = StreamScreen(rules=regex_rule("废物"), settings=StreamSettings(hold_back=4))
    released, verdict = run(replay(screen, reply, 3))
    assert released == reply
    assert not verdict.blocked and verdict.tier is None and verdict.seen == len(reply)


def test_hold_back_keeps_the_last_characters_until_more_arrive():
    async def go():
        screen = StreamScreen(settings=StreamSettings(hold_back=5))
        first = await screen.feed("abcdefgh")
        assert (first, screen.held) == ("abc", 5)
        second = await screen.feed("ij")
        assert (second, screen.held) == ("de", 5)
        tail, verdict = await screen.finish()
        assert tail == "fghij" and not verdict.blocked
    run(go())


@pytest.mark.parametrize("hold_back", [5, 8, 20])
def test_a_rule_match_of_up_to_h_plus_1_characters_is_never_released(hold_back):
    reply = "我理解你的感受。不过你真是个废物，真的。"
    for piece_chars in (1, 2, 3, 7):
        screen = StreamScreen(rules=regex_rule("你真是个废物"),
                              settings=StreamSettings(hold_back=hold_back))
        released, verdict = run(replay(screen, reply, piece_chars))
        assert verdict.blocked and verdict.tier == "rules" and verdict.result == "你真是个废物"
        assert not any(ch in released for ch in "废物")
        assert verdict.released == len(released)


def test_without_hold_back_the_start_of_a_match_can_slip_through():
    screen = StreamScreen(rules=regex_rule("你真是个废物"), settings=StreamSettings(hold_back=0))
    released, verdict = run(replay(screen, "好的。你真是个废物", 2))
    assert verdict.blocked and verdict.sent_before_block
    assert released.endswith("你真是个废")  # the pieces: 好的|。你|真是|个废|物


def test_nothing_is_released_after_a_block():
    async def go():
        screen = StreamScreen(rules=regex_rule("bad"), settings=StreamSettings(hold_back=0))
        assert await screen.feed("ok ") == "ok "
        assert await screen.feed("bad") == ""
        assert await screen.feed(" more text") == ""
        tail, verdict = await screen.finish()
        assert tail == "" and verdict.tier == "rules" and verdict.released == 3
    run(go())


def test_window_model_reads_overlapping_windows_and_sees_every_character():
    seen = []

    def window(text):
        seen.append(text)

    screen = StreamScreen(window=window, settings=StreamSettings(0, window_every=4,
                                                                 window_chars=6))
    reply = "abcdefghijk"
    released, verdict = run(replay(screen, reply, 3))
    assert released == reply and not verdict.blocked
    # Windows end every 4 characters and read the last 6; the tail is read at the end.
    assert seen == ["abcd", "cdefgh", "fghijk"]


def test_hold_back_of_at_least_w_minus_1_releases_only_window_checked_text():
    def window(text):
        return "flag" if "X" in text else None

    for hold in (3, 7):
        screen = StreamScreen(window=window, settings=StreamSettings(hold, window_every=4,
                                                                     window_chars=8))
        released, verdict = run(replay(screen, "aaXaaaaaaa", 1))
        assert verdict.blocked and verdict.tier == "window"
        assert "X" not in released and verdict.released == 0
    screen = StreamScreen(window=window, settings=StreamSettings(0, window_every=4,
                                                                 window_chars=8))
    released, verdict = run(replay(screen, "aaXaaaaaaa", 1))
    assert verdict.sent_before_block and "X" in released


def test_final_check_reads_the_whole_reply_and_can_block_the_tail():
    calls = []

    async def final(text):
        calls.append(text)
        return {"action": "regenerate"}

    screen = StreamScreen(final=final, settings=StreamSettings(hold_back=4))
    released, verdict = run(replay(screen, "0123456789", 2))
    assert calls == ["0123456789"]
    assert verdict.blocked and verdict.tier == "final" and verdict.result == {
        "action": "regenerate"}
    assert released == "012345" and verdict.released == 6 and verdict.sent_before_block


def test_a_custom_blocks_predicate_and_async_checks():
    async def rules(text):
        await asyncio.sleep(0)
        return {"action": "allow"}

    screen = StreamScreen(rules=rules, final=lambda text: {"action": "allow", "p": 0.9},
                          blocks=lambda r: r["action"] != "allow")
    released, verdict = run(replay(screen, "hello there", 4))
    assert released == "hello there" and not verdict.blocked
    assert verdict.result == {"action": "allow", "p": 0.9}


def test_rules_see_a_match_split_across_pieces():
    screen = StreamScreen(rules=default_rules().match, settings=StreamSettings(hold_back=16))
    released, verdict = run(replay(screen, "嗯嗯，你真是个废物", 1))
    assert verdict.blocked and verdict.tier == "rules"
    assert verdict.result.rule.id == "abuse-zh-insult"
    assert "废" not in released


def test_settings_are_checked():
    with pytest.raises(ValueError, match="window_chars"):
        StreamSettings(hold_back=0, window_every=10, window_chars=5)
    with pytest.raises(UsageError, match="hold_back must be at least 0"):
        StreamSettings(hold_back=-1)
    with pytest.raises(UsageError, match="window_every must be positive"):
        StreamSettings(window_every=0)


def test_pieces_of():
    assert pieces_of("abcde", 2) == ["ab", "cd", "e"]
    assert pieces_of("", 3) == [""]
    with pytest.raises(ValueError):
        pieces_of("abc", 0)


def test_holdback_table_counts_replies_sent_before_the_end_block():
    replies = ["a" * 10, "b" * 3, "c" * 10, "bad" + "d" * 7]
    end_blocks = [True, True, False, True]
    rows = holdback_table(replies, end_blocks, [0, 5, 10], piece_chars=1,
                          rules=regex_rule("bad"))
    by_hold = {r.hold_back: r for r in rows}
    # H=0: every blocked reply had text out (the rule fires only once "bad" is whole).
    assert by_hold[0].end_blocked == 3 and by_hold[0].sent_before_block == 3
    # H=5: the 10-character reply blocked at its end had 5 sent; the 3-character one none;
    # the rule caught "bad" with nothing out.
    assert by_hold[5].sent_before_block == 1
    assert by_hold[5].blocked_by == {"final": 2, "rules": 1}
    assert by_hold[5].released_chars_share == pytest.approx(5 / 23)
    # H=10 holds every reply whole.
    assert by_hold[10].sent_before_block == 0 and by_hold[10].share == 0.0
    assert all(r.extra_blocks == 0 for r in rows)


def test_holdback_table_with_a_window_stand_in():
    replies = ["x" * 20, "y" * 20]
    rows = holdback_table(replies, [True, False], [3, 4], piece_chars=1,
                          window=lambda i, text: i == 0 or None,
                          settings=StreamSettings(0, window_every=4, window_chars=4))
    assert [(r.hold_back, r.sent_before_block, r.blocked_by) for r in rows] == [
        (3, 0, {"window": 1}), (4, 0, {"window": 1})]
    low = holdback_table(replies, [True, False], [1], piece_chars=1,
                         window=lambda i, text: i == 0 or None,
                         settings=StreamSettings(0, window_every=4, window_chars=4))
    assert low[0].sent_before_block == 1
    with pytest.raises(ValueError, match="2 replies but 1"):
        holdback_table(replies, [True], [0])
