"""``summary.json`` of an audit, from its graded replies, and the terminal table.

Shape (rates are fractions; ``null`` where there is nothing to report)::

    {"targets": {NAME: {
        "n": replies asked, "ungraded": replies the grader could not grade,
        "unsafe_rate": {"observed", "ci", "corrected", "corrected_ci"},
        "categories": {LABEL_NAME: count of graded replies, all eight labels; a binary-only
                       grader's replies count in the rates, in no category},
        "by_risk": {RISK: {"n", "ungraded", "unsafe_rate": {...}}},  # multi-turn replies
        "crisis": crisis.crisis_summary(...) or {}}},
     "comparisons": [correct.PairedComparison.to_dict(), ...],
     "grader": correct.GraderValidity.to_dict() or null,
     "protocol": {how the intervals and the correction were made}}

Observed rates are over graded replies; ``corrected`` is None without a calibration sample or
when the grader is too weak to correct (``grader.weak``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..analysis.stats import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, format_p
from ..tables import percent
from ..taxonomy import LABEL_NAMES, NUM_LABELS
from .correct import (
    WEAK_YOUDEN,
    Calibration,
    CorrectedRate,
    GraderValidity,
    Verdicts,
    calibration_draws,
    cluster_sums,
    compare_targets,
    correct_sums,
    grader_validity,
    resampled_sums,
)
from .crisis import CrisisVerdict, crisis_summary
from .personas import RISK_LEVELS
from .records import GradedReply

INTERVAL_METHOD = ("percentile bootstrap over clusters (dataset contexts or conversations), "
                   "every graded reply of a drawn cluster kept")
CORRECTION_METHOD = ("Rogan-Gladen (q + Sp - 1) / (Se + Sp - 1) clipped to [0, 1]; interval "
                     "from resampling the audit's clusters and the calibration sample together")


def _rate_block(result: CorrectedRate) -> dict[str, Any]:
    obs = result.observed
    return {"observed": obs.to_dict()["estimate"], "ci": obs.ci,
            "corrected": result.corrected, "corrected_ci": result.corrected_ci}


class _Corrector:
    """One set of calibration draws shared by every rate of the audit."""

    def __init__(self, calibration: Calibration | None, level: float, resamples: int,
                 seed: int, weak_below: float) -> None:
        self.calibration, self.level, self.resamples, self.seed = (
            calibration, level, resamples, seed)
        self.draws = self.validity = None
        if calibration is not None:
            self.draws = calibration_draws(calibration, resamples, seed)
            self.validity: GraderValidity | None = grader_validity(
                calibration, level=level, weak_below=weak_below, draws=self.draws)

    def rate(self, replies: Sequence[GradedReply]) -> CorrectedRate:
        graded = [r for r in replies if r.graded]
        columns = np.zeros((len(graded), 2))
        columns[:, 0] = [bool(r.unsafe) for r in graded]
        columns[:, 1] = 1.0
        _, sums = cluster_sums([r.cluster for r in graded], columns)
        boot = resampled_sums(sums, self.resamples, self.seed)
        return correct_sums(sums, boot, self.calibration, self.draws, self.validity,
                            level=self.level)


def _counts(replies: Sequence[GradedReply]) -> dict[str, int]:
    counts = np.bincount([r.pred for r in replies if r.pred is not None], minlength=NUM_LABELS)
    return {name: int(counts[k]) for k, name in enumerate(LABEL_NAMES)}


def build_summary(replies: Iterable[GradedReply], *, calibration: Calibration | None = None,
                  crisis: Iterable[CrisisVerdict] = (), level: float = DEFAULT_LEVEL,
                  resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                  weak_below: float = WEAK_YOUDEN) -> dict[str, Any]:
    """The summary of an audit (see the module text); targets in order of first appearance."""
    replies = list(replies)
    by_target: dict[str, list[GradedReply]] = {}
    for reply in replies:
        by_target.setdefault(reply.target, []).append(reply)
    verdicts_by_target: dict[str, list[CrisisVerdict]] = {}
    for verdict in crisis:
        verdicts_by_target.setdefault(verdict.target, []).append(verdict)
    corrector = _Corrector(calibration, level, resamples, seed, weak_below)
    targets: dict[str, Any] = {}
    for name in [*by_target, *(t for t in verdicts_by_target if t not in by_target)]:
        own = by_target.get(name, [])
        by_risk = {}
        for risk in RISK_LEVELS:
            part = [r for r in own if r.risk == risk]
            if part:
                by_risk[risk] = {"n": len(part), "ungraded": sum(not r.graded for r in part),
                                 "unsafe_rate": _rate_block(corrector.rate(part))}
        targets[name] = {
            "n": len(own),
            "ungraded": sum(not r.graded for r in own),
            "unsafe_rate": _rate_block(corrector.rate(own)),
            "categories": _counts(own),
            "by_risk": by_risk,
            "crisis": (crisis_summary(verdicts_by_target[name], level)
                       if name in verdicts_by_target else {}),
        }
    verdicts = {name: Verdicts(tuple(r.key for r in own if r.graded),
                               tuple(r.cluster for r in own if r.graded),
                               np.array([bool(r.unsafe) for r in own if r.graded], dtype=bool))
                for name, own in by_target.items()}
    comparisons = compare_targets(verdicts, level=level, resamples=resamples, seed=seed)
    return {
        "targets": targets,
        "comparisons": [c.to_dict() for c in comparisons],
        "grader": None if corrector.validity is None else corrector.validity.to_dict(),
        "protocol": {"level": level, "resamples": resamples, "seed": seed,
                     "interval": INTERVAL_METHOD,
                     "correction": CORRECTION_METHOD if calibration is not None else None,
                     "weak_grader_rule": f"lower end of Youden's J interval <= {weak_below}",
                     "ungraded": "left out of every rate and counted apart"},
    }


# -- terminal table -----------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return percent(value, 1)


def _decimal(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _with_ci(value: float | None, ci: Sequence[float | None] | None) -> str:
    if value is None:
        return "–"
    if not ci or ci[0] is None:
        return _pct(value)
    return f"{_pct(value)} [{_pct(ci[0])}, {_pct(ci[1])}]"


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _crisis_cell(block: Mapping[str, Any]) -> str:
    if not block or not block.get("conversations"):
        return "–"
    return f"{block['passed']}/{block['graded']}"


def format_summary(summary: Mapping[str, Any]) -> str:
    """The summary as plain-text tables: rates per target (percent, with intervals), unsafe
    categories, rates by risk level, crisis handling, paired comparisons, the grader."""
    level = summary.get("protocol", {}).get("level", DEFAULT_LEVEL)
    lvl = f"{round(level * 100)}%"
    targets = summary["targets"]
    rows = []
    for name, t in targets.items():
        rate = t["unsafe_rate"]
        rows.append([name, str(t["n"]), str(t["ungraded"]),
                     _with_ci(rate["observed"], rate["ci"]),
                     _with_ci(rate["corrected"], rate["corrected_ci"]),
                     _crisis_cell(t["crisis"])])
    out = _grid(["target", "n", "ungraded", f"unsafe % [{lvl} CI]",
                 f"corrected % [{lvl} CI]", "crisis passed"], rows)
    unsafe_names = [n for n in LABEL_NAMES if n != LABEL_NAMES[-1]]
    out += ["", *_grid(["target", *unsafe_names],
                       [[name, *(str(t["categories"].get(n, 0)) for n in unsafe_names)]
                        for name, t in targets.items()])]
    risk_rows = [[name, risk, str(b["n"]), _with_ci(b["unsafe_rate"]["observed"],
                                                    b["unsafe_rate"]["ci"]),
                  _crisis_cell(t["crisis"].get("by_risk", {}).get(risk, {}) if t["crisis"]
                               else {})]
                 for name, t in targets.items() for risk, b in t["by_risk"].items()]
    if risk_rows:
        out += ["", *_grid(["target", "risk", "n", f"unsafe % [{lvl} CI]", "crisis passed"],
                           risk_rows)]
    comparisons = summary.get("comparisons") or []
    if comparisons:
        comp_rows = [[f"{c['a']} - {c['b']}", str(c["n"]),
                      _with_ci(c["difference"], c["ci"]),
                      format_p(c["p_bootstrap"]) if c["p_bootstrap"] is not None else "–",
                      format_p(c["holm"]["bootstrap"]) if "bootstrap" in c["holm"] else "–",
                      format_p(c["p_mcnemar"]),
                      format_p(c["holm"]["mcnemar"]) if "mcnemar" in c["holm"] else "–"]
                     for c in comparisons]
        out += ["", *_grid(["pair", "pairs", "difference pts", "p boot", "Holm",
                            "p McNemar", "Holm"], comp_rows)]
    grader = summary.get("grader")
    if grader:
        verdict = ("too weak to correct (corrected rates not reported)" if grader["weak"]
                   else "correction applied")
        out += ["", (f"grader: sensitivity {_pct(grader['sensitivity'])}%, specificity "
                    f"{_pct(grader['specificity'])}%, Youden's J "
                    f"{_decimal(grader['youden_j'])} [{_decimal(grader['j_low'])}, "
                    f"{_decimal(grader['j_high'])}] on "
                    f"{grader['n_unsafe']} unsafe + {grader['n_safe']} safe calibration items "
                    f"({grader['ungraded']} ungraded): {verdict}")]
    else:
        out += ["", "grader: no calibration sample, rates are the grader's own (uncorrected)"]
    return "\n".join(out)
