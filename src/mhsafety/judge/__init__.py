"""LLM judges over any OpenAI-compatible chat-completions API.

``judge_examples(examples, JudgeSettings(model=..., base_url=...))`` labels items in memory
(no file touched) and returns a :class:`Judgement` (predictions with abstentions and their
reasons, records per round, each request's outcome); ``run_judge(examples, out_dir,
settings)`` does the same resumably in a folder (log, lock, records, summary).
``ChatClient`` / ``chat`` send any chat messages to an endpoint with the judge's retries and
request shapes, over a transport (:mod:`mhsafety.judge.transport`). ``parse_tolerant`` /
``parse_paper`` turn answers into labels; ``load_template`` and ``plan_shots`` build the
prompts. The classifier-interface wrapper is ``mhsafety.judge.classifier.JudgeClassifier``
(kind ``judge``). Test fakes (a local OpenAI-compatible server, an in-process transport)
live in :mod:`mhsafety.testing`.
"""

from .client import Answer, ChatClient, Failure, FatalAPIError, achat, chat
from .core import Judgement, ajudge_examples, judge_examples
from .parse import PARSERS, parse_paper, parse_tolerant
from .prompts import PromptTemplate, load_template, plan_shots
from .runner import JudgeResult, JudgeSettings, format_summary, run_judge
from .transport import Transport

__all__ = [
    "PARSERS",
    "Answer",
    "ChatClient",
    "Failure",
    "FatalAPIError",
    "JudgeResult",
    "JudgeSettings",
    "Judgement",
    "PromptTemplate",
    "Transport",
    "achat",
    "ajudge_examples",
    "chat",
    "format_summary",
    "judge_examples",
    "load_template",
    "parse_paper",
    "parse_tolerant",
    "plan_shots",
    "run_judge",
]
