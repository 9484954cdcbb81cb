"""Statistics and error analysis over prediction records.

``analyze(paths)`` is the one-call entry point; the pieces (bootstrap intervals, paired
tests, coverage per class, missed items, confusions, run agreement) are public too.
"""

from .core import (
                   Analysis,
                   SystemSummary,
                   analyze,
                   analyze_systems,
                   format_analysis,
                   significant_pairs,
)
from .errors import (
                   ClassCoverage,
                   ConfusionPair,
                   ErrorAnalysis,
                   MissedItem,
                   RunAgreement,
                   class_coverage,
                   error_analysis,
                   missed_by_all,
                   run_agreement,
                   top_confusions,
)
from .predictions import Alignment, SystemPredictions, align, from_runs, system_predictions
from .stats import (
                   Comparison,
                   Interval,
                   McNemar,
                   PairedBootstrap,
                   bootstrap_distribution,
                   bootstrap_indices,
                   bootstrap_weights,
                   compare_all,
                   confidence_intervals,
                   holm,
                   mcnemar,
                   paired_bootstrap,
                   point_scores,
                   scores_from_confusion,
)

__all__ = [
    "Alignment", "Analysis", "ClassCoverage", "Comparison", "ConfusionPair", "ErrorAnalysis",
    "Interval", "McNemar", "MissedItem", "PairedBootstrap", "RunAgreement", "SystemPredictions",
    "SystemSummary", "align", "analyze", "analyze_systems", "bootstrap_distribution",
    "bootstrap_indices", "bootstrap_weights", "class_coverage", "compare_all",
    "confidence_intervals", "error_analysis", "format_analysis", "from_runs", "holm", "mcnemar",
    "missed_by_all", "paired_bootstrap", "point_scores", "run_agreement",
    "scores_from_confusion", "significant_pairs", "system_predictions", "top_confusions",
]
