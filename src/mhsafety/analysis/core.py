"""One call from prediction files to every analysis: intervals, comparisons, error analysis."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics import METRICS
from ..records import Run, load_runs, note_text
from ..tables import percent
from ..taxonomy import LABEL_NAMES
from .mistakes import POOLED, ErrorAnalysis, attach_text, error_analysis
from .nodes import DECISIONS, node_support
from .predictions import INVALID, SystemPredictions, align, from_runs
from .stats import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    EXACT,
    EXACT_BELOW,
    MAJORITY_VOTE,
    TOO_FEW,
    Comparison,
    Interval,
    bootstrap_distribution,
    bootstrap_method,
    bootstrap_weights,
    compare_all,
    confidence_intervals,
    format_p,
    reliability_bins,
)

COMPARE_METRICS = ("accuracy", "f1", "macro_f1", "unsafe_recall")


@dataclass
class SystemSummary:
    system: str
    runs: list[str]
    n_items: int
    n_invalid: int
    has_probs: bool
    notes: list[str]
    sources: list[str]
    intervals: dict[str, Interval]
    # expected calibration error of the top label (10 bins, runs pooled), with probabilities
    ece: float | None = None
    bootstrap: str = "items"  # what its intervals resample: "items" or "runs and items"
    node_n: dict[str, int] = field(default_factory=dict)  # items reaching each decision

    @property
    def coverage(self) -> float:
        """Share of valid answers over all runs."""
        return 1 - self.n_invalid / (self.n_items * len(self.runs))

    def to_dict(self) -> dict[str, Any]:
        return {"system": self.system, "runs": self.runs, "n_items": self.n_items,
                "n_invalid": self.n_invalid, "coverage": self.coverage,
                "has_probs": self.has_probs, "ece": self.ece, "bootstrap": self.bootstrap,
                "node_n": self.node_n, "notes": self.notes,
                "sources": self.sources,
                "intervals": {k: v.to_dict() for k, v in self.intervals.items()}}


@dataclass
class Analysis:
    systems: list[SystemSummary]
    comparisons: list[Comparison]
    errors: ErrorAnalysis
    n_common: int  # items every system covers (used for comparisons)
    left_out: dict[str, int]  # per system: items left out of the cross-system views
    resamples: int
    seed: int
    level: float
    predictions: list[SystemPredictions] = field(default_factory=list, repr=False)

    def summary(self, system: str) -> SystemSummary:
        for s in self.systems:
            if s.system == system:
                return s
        raise KeyError(system)

    def comparison(self, a: str, b: str) -> Comparison:
        """The comparison of ``a`` against ``b`` (oriented as asked: differences are a - b)."""
        for c in self.comparisons:
            if (c.a, c.b) == (a, b):
                return c
            if (c.b, c.a) == (a, b):
                return _flipped(c)
        raise KeyError((a, b))

    def to_dict(self) -> dict[str, Any]:
        return {"resamples": self.resamples, "seed": self.seed, "level": self.level,
                "n_common": self.n_common, "left_out": self.left_out,
                "systems": [s.to_dict() for s in self.systems],
                "comparisons": [c.to_dict() for c in self.comparisons],
                "errors": self.errors.to_dict()}


def bootstrap_p_floor(analysis: Analysis) -> float:
    """The smallest Holm-adjusted bootstrap p-value these resamples can give: 2 / (B + 1)
    times the number of pairs (the first step of Holm's procedure)."""
    return min(1.0, len(analysis.comparisons) * 2 / (analysis.resamples + 1))


def resolution_warning(analysis: Analysis, alpha: float = 0.05) -> str | None:
    floor = bootstrap_p_floor(analysis)
    if analysis.comparisons and floor >= alpha / 2:
        return (f"with {analysis.resamples} resamples and {len(analysis.comparisons)} pairs, "
                f"no Holm-adjusted bootstrap p-value can fall below {floor:.3f}; use more "
                "resamples (10,000 or more) before reading the significance columns")
    return None


def significant_pairs(analysis: Analysis, alpha: float = 0.05) -> list[Comparison]:
    """Pairs whose accuracy differs significantly (paired bootstrap and McNemar, both
    Holm-adjusted below ``alpha``), oriented worse - better, most different first."""
    out = []
    for c in analysis.comparisons:
        if c.significant("accuracy", alpha) and c.holm["mcnemar"] < alpha:
            worse_first = c.bootstrap["accuracy"].difference < 0
            out.append(c if worse_first else analysis.comparison(c.b, c.a))
    return sorted(out, key=lambda c: c.bootstrap["accuracy"].difference)


def _flipped(c: Comparison) -> Comparison:
    from dataclasses import replace

    boot = {m: replace(b, a=b.b, b=b.a, difference=-b.difference, low=-b.high, high=-b.low)
            for m, b in c.bootstrap.items()}
    mc = c.mcnemar
    mc = replace(mc, a=mc.b, b=mc.a, a_only=mc.b_only, b_only=mc.a_only,
                 odds_ratio=(1 / mc.odds_ratio if mc.odds_ratio else float("inf")),
                 accuracy_difference=-mc.accuracy_difference)
    return Comparison(c.b, c.a, c.n, boot, mc, dict(c.holm), set(c.bounded))


def analyze_systems(systems: Sequence[SystemPredictions], resamples: int = DEFAULT_RESAMPLES,
                    seed: int = DEFAULT_SEED, level: float = DEFAULT_LEVEL,
                    compare: Sequence[str] = COMPARE_METRICS, top_k: int = 10,
                    resample_runs: bool = True,
                    on_progress: Callable[[int, int, str], None] | None = None) -> Analysis:
    """Intervals for every system, every pairwise comparison, and the error analysis.

    With ``resample_runs`` (the default) a system with several runs is bootstrapped over
    runs and items (see :mod:`.stats`); without, over items only. ``on_progress(done,
    total, info)`` hears each step (a system bootstrapped, the comparisons, the errors).
    """
    total = len(systems) + 2
    report = on_progress or (lambda done, total, info: None)
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    joint = align(systems)
    weights_by_n: dict[int, list[np.ndarray]] = {}

    def weights(n: int) -> list[np.ndarray]:
        if n not in weights_by_n:
            weights_by_n[n] = bootstrap_weights(n, resamples, seed)
        return weights_by_n[n]

    def distribution(s: SystemPredictions) -> dict[str, np.ndarray]:
        return bootstrap_distribution(s, seed=seed, weights=weights(s.n_items),
                                      resample_runs=resample_runs)

    aligned_dist = []
    for i, s in enumerate(joint.systems, start=1):
        aligned_dist.append(distribution(s))
        report(i, total, f"bootstrap {s.system}")
    summaries = []
    for own, shared, dist in zip(systems, joint.systems, aligned_dist):
        if joint.left_out[own.system]:
            shared, dist = own, distribution(own)
        summaries.append(SystemSummary(
            own.system, list(own.runs), own.n_items, int((own.pred == INVALID).sum()),
            own.probs is not None, own.notes, own.sources,
            confidence_intervals(shared, level=level, distribution=dist,
                                 resample_runs=resample_runs),
            None if own.probs is None else reliability_bins(own.probs, own.gold)[3],
            bootstrap_method(own, resample_runs), node_support(own.gold)))
    comparisons = compare_all(joint.systems, aligned_dist, compare, level)
    report(total - 1, total, "comparisons")
    errors = error_analysis(systems, joint.systems, top_k)
    report(total, total, "error analysis")
    if any(joint.left_out.values()):
        errors.notes.append(
            f"cross-system views use the {len(joint.ids)} items every system covers; left out: "
            + ", ".join(f"{s}: {n}" for s, n in joint.left_out.items() if n))
    return Analysis(summaries, comparisons, errors, len(joint.ids), joint.left_out, resamples,
                    seed, level, list(systems))


def analyze(paths: Sequence[str | os.PathLike[str]], resamples: int = DEFAULT_RESAMPLES,
            seed: int = DEFAULT_SEED, level: float = DEFAULT_LEVEL,
            data: str | os.PathLike[str] | None = None, top_k: int = 10,
            resample_runs: bool = True,
            runs: Mapping[str, Sequence[Run]] | None = None,
            on_progress: Callable[[int, int, str], None] | None = None) -> Analysis:
    """Analyse prediction files or folders of ``*.preds.jsonl``.

    With ``data`` (the dataset the runs were made on), items every system misses carry
    their context and response. ``runs`` (what :func:`mhsafety.records.load_runs` returned
    for ``paths``) saves reading the files again; ``on_progress`` as in
    :func:`analyze_systems`.
    """
    systems = from_runs(runs if runs is not None else load_runs(paths))
    result = analyze_systems(systems, resamples, seed, level, top_k=top_k,
                             resample_runs=resample_runs, on_progress=on_progress)
    if data is not None:
        from ..data import load_examples

        examples = {ex.id if ex.id is not None else str(i): ex
                    for i, ex in enumerate(load_examples(Path(data)))}
        found = attach_text(result.errors.missed_by_all, examples)
        if found < len(result.errors.missed_by_all):
            result.errors.notes.append(
                f"{len(result.errors.missed_by_all) - found} missed item ids are not in {data}")
    return result


# ------------------------------------------------------------------------- text rendering


def _pct(x: float | None, decimals: int = 1) -> str:
    return percent(x, decimals)


def format_interval(iv: Interval, decimals: int = 1) -> str:
    """``estimate [low, high]``, with a trailing * for an exact (Clopper–Pearson) interval."""
    mark = "*" if iv.method in (EXACT, TOO_FEW) else ""
    return (f"{_pct(iv.estimate, decimals)} [{_pct(iv.low, decimals)}, "
            f"{_pct(iv.high, decimals)}]{mark}")


EXACT_TEXT = (f"* a class or node with fewer than {EXACT_BELOW} items (or a precision or "
              f"recall over fewer than {EXACT_BELOW} predictions or items): exact "
              "(Clopper–Pearson) interval, and none (–) for its F1; elsewhere a resample with "
              "no prediction of a class leaves its precision undefined (skipped), not 0")


def p_text(c: Comparison, test: str) -> str:
    """The Holm-adjusted p-value of one test of a comparison, "< x" when it is a bound."""
    return format_p(c.holm[test], test in c.bounded)


def system_title(s: SystemSummary) -> str:
    return s.system + (f" [{'; '.join(note_text(n) for n in s.notes)}]" if s.notes else "")


def bootstrap_text(analysis: Analysis) -> str:
    """One sentence saying what the intervals resample."""
    methods = {s.bootstrap for s in analysis.systems}
    text = (f"{analysis.resamples} resamples, seed {analysis.seed}; systems with several runs "
            "resample their runs and then the items, so run-to-run variance widens the "
            "interval" if "runs and items" in methods
            else f"{analysis.resamples} item resamples, seed {analysis.seed}")
    return text


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"
              for row in rows]
    return "\n".join(lines)


def _diff(result, decimals: int) -> str:
    return (f"{_pct(result.difference, decimals)} [{_pct(result.low, decimals)}, "
            f"{_pct(result.high, decimals)}]")


# (score, title) of the summary's columns; titles from the scores' entries in METRICS.
SUMMARY_COLUMNS = (("accuracy", METRICS["accuracy"].title), ("f1", METRICS["f1"].label),
                   ("macro_f1", METRICS["macro_f1"].title),
                   ("unsafe_recall", METRICS["unsafe_recall"].title),
                   ("unsafe_precision", METRICS["unsafe_precision"].title))


def format_analysis(analysis: Analysis, decimals: int = 1, max_missed: int = 20) -> str:
    """The whole analysis as Markdown (what ``mhsafety analyze`` prints)."""
    level = f"{100 * analysis.level:g} %"
    out = [f"## Scores with {level} bootstrap intervals",
           (f"Percent, mean over runs [interval]; {bootstrap_text(analysis)}. Weighted F1: "
            "support-weighted; Unsafe R/P: recall and precision of the unsafe side (every "
            "label but Safe Response). Invalid answers count as the most harmful wrong "
            "answer; Coverage is the share of valid answers."), ""]
    with_invalid = any(s.n_invalid for s in analysis.systems)
    out.append(_md_table(
        ["System", "Runs", "Items", *[t for _, t in SUMMARY_COLUMNS], "Invalid",
         *(["Coverage"] if with_invalid else [])],
        [[system_title(s), str(len(s.runs)),
          str(s.n_items), *[format_interval(s.intervals[k], decimals) for k, _ in SUMMARY_COLUMNS],
          str(s.n_invalid), *([_pct(s.coverage, decimals)] if with_invalid else [])]
         for s in analysis.systems]))
    calibrated = [s for s in analysis.systems if s.ece is not None]
    if calibrated:
        out += ["", "Calibration (expected calibration error of the top label, 10 bins, runs "
                "pooled): " + ", ".join(f"{s.system} {_pct(s.ece)} %" for s in calibrated)]
    support = {c.name: c.n_items for c in next(iter(analysis.errors.coverage.values()))}
    out += ["", "## Recall per class", f"Percent, mean over runs [interval]. {EXACT_TEXT}.",
            ""]
    out.append(_md_table(
        ["System", *[f"{name} ({support[name]})" for name in LABEL_NAMES]],
        [[s.system, *[format_interval(s.intervals[f"recall:{n}"], decimals) for n in LABEL_NAMES]]
         for s in analysis.systems]))
    out += ["", "## Items of each class found",
            "right in at least one run / in every run / in no run, of the class's items.", ""]
    out.append(_md_table(
        ["System", *[f"{name} ({support[name]})" for name in LABEL_NAMES]],
        [[system, *[f"{c.right_any} / {c.right_all} / {c.right_none}" for c in cov]]
         for system, cov in analysis.errors.coverage.items()]))
    out += ["", "## Per-node scores",
            ("The four decisions of the sequential framework, each scored on the items whose "
             f"gold label reaches it: percent, mean over runs [{level} interval]; n = items "
             f"reaching the decision. {EXACT_TEXT}."), ""]
    out.append(_md_table(
        ["System", "Decision", "n", "P", "R", "F1"],
        [[s.system, d.title, str(s.node_n.get(d.key, "–")),
          *[format_interval(s.intervals[f"{d.key}:{m}"], decimals)
            for m in ("precision", "recall", "f1")]]
         for s in analysis.systems for d in DECISIONS]))
    if analysis.comparisons:
        out += ["", "## Pairwise comparisons",
                (f"A − B in points with its {level} paired-bootstrap interval (runs and items "
                 f"resampled where there are several runs); p: bootstrap, Holm-adjusted over "
                 f"the {len(analysis.comparisons)} pairs (\"< x\": no resample crossed zero, "
                 f"x is the resampling floor). McNemar on {MAJORITY_VOTE} correctness "
                 "(exact binomial), A-only / B-only items."), ""]
        rows = []
        for c in analysis.comparisons:
            acc, f1 = c.bootstrap["accuracy"], c.bootstrap["f1"]
            m = c.mcnemar
            rows.append([
                f"{c.a} vs {c.b}",
                _diff(acc, decimals), p_text(c, "accuracy"),
                _diff(f1, decimals), p_text(c, "f1"),
                f"{m.a_only} / {m.b_only}", format_p(m.p_value), p_text(c, "mcnemar"),
                "yes" if c.significant("accuracy") and c.holm["mcnemar"] < 0.05 else "no"])
        out.append(_md_table(["A vs B", "ΔAcc", "p (Holm)", "ΔF1", "p (Holm)",
                              "McNemar (majority vote) A/B", "p", "p (Holm)", "significant"],
                             rows))
        warning = resolution_warning(analysis)
        if warning:
            out += ["", f"Warning: {warning}."]
        verdicts = significant_pairs(analysis)
        out += ["", "Significantly worse in accuracy (bootstrap and McNemar, Holm < 0.05):"
                if verdicts else "No pair differs significantly in accuracy."]
        out += [f"- {c.a} < {c.b}: {_diff(c.bootstrap['accuracy'], decimals)} points, "
                f"p {p_text(c, 'accuracy')} (bootstrap), "
                f"{p_text(c, 'mcnemar')} (McNemar, majority vote)" for c in verdicts]
    errors = analysis.errors
    out += ["", "## Confusions that account for most errors",
            "Errors summed over runs; share of the errors and cumulative share.", ""]
    for system, pairs in errors.confusions.items():
        out.append(f"**{system}**: " + "; ".join(
            f"{p.gold_name} → {p.pred_name} {p.count} ({_pct(p.share_of_errors, 0)} %, "
            f"cum. {_pct(p.cumulative_share, 0)} %)" for p in pairs[:5]))
        out.append("")
    out += ["## Run-to-run agreement", ""]
    out.append(_md_table(
        ["System", "Runs", "Items where runs disagree", "Mean pairwise agreement",
         "Fleiss' κ", "Right in some runs only"],
        [[a.system, str(a.n_runs), f"{a.items_disagree} ({_pct(a.share_disagree)} %)",
          f"{_pct(a.mean_pairwise_agreement)} %" if a.mean_pairwise_agreement is not None
          else "–", f"{a.fleiss_kappa:.3f}" if a.fleiss_kappa is not None else "–",
          str(a.items_flipping_correctness)] for a in errors.agreement]))
    missed = errors.missed_by_all
    out += ["", f"## Items every system misses ({len(missed)} of {analysis.n_common})", ""]
    out.append("By gold class: " + ", ".join(f"{name} {n}" for name, n
                                             in errors.missed_by_class.items() if n))
    for item in missed[:max_missed]:
        said = "; ".join(f"{s}: " + ", ".join(f"{k} ×{v}" for k, v in preds.items())
                         for s, preds in item.predictions.items())
        text = f" — {' ⏎ '.join(item.response.splitlines())}" if item.response else ""
        out.append(f"- item {item.id} (gold {item.gold_name}){text}: {said}")
    if len(missed) > max_missed:
        out.append(f"- … {len(missed) - max_missed} more (all in the JSON output)")
    for note in errors.notes:
        out.append(f"\nNote: {note}")
    return "\n".join(out) + "\n"


__all__ = [
    "COMPARE_METRICS",
    "POOLED",
    "Analysis",
    "SystemSummary",
    "analyze",
    "analyze_systems",
    "format_analysis",
    "format_interval",
    "format_p",
    "p_text",
]
