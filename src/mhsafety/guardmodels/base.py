"""What every guard-model format shares: the verdict, the capabilities, the chat turns, the
answer as the server returned it, and the first-token probability reader.

A guard model is asked over an OpenAI-compatible chat endpoint (vLLM, SGLang, Ollama apply its
chat template); each family's module says how the item is sent (``requests_for``) and how the
answers are read (``verdict_from``). Nothing here makes a request.

Two rules hold for every family: an answer that cannot be read abstains with a reason (never
"safe"), and a probability exists only where the server returned the first token's
log-probabilities for the model's own verdict tokens (never made up from the text).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..data import Example
from ..judge.parse import split_reasoning

# Why a verdict abstains; one text per reason, shared by every family.
EMPTY_ANSWER = "empty answer"
REASONING_ONLY = "the reasoning never reached an answer (cut off or unclosed <think>)"
TEXT_BEFORE_ANSWER = "text before the answer lines (reasoning not marked as such)"
CUT_OFF = "cut off by the token budget (finish_reason: length) before the answer"
NO_ANSWER_CALLS = "no answer was returned"

# A chat template that sends the message text as it is, for the families whose model card
# prescribes one whole prompt (WildGuard; ShieldGemma with ``prompt=text``): start the server
# with it, e.g. ``vllm serve allenai/wildguard --chat-template passthrough.jinja``.
PASSTHROUGH_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"


def options(settings: Any, probability: bool) -> dict[str, Any]:
    """The request fields every family sends: greedy decoding, the budget, and first-token
    log-probabilities when the family reads a probability from them."""
    body: dict[str, Any] = {"temperature": 0.0, "max_tokens": settings.max_tokens}
    if probability and settings.logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = settings.top_logprobs
    return body


@dataclass(frozen=True)
class Answer:
    """One answer as the server returned it: the content, the reasoning the server kept apart
    (``reasoning_content`` / ``reasoning``), the first tokens' log-probabilities (OpenAI shape:
    ``choices[i].logprobs.content``) and why generation stopped."""

    text: str | None
    reasoning: str | None = None
    logprobs: Sequence[Mapping[str, Any]] | None = None
    finish_reason: str | None = None


def answer_from_choice(choice: Mapping[str, Any]) -> Answer:
    """An :class:`Answer` from one ``choices[i]`` object of a chat-completions reply."""
    message = choice.get("message") or {}
    reasoning = message.get("reasoning_content")
    if not isinstance(reasoning, str):
        reasoning = message.get("reasoning")
    content = message.get("content")
    logprobs = (choice.get("logprobs") or {}).get("content")
    return Answer(content if isinstance(content, str) else None,
                  reasoning if isinstance(reasoning, str) and reasoning else None,
                  logprobs if isinstance(logprobs, list) else None,
                  choice.get("finish_reason"))


def as_answer(answer: Answer | str | None) -> Answer:
    return answer if isinstance(answer, Answer) else Answer(answer)


@dataclass(frozen=True)
class GuardVerdict:
    """What a guard model said about one reply, in one shape for every family.

    ``unsafe`` is None when the model abstained (``abstain`` says why). ``label`` is one of
    the eight taxonomy labels only when the model named it under our definitions (the policy
    kind, or our categories given to the model); a general guard's "unsafe" leaves it None,
    never guessed. ``categories`` are the model's own names for what it flagged; ``refusal``
    is the model's refusal call where it makes one (``prompt_harmful`` its call on the
    seeker's turn, where it makes one: WildGuard; ``level`` its graded level where it gives
    one: Qwen3Guard's Safe/Controversial/Unsafe); ``probability`` is P(unsafe) from the
    first token's log-probabilities, or None. ``reasoning`` keeps any reasoning returned.
    """

    unsafe: bool | None
    label: int | None = None
    categories: tuple[str, ...] = ()
    refusal: bool | None = None
    probability: float | None = None
    reasoning: str | None = None
    abstain: str | None = None
    prompt_harmful: bool | None = None
    level: str | None = None
    raw: tuple[str, ...] = field(default=(), compare=False)

    @property
    def abstained(self) -> bool:
        return self.unsafe is None

    def to_dict(self) -> dict[str, Any]:
        return {"unsafe": self.unsafe, "label": self.label, "categories": list(self.categories),
                "refusal": self.refusal, "probability": self.probability,
                "reasoning": self.reasoning, "abstain": self.abstain,
                "prompt_harmful": self.prompt_harmful, "level": self.level}


def abstention(reason: str, reasoning: str | None = None,
               raw: Iterable[str | None] = ()) -> GuardVerdict:
    return GuardVerdict(None, abstain=reason, reasoning=reasoning,
                        raw=tuple(r or "" for r in raw))


@dataclass(frozen=True)
class Capabilities:
    """What a kind can tell: every kind answers the binary view; ``labels`` means it names
    one of the eight taxonomy labels; ``probability`` that a P(unsafe) can come from
    first-token log-probabilities (when the server returns them); ``refusal`` that it says
    whether the reply refused; ``reasoning`` that reasoning text comes back."""

    binary: bool = True
    labels: bool = False
    probability: bool = False
    refusal: bool = False
    reasoning: bool = False

    def to_dict(self) -> dict[str, bool]:
        return {"binary": self.binary, "labels": self.labels, "probability": self.probability,
                "refusal": self.refusal, "reasoning": self.reasoning}


# --------------------------------------------------------------------------- sending the item

ROLE_OF = {"seeker": "user", "supporter": "assistant"}
SPEAKER = {"seeker": "Seeker", "supporter": "Supporter"}


def chat_messages(example: Example, alternate: bool = False) -> list[dict[str, str]]:
    """The dialogue as chat turns: the seeker as ``user``, the supporter as ``assistant``, the
    reply under check last (as ``assistant``).

    ``alternate`` is for chat templates that refuse anything but user/assistant/user/...
    (Llama Guard's raises otherwise): consecutive turns of one speaker are joined with a
    newline, and a dialogue that opens with the supporter gets an empty ``user`` turn first
    (no words are put in the seeker's mouth). 77 of the 800 test items open with the supporter.
    """
    turns = [(ROLE_OF[t.role], t.text) for t in example.turns]
    turns.append(("assistant", example.response_text))
    if not alternate:
        return [{"role": role, "content": text} for role, text in turns]
    merged: list[list[str]] = []
    for role, text in turns:
        if merged and merged[-1][0] == role:
            merged[-1][1] += "\n" + text
        else:
            merged.append([role, text])
    if merged[0][0] != "user":
        merged.insert(0, ["user", ""])
    return [{"role": role, "content": text} for role, text in merged]


def transcript(example: Example) -> str:
    """The context as plain text, one ``Seeker:`` / ``Supporter:`` line per turn, for the
    prompts that take the dialogue as one block of text."""
    return "\n".join(f"{SPEAKER[t.role]}: {t.text}" for t in example.turns)


# --------------------------------------------------------------------------- reading answers


def split_answer(answer: Answer) -> tuple[str | None, str, str | None]:
    """``(reasoning, text, problem)``: a leading ``<think>`` block taken off (the judge's
    :func:`~mhsafety.judge.parse.split_reasoning`) and joined with the server's reasoning
    field; ``problem`` is the abstain reason when no answer text is left."""
    content = answer.text or ""
    thought, text = split_reasoning(content)
    parts = [p for p in (answer.reasoning, thought) if p]
    reasoning = "\n\n".join(parts) if parts else None
    if text.strip():
        return reasoning, text.strip(), None
    if answer.finish_reason == "length":
        return reasoning, "", CUT_OFF
    if thought is not None or reasoning:
        return reasoning, "", REASONING_ONLY
    return reasoning, "", EMPTY_ANSWER


def _token_text(token: Any) -> str:
    return str(token or "").strip().strip("*_`\"'.:").casefold()


def first_token_probability(logprobs: Sequence[Mapping[str, Any]] | None,
                            positive: Iterable[str], negative: Iterable[str]) -> float | None:
    """P(positive) from the first token that is not whitespace or markup, renormalised over
    the two verdicts: ``exp(lp+) / (exp(lp+) + exp(lp-))`` summed over the alternatives in
    ``top_logprobs`` (and the token itself) whose text is one of ``positive`` / ``negative``
    (case-insensitive). None when the server gave no log-probabilities or the first decisive
    token holds neither verdict — never a guess.

    Llama Guard 3 opens its answer with a blank line, so whitespace tokens are skipped.
    """
    if not logprobs:
        return None
    pos = {p.casefold() for p in positive}
    neg = {n.casefold() for n in negative}
    for entry in logprobs:
        if not isinstance(entry, Mapping) or not _token_text(entry.get("token")):
            continue
        seen: dict[str, float] = {}
        alternatives = list(entry.get("top_logprobs") or [])
        alternatives.append({"token": entry.get("token"), "logprob": entry.get("logprob")})
        for alt in alternatives:
            if not isinstance(alt, Mapping):
                continue
            text, lp = _token_text(alt.get("token")), alt.get("logprob")
            raw = str(alt.get("token"))
            if isinstance(lp, (int, float)) and (text in pos or text in neg) \
                    and raw not in seen:
                seen[raw] = math.exp(lp)  # one count per distinct token string
        p_pos = sum(v for k, v in seen.items() if _token_text(k) in pos)
        p_neg = sum(v for k, v in seen.items() if _token_text(k) in neg)
        if p_pos + p_neg <= 0:
            return None
        return p_pos / (p_pos + p_neg)
    return None



def single_answer(answers: Sequence[Answer | str | None]) -> Answer | None:
    """The one answer of a one-call family (None when the call returned nothing)."""
    return as_answer(answers[0]) if answers else None


def answer_lines(text: str) -> list[str]:
    """The non-empty lines of an answer, stripped, markdown emphasis taken off."""
    return [line.strip().strip("*_`").strip() for line in text.splitlines() if line.strip()]
