"""mhsafety: dialogue safety for mental-health support (Qiu et al., NLPCC 2023) as a toolkit."""

from __future__ import annotations

__version__ = "0.1.0"

from .data import Example, Turn, load_examples, parse_turns, write_examples
from .metrics import RunMetrics, SystemMetrics, aggregate_runs, compute_metrics
from .records import PredictionRecord, read_records, write_records
from .taxonomy import CATEGORIES, LABEL_NAMES, NODES, Label

__all__ = [
    "CATEGORIES",
    "LABEL_NAMES",
    "NODES",
    "Example",
    "Label",
    "PredictionRecord",
    "RunMetrics",
    "SystemMetrics",
    "Turn",
    "__version__",
    "aggregate_runs",
    "compute_metrics",
    "load_examples",
    "parse_turns",
    "read_records",
    "write_examples",
    "write_records",
]
