"""Fake guard-model servers: a responder for ``mhsafety.testing.FakeServer`` (or a handler
for ``MockTransport``) that answers each request in a family's own format.

:class:`GoldGuardResponder` knows the items: it builds every request the kind will send
(:func:`mhsafety.guardmodels.calls_for`) and answers each with what a model agreeing with the
gold label says (:func:`tests.helpers.guard_answers.answers_for_gold`), so the kind must
score 100 % on the binary view. ``wrap`` changes every answer (reasoning first, prose first,
a malformed text) to test how the kind reads it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from mhsafety.data import Example
from mhsafety.guardmodels import calls_for
from mhsafety.guardmodels.settings import GuardModelSettings

from .guard_answers import answers_for_gold

UNKNOWN = "(unknown item)"


def request_key(body: dict[str, Any]) -> str:
    """What tells one request from another: its messages and per-call template options."""
    return json.dumps([body.get("messages"), body.get("chat_template_kwargs")],
                      sort_keys=True, ensure_ascii=False)


class GoldGuardResponder:
    def __init__(self, examples: Iterable[Example], settings: GuardModelSettings,
                 wrap: Callable[[str], str] | None = None) -> None:
        family = type(settings).family
        policies = getattr(settings, "policies", None)
        self.answers: dict[str, str] = {}
        for ex in examples:
            answers = answers_for_gold(family, ex.label, policies)
            for call, answer in zip(calls_for(ex, settings), answers):
                self.answers[request_key(call)] = answer
        self.wrap = wrap or (lambda text: text)
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, prompt: str, body: dict[str, Any]) -> str:
        self.bodies.append(body)
        answer = self.answers.get(request_key(body))
        return UNKNOWN if answer is None else self.wrap(answer)
