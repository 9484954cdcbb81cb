"""LLM judges over any OpenAI-compatible chat-completions API.

``run_judge(examples, out_dir, JudgeSettings(model=..., base_url=...))`` labels items round
after round, resumably; ``parse_tolerant`` / ``parse_paper`` turn answers into labels;
``load_template`` and ``plan_shots`` build the prompts. The classifier-interface wrapper is
``mhsafety.judge.classifier.JudgeClassifier`` (kind ``judge``), and
``mhsafety.judge.fakeserver`` is a local OpenAI-compatible server for tests and dry runs.
"""

from .parse import PARSERS, parse_paper, parse_tolerant
from .prompts import PromptTemplate, load_template, plan_shots
from .runner import JudgeResult, JudgeSettings, format_summary, run_judge

__all__ = [
    "PARSERS",
    "JudgeResult",
    "JudgeSettings",
    "PromptTemplate",
    "format_summary",
    "load_template",
    "parse_paper",
    "parse_tolerant",
    "plan_shots",
    "run_judge",
]
