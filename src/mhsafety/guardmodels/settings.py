"""Settings of the guard-model kinds: one frozen dataclass per family over a shared base.

They derive :class:`mhsafety.settings.Settings`: constructing one checks every field once,
and ``settings.build(cls, values)`` checks untyped input (CLI, JSON, ``--config KEY=VALUE``)
with one-sentence errors naming the field. Nothing here opens a connection: the kinds
(:mod:`.classifier`) send through the judge core's :class:`~mhsafety.judge.ChatClient`, which
reads the endpoint fields (``model``, ``base_url``, the key from ``$api_key_env``, timeout,
attempts, concurrency, client); their defaults are the judge's (one home).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..judge.settings import CLIENTS, JudgeSettings, url_problem
from ..settings import Settings, at_least, defaults, positive, setting
from ..taxonomy import CATEGORIES

_JUDGE = defaults(JudgeSettings)  # the endpoint defaults every chat client shares

REASONING_EFFORTS = ("low", "medium", "high")
# The guard policy's actions other than "allow" (guard.policy.ACTIONS sits above this floor;
# tests/guardmodels/test_settings.py keeps the two in step).
UNSAFE_ACTIONS = ("block", "regenerate", "handover")
# The seven unsafe labels, by name, in label order: what the policy lists default to.
UNSAFE_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES if not c.safe)


def _label_names(values: tuple[str, ...]) -> str | None:
    known = {c.name.casefold(): c for c in CATEGORIES if not c.safe}
    unknown = [v for v in values if v.casefold() not in known]
    if unknown:
        return (f"names unknown unsafe categories {', '.join(map(repr, unknown))}; expected "
                f"some of: {', '.join(UNSAFE_NAMES)}")
    if not values:
        return "must name at least one unsafe category"
    return None


def _url_check(url: str) -> str | None:
    return url_problem(url) if url else None  # empty: given later (the spec)


@dataclass(frozen=True)
class GuardModelSettings(Settings):
    """What every guard-model kind shares."""

    family: ClassVar[str] = ""

    model: str = setting("", "Model name as the server knows it (e.g. Qwen/Qwen3Guard-Gen-4B).")
    base_url: str = setting("", "OpenAI-compatible API root of the server, e.g. "
                                "http://localhost:8000/v1 (vLLM) or http://localhost:11434/v1 "
                                "(Ollama).", check=_url_check)
    api_key_env: str = setting("OPENAI_API_KEY", "Name of the environment variable holding "
                                                 "the API key (the key itself is never a "
                                                 "setting).")
    max_tokens: int = setting(64, "Token budget of one answer.", check=at_least(1))
    logprobs: bool = setting(True, "Ask for the first token's log-probabilities, which give "
                                   "P(unsafe) where the family answers with a verdict token.")
    top_logprobs: int = setting(5, "Alternatives per token when asking for log-probabilities.",
                                check=at_least(1))
    unsafe_action: str = setting("handover", "What a guard tier does with this kind's "
                                             "'unsafe' when it names no taxonomy label; the "
                                             "category stays unknown.",
                                 choices=UNSAFE_ACTIONS)
    concurrency: int = setting(_JUDGE["concurrency"], "Requests in flight.", check=at_least(1))
    timeout: float = setting(_JUDGE["timeout"], "Seconds per request.", check=positive)
    max_attempts: int = setting(_JUDGE["max_attempts"], "Attempts per request before the item "
                                                        "abstains.", check=at_least(1))
    client: str = setting(_JUDGE["client"], "HTTP client: the openai SDK, the built-in fast "
                                            "one, or auto (SDK for https://, fast for "
                                            "http://).", choices=CLIENTS)


@dataclass(frozen=True)
class Qwen3GuardSettings(GuardModelSettings):
    family: ClassVar[str] = "qwen3guard"

    strictness: str = setting("strict", "How 'Safety: Controversial' counts: strict = unsafe, "
                                        "loose = safe (the model card's two readings).",
                              choices=("strict", "loose"))


@dataclass(frozen=True)
class LlamaGuardSettings(GuardModelSettings):
    family: ClassVar[str] = "llamaguard"

    categories: str = setting(
        "taxonomy", "Category list in the prompt: taxonomy = our seven unsafe categories as "
                    "custom categories S1-S7 (sent as chat_template_kwargs; Llama Guard often "
                    "ignores custom categories, PurpleLlama issues #7 and #37), model = its own "
                    "default hazard list (binary view only).", choices=("taxonomy", "model"))


@dataclass(frozen=True)
class ShieldGemmaSettings(GuardModelSettings):
    family: ClassVar[str] = "shieldgemma"

    max_tokens: int = setting(8, "Token budget of one answer (the verdict is the first "
                                 "token).", check=at_least(1))
    policies: tuple[str, ...] = setting(UNSAFE_NAMES, "Unsafe categories asked about, one "
                                        "call each; the reply is unsafe if any answer is Yes "
                                        "and P(unsafe) is the largest P(Yes).",
                                        check=_label_names)
    prompt: str = setting("template", "How a policy reaches the model: template = chat turns "
                                      "plus chat_template_kwargs guideline (vLLM with the "
                                      "model's own template); text = the model card's prompt "
                                      "pattern as one message (a server whose template passes "
                                      "text through).", choices=("template", "text"))


@dataclass(frozen=True)
class WildGuardSettings(GuardModelSettings):
    family: ClassVar[str] = "wildguard"

    logprobs: bool = setting(False, "WildGuard gives no probability; log-probabilities are "
                                    "not read.")


@dataclass(frozen=True)
class PolicySettings(GuardModelSettings):
    family: ClassVar[str] = "policy"

    max_tokens: int = setting(4096, "Token budget of one answer, reasoning included.",
                              check=at_least(1))
    logprobs: bool = setting(False, "The policy kind gives no probability.")
    reasoning_effort: str | None = setting(None, "reasoning_effort sent to reasoning models "
                                                 "(gpt-oss-safeguard, Nemotron reasoning): "
                                                 "low, medium or high; none leaves it out.",
                                           choices=(None, *REASONING_EFFORTS))
    thinking: bool | None = setting(None, "chat_template_kwargs enable_thinking, for models "
                                          "whose template switches reasoning on or off "
                                          "(Nemotron Content Safety Reasoning); none leaves "
                                          "it out.")
    output: str = setting("text", "Answer asked for: text (the label's name on the first "
                                  "line) or json ({\"label\": NAME, \"rationale\": ...}).",
                          choices=("text", "json"))
    examples: bool = setting(True, "Include our short worked examples in the policy.")
    system_role: bool = setting(True, "Send the policy as the system message (what "
                                      "gpt-oss-safeguard expects) rather than in the user "
                                      "message.")


SETTINGS: dict[str, type[GuardModelSettings]] = {
    cls.family: cls for cls in (Qwen3GuardSettings, LlamaGuardSettings, ShieldGemmaSettings,
                                WildGuardSettings, PolicySettings)}
