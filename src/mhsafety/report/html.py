"""One self-contained HTML page: tables, embedded figures, taxonomy and provenance.

The page is rendered from the jinja2 templates in ``report/templates/`` with autoescape on,
so every name and text from the records is escaped. It has no scripts and references
nothing outside itself (figures are base64 PNG data URIs, the style sheet is inline), so a
reviewer can open it from disk with no server and no network.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..analysis.core import (
    Analysis,
    analyze,
    bootstrap_text,
    p_text,
    resolution_warning,
    significant_pairs,
)
from ..analysis.mistakes import POOLED
from ..analysis.nodes import DECISIONS
from ..analysis.stats import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, MAJORITY_VOTE, format_p
from ..io import atomic_directory, prepare_output_dir, write_json, write_text
from ..metrics import METRICS
from ..progress import step_printer
from ..records import load_runs, note_text
from ..scoring import Scores, score_runs
from ..tables import mean_std, percent
from ..taxonomy import CATEGORIES, LABEL_NAMES, NODES
from .figures import RenderedFigure, render_figures
from .provenance import Provenance, collect_provenance

# What marked a report folder before every output folder carried io.OUTPUT_MARKER.
LEGACY_MARKER = ".mhsafety-report"
ALPHA = 0.05
SECTIONS = (("summary", "Scores"), ("significance", "Significance"), ("classes", "Per class"),
            ("nodes", "Per node"), ("errors", "Error analysis"), ("figures", "Figures"),
            ("taxonomy", "Taxonomy"), ("provenance", "Protocol and provenance"))


def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("mhsafety.report", "templates"),
                      autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                      trim_blocks=False, lstrip_blocks=False)
    env.filters.update(
        pct=lambda x, decimals=1: percent(x, decimals),
        mean_std=lambda agg: mean_std(agg, 2),
        p=format_p,
        b64=lambda data: base64.b64encode(data).decode("ascii"),
        note_text=note_text,
        label_name=lambda i: LABEL_NAMES[i],
        # A score's column title and long name, from its one entry in metrics.METRICS.
        title=lambda name: METRICS[name].title,
        long_title=lambda name: METRICS[name].label,
        confusion_row=lambda c: [c.gold_name, c.pred_name, c.count,
                                 percent(c.share_of_errors, 1),
                                 percent(c.cumulative_share, 1)],
    )
    return env


def _context(analysis: Analysis, scores: Scores, figures: Sequence[RenderedFigure],
             provenance: Provenance, title: str) -> dict[str, Any]:
    coverage = analysis.errors.coverage
    support = {c.name: c.n_items for c in next(iter(coverage.values()))}
    significant = {(c.a, c.b) for c in significant_pairs(analysis, ALPHA)}
    nonsense = [(system, cov[0]) for system, cov in coverage.items()]
    errors = analysis.errors
    return {
        "title": title, "analysis": analysis, "provenance": provenance, "figures": figures,
        "sections": SECTIONS, "level": f"{100 * analysis.level:g} %", "alpha": ALPHA,
        "bootstrap_text": bootstrap_text(analysis), "majority_vote": MAJORITY_VOTE,
        "table2": list(zip(scores.rows, scores.systems)),
        "with_invalid": any(m.n_invalid for m in scores.systems),
        "calibrated": [s for s in analysis.systems if s.ece is not None],
        "verdicts": significant_pairs(analysis, ALPHA),
        "comparison_rows": [(c, (c.a, c.b) in significant or (c.b, c.a) in significant)
                            for c in analysis.comparisons],
        "warning": resolution_warning(analysis, ALPHA), "p_text": p_text, "inf": float("inf"),
        "label_names": LABEL_NAMES,
        "class_headers": ["System", *[f"{n} ({support[n]})" for n in LABEL_NAMES]],
        "found_rows": [[system, *[f"{c.right_any} / {c.right_all} / {c.right_none}"
                                  for c in cov]] for system, cov in coverage.items()],
        "nonsense": nonsense, "nonsense_n": nonsense[0][1].n_items,
        "decisions": DECISIONS, "errors": errors, "pooled": POOLED,
        "agreement_rows": [
            [a.system, a.n_runs, a.items_disagree, percent(a.share_disagree, 1),
             percent(a.mean_pairwise_agreement, 1),
             f"{a.fleiss_kappa:.3f}" if a.fleiss_kappa is not None else "–",
             a.items_flipping_correctness] for a in errors.agreement],
        "missed_by_class": ", ".join(f"{k} {v}" for k, v in errors.missed_by_class.items() if v),
        "nodes": NODES,
        "taxonomy_rows": [[c.id, c.name, c.name_zh, c.node, "safe" if c.safe else "unsafe",
                           c.definition] for c in CATEGORIES],
        "settings_rows": [["inputs", ", ".join(provenance.inputs)],
                          *[[k, v if isinstance(v, str) else json.dumps(v)]
                            for k, v in provenance.settings.items()]],
    }


def render_html(analysis: Analysis, scores: Scores, figures: Sequence[RenderedFigure],
                provenance: Provenance, title: str = "Dialogue safety: analysis report") -> str:
    """The whole page as one string."""
    template = _environment().get_template("report.html")
    return template.render(**_context(analysis, scores, figures, provenance, title)) + "\n"


@dataclass
class ReportResult:
    out_dir: Path
    html: Path
    analysis: Analysis
    figures: list[Path]


def _is_old_report(folder: Path) -> bool:
    return (folder / LEGACY_MARKER).is_file()


def _readable(folder: Path) -> None:
    """Temporary files and folders are private (0600/0700); a report is meant to be shared,
    so give it the permissions a plain write would have (honouring the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [folder, *folder.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def build_report(paths: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                 data: str | os.PathLike[str] | None = None,
                 resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                 level: float = DEFAULT_LEVEL, command: str | None = None,
                 title: str = "Dialogue safety: analysis report", force: bool = False,
                 show_progress: bool = False) -> ReportResult:
    """Analyse the runs under ``paths`` and write ``out_dir``: index.html (self-contained),
    analysis.json and figures/ (PNG and SVG).

    The folder is built under a temporary name and swapped in at the end; an existing
    non-empty folder is replaced only if an earlier report made it, or with ``force``
    (:func:`~mhsafety.io.prepare_output_dir`). ``show_progress``: a bar on a terminal, a
    line per step when stderr is piped.
    """
    target = prepare_output_dir(out_dir, command="report", force=force,
                                recognise=_is_old_report)
    runs = load_runs(paths)
    # Steps: each system bootstrapped, comparisons, errors (analyze), figures, the page.
    total = len(runs) + 4
    printer = step_printer("report", quiet=not show_progress)
    analysis = analyze(paths, resamples, seed, level, data=data, runs=runs,
                       on_progress=lambda done, _total, info: printer(done, total, info))
    scores = score_runs(runs)
    settings = {"resamples": resamples, "seed": seed, "level": level}
    provenance = collect_provenance(paths, runs, data, command, settings)
    with atomic_directory(target, "report") as tmp:
        figures = render_figures(analysis, tmp / "figures")
        printer(total - 1, total, "figures")
        page = render_html(analysis, scores, figures, provenance, title)
        write_text(tmp / "index.html", page)
        write_json(tmp / "analysis.json", {"analysis": analysis.to_dict(),
                                           "provenance": provenance.to_dict()})
        _readable(tmp)
        printer(total, total, "page")
    files = [target / "figures" / p.name for fig in figures for p in fig.files]
    return ReportResult(target, target / "index.html", analysis, files)
