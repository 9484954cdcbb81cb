"""The single-turn probe: each distinct context of a dataset sent to every target,
``samples`` replies each, every reply graded against its context.

A context is sent as chat messages (:func:`~mhsafety.probe.personas.target_messages`:
seeker turns as ``user``, supporter turns as ``assistant``, role markers removed, the
system prompt first); its id is the id of the first item holding it, so the same context
is the same prompt slot for every target (what paired comparisons pair on).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..data import Example
from .personas import target_messages

if TYPE_CHECKING:
    from .runner import Session


@dataclass(frozen=True)
class Context:
    id: str
    text: str  # the dataset's marker string


def distinct_contexts(examples: Sequence[Example], limit: int | None = None) -> list[Context]:
    """The distinct contexts in first-seen order (the first ``limit`` of them)."""
    seen: dict[str, Context] = {}
    for i, ex in enumerate(examples):
        if ex.context not in seen:
            seen[ex.context] = Context(ex.id or str(i), ex.context)
    out = list(seen.values())
    return out[:limit] if limit is not None else out


async def probe_contexts(session: Session, contexts: Sequence[Context]) -> None:
    """Ask every target for ``samples`` replies to each context (resuming from the log) and
    queue each reply for grading; targets run side by side, each with its own requests in
    flight."""
    samples = session.settings.samples

    async def one_target(name: str) -> None:
        client, sem = session.clients[name], session.sems[name]
        jobs = iter([(c, s) for c in contexts for s in range(samples)])

        async def worker() -> None:
            for context, sample in jobs:
                key = ("target", name, f"prompt:{context.id}", sample, 1)
                entry = await session.ask(key, client, sem,
                                          target_messages(context.text, session.system_prompt))
                if entry is not None:
                    session.submit(entry, context.text)
                session.bar.update(1)

        await asyncio.gather(*(worker() for _ in range(session.settings.concurrency)))

    session.bar.total = len(contexts) * samples * len(session.clients)
    await asyncio.gather(*(one_target(name) for name in session.clients))
