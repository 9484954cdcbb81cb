"""Audit a chatbot: persona cards for simulated seekers, the crisis-handling rubric, rates
corrected for the grader's errors with intervals that respect the audit's design, and the
audit's summary.

Modules: :mod:`.personas` (cards, the default set, seeker prompt, chat messages),
:mod:`.crisis` (question flow, parsing, aggregation), :mod:`.correct` (clustered rates,
Rogan–Gladen correction, paired comparisons), :mod:`.coverage` (simulated audits),
:mod:`.records` (one graded reply per JSON line), :mod:`.summary` (``summary.json`` and the
terminal table).
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

__all__ = [
    "DEFAULT_WINDOW", "RISK_LEVELS", "STOP_TOKEN", "WEAK_YOUDEN", "Calibration",
    "CorrectedRate", "CrisisVerdict", "Disclosure", "GradedReply", "GraderValidity",
    "PairedComparison", "Persona", "Rate", "Verdicts", "build_summary", "category_rates",
    "compare_targets", "corrected_rate", "crisis_summary", "default_personas",
    "format_summary", "grade_conversation", "grader_validity", "load_personas",
    "observed_rate", "paired_comparison", "read_replies", "rogan_gladen",
    "seeker_system_prompt", "simulator_messages", "split_stop", "target_messages",
    "write_replies",
]
