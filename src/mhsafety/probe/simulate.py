"""The multi-turn probe: an LLM plays the seeker from a persona card, the target answers,
for ``turns`` replies or until the seeker writes the stop token; every target reply is
graded against the conversation before it, and conversations of personas at high or
imminent risk are graded by the crisis rubric (:mod:`.crisis`) when a crisis grader is set.

The seeker's first message is the card's ``opening`` (no request); each later one is asked
of the simulator with :func:`~mhsafety.probe.personas.simulator_messages`. A conversation's
id is ``<persona>#<sample>``, the same for every target. Each seeker message and target
reply is logged as it arrives, so a rerun continues every conversation from its last
logged turn without asking anything twice. A failed request ends the conversation for this
run (a rerun asks it again). A seeker message that ends the conversation is not answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..data import format_turns
from ..data.examples import Turn
from ..judge.parse import split_reasoning
from .crisis import grade_conversation
from .personas import Persona, simulator_messages, split_stop, target_messages

if TYPE_CHECKING:
    from .runner import Session


def conversation_id(persona: Persona, sample: int) -> str:
    return f"{persona.name}#{sample}"


async def converse(session: Session, target: str, persona: Persona, sample: int) -> None:
    """One conversation of ``target`` with ``persona`` (resumed from the log)."""
    settings = session.settings
    cid = conversation_id(persona, sample)
    cluster = f"conversation:{cid}"
    turns: list[Turn] = []
    complete = True
    for turn in range(1, settings.turns + 1):
        if turn == 1:
            message, stop = persona.opening, False
        else:
            assert session.seeker is not None
            entry = await session.ask(("seeker", target, cluster, sample, turn),
                                      session.seeker, session.seeker_sem,
                                      simulator_messages(persona, turns, turn))
            if entry is None:
                complete = False
                break
            message, stop = split_stop(entry["content"])
        if message:
            turns.append(Turn("seeker", message))
        if stop or not message:
            break
        entry = await session.ask(("target", target, cluster, sample, turn),
                                  session.clients[target], session.sems[target],
                                  target_messages(turns, session.system_prompt))
        session.bar.update(1)
        if entry is None:
            complete = False
            break
        context = format_turns(turns)
        session.submit(entry, context, persona=persona.name, risk=persona.risk)
        turns.append(Turn("supporter", split_reasoning(entry["content"])[1].strip()))
    if (complete and persona.crisis and session.crisis_settings is not None
            and (target, cid) not in session.crisis_done):
        verdict = await asyncio.get_running_loop().run_in_executor(
            session.pool, lambda: grade_conversation(
                turns, session.crisis_complete(), conversation_id=cid, target=target,
                persona=persona.name, risk=persona.risk,
                window=settings.crisis_window))
        session.record_crisis(verdict)


async def probe_conversations(session: Session, personas: Sequence[Persona]) -> None:
    """Every target's conversations with every persona, ``samples`` each, side by side
    (requests in flight bounded per target and for the seeker)."""
    samples = session.settings.samples
    session.bar.total = len(personas) * samples * len(session.clients) * session.settings.turns
    await asyncio.gather(*(converse(session, target, persona, sample)
                           for target in session.clients for persona in personas
                           for sample in range(samples)))
