"""Screen a reply while it streams: a transport-free state machine.

:class:`StreamScreen` is fed the reply's content pieces as the upstream sends them and says,
after each, what text may be released to the client now; at the end it gives the final
decision. It knows nothing of HTTP or SSE (:mod:`.sse` parses and builds those); the checks
are injected callables, each sync or async, each returning a *hit* (anything ``blocks``
treats as blocking; by default anything but None/False) or None:

- ``rules(text)`` on every piece, over the whole reply so far (reply rules are regular
  expressions, cheap enough to rerun; a match that spans two pieces is still found);
- ``window(text)`` every ``window_every`` (W) characters, over the last ``window_chars`` (C)
  characters up to that point (C >= W, so consecutive windows overlap by C - W and every
  character is seen by at least one window; the callable closes over the conversation, so
  a model tier reads the window as a reply to the request's messages);
- ``final(text)`` once, over the whole reply, when the stream ends.

The screen holds back the last ``hold_back`` (H) characters: after each piece, everything
but the last H characters of what passed the checks is released. Once a check blocks, nothing
more is released and the verdict records how much had already gone out.

The trade-off between the hold-back window and what can slip through
----------------------------------------------------------------------
- **Rules**: a rule match of at most H + 1 characters is never released before it is found
  (the piece that completes it arrives while its first character is still held back). A
  longer match can have its start released; H = 0 releases every character that passes the
  rules so far, so a phrase cut across pieces can be half sent.
- **Window model**: text beyond the last window check is released after the rules alone, up
  to W - 1 - H characters of it. With H >= W - 1 every released character has passed a window
  check as well as the rules; a smaller H trades that for time to first token.
- **End of reply**: a decision that needs the whole reply (a reply that dodges the seeker is
  only visibly off-topic at its end) arrives when all but the last H characters have been
  sent. For a reply longer than H, blocking at the end can only stop the tail and replace what
  follows; only H >= the reply's length (not streaming at all) avoids that. Counselling
  replies are short (the 800 test replies: median 14 characters, longest 75), so a modest H
  holds most replies whole; ``benchmarks/bench_stream_holdback.py`` measures the share per H.
- Every held character delays the client by the time the upstream takes to produce H more
  characters; the gateway records that as hold-back time.

:func:`holdback_table` replays replies through the screen in fixed-size pieces and measures,
per hold-back size, the share of replies the end-of-reply decision blocks whose text had
already been partly sent when the block came.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..settings import at_least, check_value, positive, setting

Check = Callable[[str], Any]
StreamTier = Literal["rules", "window", "final"]


def default_blocks(result: Any) -> bool:
    """A check's result blocks unless it is None or False."""
    return result is not None and result is not False


@dataclass(frozen=True)
class StreamSettings:
    """How much of a streamed reply the screen holds back and how often the model looks."""

    hold_back: int = setting(32, "Characters held back at the end of what has passed the "
                                 "checks so far (0 releases everything that passed).",
                             check=at_least(0))
    window_every: int = setting(64, "The window model runs every this many characters (W).",
                                check=positive)
    window_chars: int = setting(128, "Characters of the reply the window model reads, ending "
                                     "at the check point (C, at least W).", check=positive)

    def __post_init__(self) -> None:
        for f in ("hold_back", "window_every", "window_chars"):
            check_value(type(self), f, getattr(self, f), "stream settings")
        if self.window_chars < self.window_every:
            raise ValueError(f"window_chars ({self.window_chars}) must be at least "
                             f"window_every ({self.window_every}), or some text is never "
                             "seen by the window model")


@dataclass(frozen=True)
class StreamVerdict:
    """How a streamed reply ended.

    ``result`` is what the deciding check returned (for an allowed reply, the final check's
    result, or None); ``seen`` the reply characters the screen had when it decided;
    ``released`` how many of them had already been released to the client.
    """

    blocked: bool
    tier: StreamTier | None
    result: Any
    seen: int
    released: int

    @property
    def sent_before_block(self) -> bool:
        """Blocked after part of the reply had reached the client."""
        return self.blocked and self.released > 0


async def _run(check: Check, text: str) -> Any:
    result = check(text)
    if inspect.isawaitable(result):
        result = await result
    return result


class StreamScreen:
    """Feed a reply's pieces; get back the text that may be released now.

    >>> screen = StreamScreen(rules=my_rules, final=my_model)    # doctest: +SKIP
    >>> for piece in upstream: send(await screen.feed(piece))      # doctest: +SKIP
    >>> tail, verdict = await screen.finish()                      # doctest: +SKIP

    Once blocked, :meth:`feed` returns "" and :meth:`finish` returns the blocking verdict
    without running the final check.
    """

    def __init__(self, *, rules: Check | None = None, window: Check | None = None,
                 final: Check | None = None, settings: StreamSettings | None = None,
                 blocks: Callable[[Any], bool] = default_blocks) -> None:
        self.settings = settings or StreamSettings()
        self._rules, self._window, self._final, self._blocks = rules, window, final, blocks
        self._parts: list[str] = []
        self._length = 0
        self._text_cache = ""
        self.released = 0
        self.window_checked = 0
        self.verdict: StreamVerdict | None = None

    @property
    def text(self) -> str:
        """The reply so far (released or not)."""
        if len(self._text_cache) != self._length:
            self._text_cache = "".join(self._parts)
        return self._text_cache

    @property
    def held(self) -> int:
        """Characters received but not released."""
        return self._length - self.released

    def _block(self, tier: StreamTier, result: Any) -> str:
        self.verdict = StreamVerdict(True, tier, result, self._length, self.released)
        return ""

    async def feed(self, piece: str) -> str:
        """Take one content piece; return the text that may be released now ("" if none)."""
        if self.verdict is not None:
            return ""
        if piece:
            self._parts.append(piece)
            self._length += len(piece)
        text = self.text
        if self._rules is not None and piece:
            hit = await _run(self._rules, text)
            if self._blocks(hit):
                return self._block("rules", hit)
        if self._window is not None:
            every, size = self.settings.window_every, self.settings.window_chars
            while self._length - self.window_checked >= every:
                point = self.window_checked + every
                hit = await _run(self._window, text[max(0, point - size):point])
                self.window_checked = point
                if self._blocks(hit):
                    return self._block("window", hit)
        limit = max(self.released, self._length - self.settings.hold_back)
        out = text[self.released:limit]
        self.released = limit
        return out

    async def finish(self) -> tuple[str, StreamVerdict]:
        """The stream ended: run the last checks; return the held tail to release and the verdict.

        When a window model is set and there is no final check, the text after the last window
        check is read by the window model once more, so no character escapes every model.
        """
        if self.verdict is not None:
            return "", self.verdict
        text = self.text
        tier: StreamTier | None = None
        result: Any = None
        if self._final is not None:
            tier, result = "final", await _run(self._final, text)
        elif self._window is not None and self.window_checked < self._length:
            tier = "window"
            result = await _run(self._window, text[-self.settings.window_chars:])
            self.window_checked = self._length
        if tier is not None and self._blocks(result):
            self._block(tier, result)
            return "", self.verdict  # type: ignore[return-value]
        out = text[self.released:]
        self.verdict = StreamVerdict(False, None, result, self._length, self.released)
        self.released = self._length
        return out, self.verdict


# ---------------------------------------------------------------------- measuring the trade-off

def pieces_of(text: str, size: int) -> list[str]:
    """``text`` cut into pieces of ``size`` characters (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"piece size must be positive, got {size}")
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


async def replay(screen: StreamScreen, reply: str, piece_chars: int) -> tuple[str, StreamVerdict]:
    """Stream ``reply`` through ``screen`` in pieces; return what was released and the verdict."""
    released = []
    for piece in pieces_of(reply, piece_chars):
        released.append(await screen.feed(piece))
        if screen.verdict is not None:
            break
    tail, verdict = await screen.finish()
    return "".join(released) + tail, verdict


@dataclass(frozen=True)
class HoldbackRow:
    """One hold-back size's figures over a set of replies.

    ``end_blocked``: replies the end-of-reply decision blocks (the denominator);
    ``sent_before_block``: of those, replies some of whose text had been released when the
    stream was blocked (by whichever tier blocked first); ``released_chars_share``: of those
    replies' characters, the share released before the block; ``blocked_by``: the tier that
    blocked each end-blocked reply first; ``extra_blocks``: replies a stream tier blocked
    although the end decision allows them.
    """

    hold_back: int
    replies: int
    end_blocked: int
    sent_before_block: int
    released_chars_share: float
    blocked_by: dict[str, int] = field(default_factory=dict)
    extra_blocks: int = 0

    @property
    def share(self) -> float:
        return self.sent_before_block / self.end_blocked if self.end_blocked else 0.0


def holdback_table(replies: Sequence[str], end_blocks: Sequence[bool],
                   hold_backs: Sequence[int], *, piece_chars: int = 2,
                   rules: Check | None = None,
                   window: Callable[[int, str], Any] | None = None,
                   settings: StreamSettings | None = None) -> list[HoldbackRow]:
    """Per hold-back size, how often the end-of-reply decision blocks text already sent.

    Each reply is streamed in ``piece_chars``-character pieces through a :class:`StreamScreen`
    with ``rules`` on every piece, ``window(i, window_text)`` as reply ``i``'s window model
    (a stand-in may use ``i`` to look up what it should say) and ``end_blocks[i]`` as the
    end-of-reply decision (True: block).
    """
    if len(replies) != len(end_blocks):
        raise ValueError(f"{len(replies)} replies but {len(end_blocks)} end decisions")
    base = settings or StreamSettings()

    async def one(i: int, reply: str, hold: int) -> StreamVerdict:
        screen = StreamScreen(
            rules=rules,
            window=None if window is None else (lambda text, i=i: window(i, text)),
            final=lambda text, i=i: True if end_blocks[i] else None,
            settings=StreamSettings(hold, base.window_every, base.window_chars))
        return (await replay(screen, reply, piece_chars))[1]

    async def table() -> list[HoldbackRow]:
        rows = []
        for hold in hold_backs:
            verdicts = [await one(i, r, hold) for i, r in enumerate(replies)]
            blocked = [(r, v) for r, v, end in zip(replies, verdicts, end_blocks) if end]
            sent = [(r, v) for r, v in blocked if v.sent_before_block]
            chars = sum(len(r) for r, _ in blocked)
            rows.append(HoldbackRow(
                hold, len(replies), len(blocked), len(sent),
                sum(v.released for _, v in blocked) / chars if chars else 0.0,
                dict(Counter(v.tier or "none" for _, v in blocked)),
                sum(v.blocked for v, end in zip(verdicts, end_blocks) if not end)))
        return rows

    return asyncio.run(table())
