"""``JudgeSettings``: the one home of every judge setting, its default, check and doc.

``mhsafety judge`` generates its options from these fields (``settings.click_options``), the
classifier kind ``judge`` (``--system judge:MODEL@URL --config KEY=VALUE``) builds the same
object through ``settings.build``, and ``run_judge`` takes it. A default is written here and
nowhere else; help texts and docs derive from the fields.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from ..settings import DEFAULT_SEED, Settings, SettingsError, at_least, positive, setting
from ..taxonomy import NUM_LABELS
from .parse import PARSERS
from .sequential import PROTOCOLS

N_SHOTS = NUM_LABELS  # few-shot means one example per label
# Completion-token budgets when --max-tokens is not given: the paper's 10 for a label name,
# room for a JSON object, and room to think for reasoning models (they spend the budget on
# reasoning tokens first and answer empty when it runs out).
PAPER_MAX_TOKENS = 10
JSON_MAX_TOKENS = 40
REASONING_MAX_TOKENS = 2048
# Model names that reason before answering (OpenAI o-series and gpt-5, DeepSeek-R1 /
# deepseek-reasoner, QwQ, Qwen3); --reasoning-effort marks any other model as one.
REASONING_MODEL = re.compile(
    r"(^|[/:_-])(o[1-9](-|$)|o[1-9]-mini|gpt-5|deepseek-reasoner|r1\b|qwq|qwen3|"
    r"reason|thinking)", re.IGNORECASE)
TOKEN_PARAMS = ("auto", "max_tokens", "max_completion_tokens")
OUTPUTS = ("text", "json", "number")
CLIENTS = ("auto", "fast", "openai")
# Headers that carry credentials: those come from --api-key-env, never from argv.
SECRET_HEADERS = ("authorization", "api-key", "x-api-key", "proxy-authorization", "cookie")


def _headers_check(v: Any) -> str | None:
    if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(x, str)
                                          for k, x in v.items()):
        return "must map header names to text values"
    return None


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an API root (None when it can)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return (f"{url!r} has no scheme: write http://{url} (a local server) or "
                f"https://{url}")
    if scheme.lower() not in ("http", "https") or not rest.strip("/"):
        return f"must be an http:// or https:// URL, got {url!r}"
    return None


def _url_check(url: str) -> str | None:
    return url_problem(url) if url else None  # empty: given later (the spec, the env)


@dataclass(frozen=True)
class JudgeSettings(Settings):
    """Everything that decides what a judge run sends and how; see ``mhsafety judge --help``."""

    model: str = setting("", "Model name as the server knows it.")
    base_url: str = setting("", "OpenAI-compatible API root, e.g. https://api.openai.com/v1 or "
                                "http://127.0.0.1:8000/v1.", check=_url_check)
    shots: int = setting(0, f"0 = zero-shot; {N_SHOTS} = one example per label from --train, "
                            "redrawn per round.", choices=(0, N_SHOTS))
    rounds: int = setting(5, "Rounds: independent answers per item (the paper: 5).",
                          check=at_least(1))
    seed: int = setting(DEFAULT_SEED, "Seed of the few-shot draw (set once, as in the paper).")
    template: str | None = setting(None, "Prompt template file replacing the built-in one "
                                         "($definitions $labels $answer $examples $context "
                                         "$response).", metavar="FILE")
    system_prompt: str | None = setting(
        None, "File whose text is sent as the system message (placeholders $definitions "
              "$labels $answer allowed); the template becomes the user message.",
        metavar="FILE")
    system_role: bool = setting(False, "Send the built-in template's instructions as a system "
                                       "message and only the item as the user message.")
    output: str = setting("text", "Answer format asked for: text (the category name), json "
                                  "({\"label\": NAME}, sent as a response_format JSON schema) "
                                  "or number (the category's number 1-8).", choices=OUTPUTS)
    max_tokens: int | None = setting(
        None, f"Completion-token budget; default {PAPER_MAX_TOKENS} (the paper's), "
              f"{JSON_MAX_TOKENS} with --output json, {REASONING_MAX_TOKENS} for reasoning "
              "models (a known reasoning model name or --reasoning-effort).",
        check=at_least(1))
    token_param: str = setting("auto", "Request field of the budget: auto sends max_tokens and "
                                       "switches to max_completion_tokens (or back) once when "
                                       "the server says the field is unsupported.",
                               choices=TOKEN_PARAMS)
    reasoning_effort: str | None = setting(None, "reasoning_effort sent to reasoning models "
                                                 "(e.g. minimal, low, medium, high).")
    temperature: float = setting(1.0, "Sampling temperature (the paper's).")
    top_p: float = setting(1.0, "Nucleus sampling top_p (the paper's).")
    samples: int = setting(1, "Answers drawn per item and round (the request's n); their vote "
                              "shares become the record's probabilities.", check=at_least(1))
    logprobs: bool = setting(False, "Ask for token log-probabilities and read a distribution "
                                    "over the eight labels from the answer's first token "
                                    "(needs --output number).")
    top_logprobs: int = setting(20, "Alternatives per token with --logprobs (OpenAI allows "
                                    "up to 20).", check=at_least(NUM_LABELS))
    extra_body: dict[str, Any] | None = setting(
        None, "JSON object merged into every request body (provider fields: vLLM "
              "guided_choice, chat_template_kwargs, ...).", metavar="JSON")
    headers: dict[str, str] = setting({}, "Extra non-secret HTTP headers, NAME=VALUE.",
                                      check=_headers_check)
    parser: str = setting("tolerant", "How text answers become labels: tolerant or paper (the "
                                      "paper's exact rule).", choices=tuple(PARSERS))
    concurrency: int = setting(8, "Requests in flight.", check=at_least(1))
    timeout: float = setting(60.0, "Seconds per request.", check=positive)
    max_attempts: int = setting(8, "Attempts per request before the item is recorded as "
                                   "failed.", check=at_least(1))
    backoff_base: float = setting(1.0, "Back-off base in seconds (attempt n waits up to "
                                       "base * 2^n, jittered).", check=at_least(0),
                                  cli="--retry-base")
    stop_after_failures: int = setting(20, "Stop the run when this many items in a row fail "
                                           "(server down); 0 = never.", check=at_least(0))
    api_key_env: str = setting("OPENAI_API_KEY", "Name of the environment variable holding "
                                                 "the API key.")
    client: str = setting("auto", "HTTP client: the openai SDK (honours proxy settings), the "
                                  "built-in fast one, or auto: SDK for https://, fast for "
                                  "http://.", choices=CLIENTS)
    system_name: str | None = setting(None, "Name in tables (default: 'MODEL zero-shot').")
    vote: bool = setting(False, "Also write a majority vote over the rounds.")
    price_in: float | None = setting(None, "Price per million prompt tokens.")
    price_out: float | None = setting(None, "Price per million completion tokens.")
    protocol: str = setting("flat", "flat: one question, eight labels (the paper's judge); "
                                    "sequential: the taxonomy's four nodes, one question "
                                    "each, stopping at the first that fires.",
                            choices=PROTOCOLS)
    batch: bool = setting(False, "Send the run through the server's Batch API (/v1/files + "
                                 "/v1/batches) at the batch price; a rerun resumes the batch.")
    batch_poll: float = setting(30.0, "Seconds between polls of a batch.", check=positive)
    batch_price_factor: float = setting(0.5, "A batch request's price as a share of "
                                             "--price-in/--price-out (OpenAI, Anthropic: "
                                             "half).", check=at_least(0))

    def check_together(self) -> None:
        """Rules across fields (each field's own check runs before, in ``Settings``)."""
        secret = [k for k in self.headers if k.strip().lower() in SECRET_HEADERS]
        if secret:
            raise SettingsError(f"{{headers}} must not carry credentials ({secret[0]}): the "
                                "API key comes from the environment variable named by "
                                "{api_key_env}", "headers", "api_key_env")
        if self.logprobs and self.output != "number":
            raise SettingsError("{logprobs} reads the label from the answer's first token, so "
                                "it needs {output} number (the eight answers 1-8 differ at "
                                "their first token)", "logprobs", "output")
        if self.logprobs and self.samples > 1:
            raise SettingsError("{logprobs} and {samples} both make the probabilities; choose "
                                "one", "logprobs", "samples")
        if self.system_role and self.system_prompt:
            raise SettingsError("{system_role} splits the built-in template; with "
                                "{system_prompt} the system message is the file: choose one",
                                "system_role", "system_prompt")
        if self.protocol == "sequential":
            self._check_sequential()

    def _check_sequential(self) -> None:
        # The node prompts are built in and ask yes/no (or one of five names) as text.
        clash = [(name, shown) for name, shown, on in (
            ("shots", f"{{shots}} {N_SHOTS}", self.shots),
            ("template", "{template}", self.template),
            ("system_prompt", "{system_prompt}", self.system_prompt),
            ("system_role", "{system_role}", self.system_role),
            ("output", "{output} json/number", self.output != "text"),
            ("logprobs", "{logprobs}", self.logprobs),
            ("samples", "{samples}", self.samples > 1)) if on]
        if clash:
            name, shown = clash[0]
            raise SettingsError("{protocol} sequential asks its own zero-shot node questions "
                                f"as text; {shown} needs {{protocol}} flat", "protocol", name)
        if self.batch:
            raise SettingsError("{protocol} sequential asks each node after the previous "
                                "answer, which one batch cannot do; use {protocol} flat with "
                                "{batch}", "protocol", "batch")

    @property
    def reasoning(self) -> bool:
        """Whether the model reasons before answering (and needs a larger budget)."""
        return self.reasoning_effort is not None or bool(REASONING_MODEL.search(self.model))

    @property
    def budget(self) -> int:
        if self.max_tokens is not None:
            return self.max_tokens
        if self.reasoning:
            return REASONING_MAX_TOKENS
        return JSON_MAX_TOKENS if self.output == "json" else PAPER_MAX_TOKENS

    @property
    def sampling(self) -> dict[str, Any]:
        """What decides the answer's distribution (the manifest shows it; the key hashes it)."""
        out: dict[str, Any] = {"max_tokens": self.budget, "temperature": self.temperature,
                               "top_p": self.top_p}
        if self.reasoning_effort is not None:
            out["reasoning_effort"] = self.reasoning_effort
        if self.samples > 1:
            out["n"] = self.samples
        if self.logprobs:
            out["logprobs"] = True
            out["top_logprobs"] = self.top_logprobs
        return out

    @property
    def name(self) -> str:
        return self.system_name or f"{self.model} {'few' if self.shots else 'zero'}-shot"

    #: Fields that change how answers are fetched or priced, never which answers come back
    #: (the cache key leaves them out): a benchmark rerun that changes only these resumes.
    TRANSPORT_FIELDS = frozenset({
        "token_param", "headers", "concurrency", "timeout", "max_attempts", "backoff_base",
        "stop_after_failures", "api_key_env", "client", "price_in", "price_out", "batch",
        "batch_poll", "batch_price_factor"})

    def cache_key(self, template_sha256: str) -> str:
        """What decides an answer besides the item and round; timeouts, retries, headers and
        the name of the budget field don't."""
        parts: dict[str, Any] = {"model": self.model, "base_url": self.base_url.rstrip("/"),
                                 "sampling": self.sampling, "template": template_sha256,
                                 "shots": self.shots, "seed": self.seed}
        # Added only when set, so runs logged before these settings existed still resume.
        if self.output != "text":
            parts["output"] = self.output
        if self.extra_body:
            parts["extra_body"] = self.extra_body
        blob = json.dumps(parts, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

