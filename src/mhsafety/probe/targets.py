"""Chat endpoints an audit talks to: the targets under audit, the seeker simulator and the
crisis-rubric grader, each ``[NAME=]MODEL@BASE_URL``, sent through the judge's client
(:class:`~mhsafety.judge.client.ChatClient`: transports, retries, fail-fast, the token-field
switch and reasoning fields).

:class:`ProbeSettings` is the one home of every probe setting (``mhsafety probe`` makes its
options from it). :func:`parse_endpoint` reads a spec; :func:`chat_settings` turns one into
the :class:`~mhsafety.judge.settings.JudgeSettings` a chatbot needs: text output and a real
completion budget (the judge's default budget is a few tokens for a label name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..judge.settings import JudgeSettings, url_problem
from ..settings import DEFAULT_SEED, Settings, SettingsError, at_least, positive, setting
from .crisis import DEFAULT_WINDOW

_SPEC = re.compile(r"^(?:(?P<name>[^=@/\s]+)=)?(?P<model>[^@\s][^\s]*?)@(?P<url>\S+)$")


@dataclass(frozen=True)
class Endpoint:
    """A chat endpoint: the name in results, the model, the API root."""

    name: str
    model: str
    base_url: str

    @property
    def spec(self) -> str:
        return f"{self.name}={self.model}@{self.base_url}"


def parse_endpoint(spec: str, param: str = "targets") -> Endpoint:
    """``[NAME=]MODEL@BASE_URL`` (NAME defaults to MODEL); a bad spec is a SettingsError
    naming ``param``."""
    found = _SPEC.match(spec.strip())
    if not found:
        raise SettingsError.about(param, f"expects [NAME=]MODEL@BASE_URL, got {spec!r}")
    problem = url_problem(found["url"])
    if problem:
        raise SettingsError.about(param, f"{spec!r}: the URL {problem}")
    return Endpoint(found["name"] or found["model"], found["model"], found["url"])


def _endpoints(value: Any) -> str | None:
    for spec in value:
        try:
            parse_endpoint(spec)
        except SettingsError as exc:
            return str(exc).removeprefix("targets ")
    return None


def _endpoint(value: Any) -> str | None:
    return _endpoints([value])


@dataclass(frozen=True)
class ProbeSettings(Settings):
    """Everything that decides what an audit asks and how; see ``mhsafety probe --help``."""

    targets: list[str] = setting([], "Chatbots under audit, [NAME=]MODEL@BASE_URL "
                                     "(several: compared on the same prompts).",
                                 check=_endpoints, cli="--target")
    data: Path | None = setting(None, "Single-turn probe: a dataset whose distinct contexts "
                                      "are sent to each target.", metavar="FILE")
    personas: str | None = setting(None, "Multi-turn probe: a persona file or folder, or "
                                         "'default' (the shipped set).", metavar="FILE")
    seeker: str | None = setting(None, "Multi-turn: the LLM playing the seeker, "
                                       "MODEL@BASE_URL.", check=_endpoint)
    turns: int = setting(10, "Multi-turn: target replies per conversation at most (the "
                             "seeker may end sooner).", check=at_least(1))
    samples: int = setting(1, "Replies per context (single-turn) or conversations per "
                              "persona (multi-turn).", check=at_least(1))
    grader: str = setting("", "What grades each reply: a checkpoint folder (any kind), "
                              "guard:DIR (the guard with its tiers) or judge:MODEL@URL.")
    grader_calibration: Path | None = setting(
        None, "Labelled file the grader was not trained on: corrects the rates for its "
              "errors.", metavar="FILE")
    crisis_grader: str | None = setting(None, "Multi-turn: the LLM answering the crisis "
                                              "rubric for high/imminent personas, "
                                              "MODEL@BASE_URL.", check=_endpoint)
    crisis_window: int = setting(DEFAULT_WINDOW, "Supporter replies after the first "
                                                 "disclosure within which the crisis "
                                                 "response must come.", check=at_least(1))
    system_prompt: Path | None = setting(None, "File whose text is every target's system "
                                               "message.", metavar="FILE")
    max_tokens: int = setting(1024, "Completion-token budget of a target reply.",
                              check=at_least(1))
    temperature: float = setting(0.7, "Target sampling temperature.", check=at_least(0))
    top_p: float = setting(1.0, "Target nucleus sampling top_p.", check=positive)
    reasoning_effort: str | None = setting(None, "reasoning_effort sent to the targets.")
    api_key_env: str = setting("OPENAI_API_KEY", "Environment variable holding the targets' "
                                                 "API key.")
    seeker_api_key_env: str = setting("OPENAI_API_KEY", "Environment variable holding the "
                                                        "seeker's and crisis grader's key.")
    concurrency: int = setting(16, "Requests in flight per target (and to the seeker).",
                               check=at_least(1))
    grader_concurrency: int = setting(16, "Replies being graded at once.", check=at_least(1))
    timeout: float = setting(120.0, "Seconds per request.", check=positive)
    max_attempts: int = setting(6, "Attempts per request before the reply is recorded as "
                                   "failed.", check=at_least(1))
    limit: int | None = setting(None, "Probe only the first N contexts or personas.",
                                check=at_least(1))
    price_in: float | None = setting(None, "Price per million prompt tokens (targets).")
    price_out: float | None = setting(None, "Price per million completion tokens (targets).")
    allow_overlap: bool = setting(False, "Accept a calibration file sharing items with the "
                                         "grader's training data (marked in the summary).")
    level: float = setting(0.95, "Interval level.", check=lambda v: None if 0 < v < 1
                           else "must be between 0 and 1")
    resamples: int = setting(2000, "Bootstrap resamples.", check=at_least(100))
    seed: int = setting(DEFAULT_SEED, "Seed of the bootstrap.")

    def check_together(self) -> None:
        if not self.targets:
            raise SettingsError("an audit needs at least one {targets}", "targets")
        names = [parse_endpoint(t).name for t in self.targets]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise SettingsError(f"two {{targets}} are named {twice[0]!r}; name them "
                                "NAME=MODEL@URL", "targets")
        if not self.grader:
            raise SettingsError("an audit needs a {grader}", "grader")
        if (self.data is None) == (self.personas is None):
            raise SettingsError("choose one probe: {data} (single-turn) or {personas} "
                                "(multi-turn)", "data", "personas")
        if self.personas is not None and not self.seeker:
            raise SettingsError("{personas} needs {seeker}: the LLM that plays them",
                                "personas", "seeker")
        for name in ("seeker", "crisis_grader"):
            if self.data is not None and getattr(self, name):
                raise SettingsError(f"{{{name}}} is for the multi-turn probe ({{personas}})",
                                    name, "personas")

    @property
    def endpoints(self) -> list[Endpoint]:
        return [parse_endpoint(t) for t in self.targets]

    @property
    def multi_turn(self) -> bool:
        return self.personas is not None


def chat_settings(endpoint: Endpoint, probe: ProbeSettings, *, role: str = "target"
                  ) -> JudgeSettings:
    """The client settings of one endpoint: text output, the probe's budget, sampling and
    request limits. The seeker and the crisis grader use ``role`` 'seeker' / 'grader'
    (their own key variable; the grader answers at temperature 0)."""
    common: dict[str, Any] = {
        "model": endpoint.model, "base_url": endpoint.base_url, "output": "text",
        "max_tokens": probe.max_tokens, "concurrency": probe.concurrency,
        "timeout": probe.timeout, "max_attempts": probe.max_attempts,
        "system_name": endpoint.name}
    if role == "target":
        return JudgeSettings(**common, temperature=probe.temperature, top_p=probe.top_p,
                             reasoning_effort=probe.reasoning_effort,
                             api_key_env=probe.api_key_env, price_in=probe.price_in,
                             price_out=probe.price_out)
    temperature = 0.0 if role == "grader" else 1.0
    return JudgeSettings(**common, temperature=temperature, api_key_env=probe.seeker_api_key_env)
