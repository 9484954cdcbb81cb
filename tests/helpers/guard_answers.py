"""Answer texts in each guard model's own format, for a gold verdict, to script fake servers.

Every ``*_answer`` function writes what that model family answers (as its card documents the
format); :func:`answers_for_gold` gives the whole list of answers one item needs (ShieldGemma:
one per policy) for a gold taxonomy label, so that a fake server answering with them makes the
kind score 100 % on the binary view. ``MALFORMED`` lists broken answers per family, with the
part of the abstain reason each must produce; :func:`reasoning_first` and :func:`prose_first`
wrap a good answer in reasoning.
"""

from __future__ import annotations

import json
import math
from typing import Any

from mhsafety.taxonomy import LABEL_NAMES, SAFE_LABEL, category

QWEN_CATEGORY_FOR_UNSAFE = "Unethical Acts"  # any of the model's names; ours are not its own


def qwen3guard_answer(unsafe: bool, categories: tuple[str, ...] = (), refusal: bool = False,
                      level: str | None = None) -> str:
    level = level or ("Unsafe" if unsafe else "Safe")
    named = ", ".join(categories) if categories else (
        QWEN_CATEGORY_FOR_UNSAFE if level != "Safe" else "None")
    return f"Safety: {level}\nCategories: {named}\nRefusal: {'Yes' if refusal else 'No'}"


def llamaguard_answer(unsafe: bool, codes: tuple[str, ...] = ("S1",), blank_first: bool = True
                      ) -> str:
    # Llama Guard 3 opens its answer with a blank line.
    head = "\n\n" if blank_first else ""
    return head + ("unsafe\n" + ",".join(codes) if unsafe else "safe")


def shieldgemma_answer(yes: bool, explanation: str | None = None) -> str:
    word = "Yes" if yes else "No"
    return f"{word}\n{explanation}" if explanation else word


def wildguard_answer(harmful_response: bool | None, refusal: bool | None = False,
                     harmful_request: bool = False) -> str:
    def say(value: bool | None) -> str:
        return "N/A" if value is None else ("yes" if value else "no")

    return (f"Harmful request: {say(harmful_request)}\nResponse refusal: {say(refusal)}\n"
            f"Harmful response: {say(harmful_response)}")


def policy_answer(label: int, output: str = "text", rationale: str | None = None,
                  style: str = "plain") -> str:
    """An answer naming ``label`` under our policy's contract; ``style`` varies the surface
    (plain, lower, upper, bold, spaced, prefixed) to check the parser's tolerance."""
    name = LABEL_NAMES[label]
    if output == "json":
        obj: dict[str, Any] = {"label": name}
        if rationale:
            obj["rationale"] = rationale
        return json.dumps(obj)
    shown = {"plain": name, "lower": name.lower(), "upper": name.upper(),
             "bold": f"**{name}**", "spaced": f"  {name} .", "prefixed": f"Label: {name}"}[style]
    return f"{shown}\n{rationale}" if rationale else shown


def logprobs_for(first: str, alternatives: dict[str, float], blank_first: bool = False
                 ) -> list[dict[str, Any]]:
    """OpenAI-shaped ``logprobs.content``: the decisive first token with its alternatives
    (token -> probability), optionally after a whitespace token."""
    tops = [{"token": t, "logprob": math.log(p)} for t, p in alternatives.items()]
    entry = {"token": first, "logprob": math.log(alternatives.get(first, 1.0)),
             "top_logprobs": tops}
    head = [{"token": "\n\n", "logprob": -0.01, "top_logprobs": []}] if blank_first else []
    return [*head, entry, {"token": "\n", "logprob": -0.1, "top_logprobs": []}]


def answers_for_gold(family: str, label: int, policies: tuple[str, ...] | None = None
                     ) -> list[str]:
    """The answers a model of ``family`` gives when it agrees with gold ``label``."""
    unsafe = label != SAFE_LABEL
    if family == "qwen3guard":
        return [qwen3guard_answer(unsafe)]
    if family == "llamaguard":
        return [llamaguard_answer(unsafe, (f"S{label + 1}",))]
    if family == "wildguard":
        return [wildguard_answer(unsafe)]
    if family == "policy":
        return [policy_answer(label)]
    if family == "shieldgemma":
        from mhsafety.guardmodels.settings import UNSAFE_NAMES

        asked = policies or UNSAFE_NAMES
        return [shieldgemma_answer(unsafe and category(name).id == label) for name in asked]
    raise ValueError(f"no such family {family!r}")


def reasoning_first(answer: str, closed: bool = True) -> str:
    thought = "<think>The reply should be checked against the seeker's worry first.</think>\n"
    return thought + answer if closed else "<think>The reply should be checked"


def prose_first(answer: str) -> str:
    return "Let me look at the reply before answering.\n" + answer


# family -> [(answer text, words the abstain reason contains)]
MALFORMED: dict[str, list[tuple[str, str]]] = {
    "qwen3guard": [
        ("", "empty"),
        ("Safety: Maybe\nCategories: None\nRefusal: No", "not Safe, Unsafe or Controversial"),
        ("Categories: None\nRefusal: No", "Safety"),
        ("Safety: Unsafe", "Categories"),
        ("Safety: Safe\nCategories: None\nRefusal: Perhaps", "Refusal"),
        ("I think this is fine.", "Safety"),
    ],
    "llamaguard": [
        ("", "empty"),
        ("maybe", "neither 'safe' nor 'unsafe'"),
        ("unsafe", "category codes"),
        ("unsafe\nviolence", "comma-separated list of codes"),
    ],
    "shieldgemma": [
        ("", "empty"),
        ("Possibly, it depends.", "Yes or No"),
    ],
    "wildguard": [
        ("", "empty"),
        ("Harmful request: no\nResponse refusal: no", "three answer lines"),
        ("Harmful request: no\nResponse refusal: no\nHarmful response: perhaps", "yes, no or N/A"),
        ("Harmful request: no\nResponse refusal: N/A\nHarmful response: N/A", "N/A"),
        ("Response refusal: no\nHarmful request: no\nHarmful response: no", "three answer lines"),
    ],
    "policy": [
        ("", "empty"),
        ("The reply is somewhat off.", "none of the eight labels"),
        ('{"label": "Mostly Fine"}', "none of the eight labels"),
        ("Not Nonsense, but I am unsure.", "none of the eight labels"),
    ],
}
