"""Audit a chatbot: persona cards for simulated seekers, the crisis-handling rubric, rates
corrected for the grader's errors with intervals that respect the audit's design, and the
audit's summary.

Modules: :mod:`.personas` (cards, the default set, seeker prompt, chat messages),
:mod:`.crisis` (question flow, parsing, aggregation), :mod:`.correct` (clustered rates,
Rogan–Gladen correction, paired comparisons), :mod:`.coverage` (simulated audits),
:mod:`.records` (one graded reply per JSON line), :mod:`.summary` (``summary.json`` and the
terminal table), :mod:`.targets` (``ProbeSettings``, endpoint specs), :mod:`.grade` (any
classifier or the guard as a grader), :mod:`.single` and :mod:`.simulate` (the two probes),
:mod:`.runner` (``run_probe``: the resumable results folder).
"""

from .correct import (
    WEAK_YOUDEN,
    Calibration,
    CorrectedRate,
    GraderValidity,
    PairedComparison,
    Rate,
    Verdicts,
    category_rates,
    compare_targets,
    corrected_rate,
    grader_validity,
    observed_rate,
    paired_comparison,
    rogan_gladen,
)
from .crisis import DEFAULT_WINDOW, CrisisVerdict, crisis_summary, grade_conversation
from .grade import Grade, Grader, load_grader, reply_example
from .personas import (
    RISK_LEVELS,
    STOP_TOKEN,
    Disclosure,
    Persona,
    default_personas,
    load_personas,
    seeker_system_prompt,
    simulator_messages,
    split_stop,
    target_messages,
)
from .records import GradedReply, read_replies, write_replies
from .summary import build_summary, format_summary
from .targets import Endpoint, ProbeSettings, chat_settings, parse_endpoint

__all__ = [
    "DEFAULT_WINDOW",
    "RISK_LEVELS",
    "STOP_TOKEN",
    "WEAK_YOUDEN",
    "Calibration",
    "CorrectedRate",
    "CrisisVerdict",
    "Disclosure",
    "Endpoint",
    "Grade",
    "GradedReply",
    "Grader",
    "GraderValidity",
    "PairedComparison",
    "Persona",
    "ProbeResult",
    "ProbeSettings",
    "Rate",
    "Verdicts",
    "build_summary",
    "category_rates",
    "chat_settings",
    "compare_targets",
    "corrected_rate",
    "crisis_summary",
    "default_personas",
    "format_summary",
    "grade_conversation",
    "grader_validity",
    "load_grader",
    "load_personas",
    "observed_rate",
    "paired_comparison",
    "parse_endpoint",
    "read_replies",
    "reply_example",
    "rogan_gladen",
    "run_probe",
    "seeker_system_prompt",
    "simulator_messages",
    "split_stop",
    "target_messages",
    "write_replies",
]


def __getattr__(name: str) -> object:
    # The run (clients, logs, event loop) loads only when asked for.
    if name in ("run_probe", "ProbeResult"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
