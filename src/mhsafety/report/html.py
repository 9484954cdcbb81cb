"""One self-contained HTML page: tables, embedded figures, taxonomy and provenance.

The page has no scripts and references nothing outside itself (figures are base64 PNG data
URIs, the style sheet is inline), so a reviewer can open it from disk with no server and no
network.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..analysis.core import Analysis, analyze_systems, resolution_warning, significant_pairs
from ..analysis.errors import POOLED
from ..analysis.predictions import from_runs
from ..analysis.stats import DEFAULT_RESAMPLES, DEFAULT_SEED
from ..errors import UsageError
from ..evaluate import score_systems
from ..io import atomic_directory, write_json, write_text
from ..metrics import SystemMetrics
from ..records import load_runs
from ..taxonomy import CATEGORIES, LABEL_NAMES, NODES
from .figures import RenderedFigure, render_figures
from .provenance import Provenance, collect_provenance

MARKER = ".mhsafety-report"  # marks a folder this command made and may replace
ALPHA = 0.05

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans CJK SC",
sans-serif;margin:0 auto;max-width:1280px;padding:1rem 2rem 4rem;color:#1d1d1f;line-height:1.45}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{border-bottom:2px solid #dde;padding-bottom:.2rem;
margin-top:2.4rem}h3{margin-top:1.6rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.86rem}
th,td{border:1px solid #ccd;padding:.25rem .5rem;vertical-align:top}
th{background:#f0f2f7;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}tr.sig td{background:#fff4e0}.small{font-size:.8rem;color:#555}
figure{margin:1.2rem 0;border:1px solid #e2e4ea;padding:.6rem;border-radius:6px}
figure img{max-width:100%;height:auto}figcaption{font-size:.85rem;color:#444;margin-top:.3rem}
pre{background:#f6f7f9;padding:.6rem;overflow-x:auto;font-size:.8rem;white-space:pre-wrap;
word-break:break-all}nav ol{columns:2;font-size:.9rem}.note{background:#eef6ff;
border-left:4px solid #4c72b0;padding:.4rem .8rem;margin:.8rem 0}
.key{font-weight:600}.grid{display:grid;grid-template-columns:repeat(auto-fill,
minmax(520px,1fr));gap:0 1.5rem}.wrap{overflow-x:auto;max-width:100%}details{margin:.4rem 0}summary{cursor:pointer}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _pct(x: float | None, decimals: int = 1) -> str:
    if x is None or math.isnan(x):
        return "–"
    return f"{100 * x:.{decimals}f}"


def _ci(iv) -> str:
    return f"{_pct(iv.estimate)} <span class='small'>[{_pct(iv.low)}, {_pct(iv.high)}]</span>"


def _p(p: float) -> str:
    return f"{p:.1e}" if p < 1e-4 else f"{p:.4f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric_from: int = 1,
          row_classes: Sequence[str] | None = None, raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (cells already HTML)."""
    head = "".join(f"<th>{h if raw else esc(h)}</th>" for h in headers)
    body = []
    for r, row in enumerate(rows):
        cls = f" class='{row_classes[r]}'" if row_classes and row_classes[r] else ""
        cells = "".join(
            ("<td class='num'>" if i >= numeric_from else "<td>") + (c if raw else esc(c))
            + "</td>" for i, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    # the wrapper scrolls a wide table instead of the whole page
    return (f"<div class='wrap'><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


@dataclass
class Section:
    anchor: str
    title: str
    body: str


def _summary_section(analysis: Analysis, metrics: Sequence[SystemMetrics]) -> Section:
    def cell(agg) -> str:
        mean = _pct(agg.mean, 2)
        return mean if agg.std is None else f"{mean} ± {_pct(agg.std, 2)}"

    rows = [[esc(m.system) + (f" <span class='small'>[{esc('; '.join(m.notes))}]</span>"
                              if m.notes else ""), str(len(m.runs)), str(m.n_items),
             *[cell(m.scores[k]) for k in ("accuracy", "precision", "recall", "f1")],
             str(m.n_invalid)] for m in metrics]
    table2 = table(["System", "Runs", "Items", "Acc", "P", "R", "F1", "Invalid"], rows, raw=True)
    level = f"{100 * analysis.level:g} %"
    ci_rows = [[esc(s.system), *[_ci(s.intervals[k]) for k in
                                 ("accuracy", "f1", "macro_f1", "unsafe_recall",
                                  "unsafe_precision", "unsafe_f1")]]
               for s in analysis.systems]
    ci_table = table(["System", "Acc", "Weighted F1", "Macro-F1", "Unsafe recall",
                      "Unsafe precision", "Unsafe F1"], ci_rows, raw=True)
    body = (
        "<p>Table 2 of the paper: percent, mean ± sample standard deviation over runs; "
        "precision, recall and F1 weighted by class support (so recall equals accuracy). "
        "Invalid answers count as wrong.</p>" + table2 +
        f"<h3>With {level} bootstrap intervals, macro-F1 and the binary view</h3>"
        f"<p>Mean over runs with its {level} percentile bootstrap interval over items "
        f"({analysis.resamples} resamples, seed {analysis.seed}). Macro-F1 gives every class "
        "the same weight, so it shows what the two large classes hide. Binary view: Safe "
        "Response is safe, every other label unsafe; unsafe recall is the share of unsafe "
        "responses flagged.</p>" + ci_table + _calibration(analysis))
    return Section("summary", "Scores", body)


def _calibration(analysis: Analysis) -> str:
    calibrated = [s for s in analysis.systems if s.ece is not None]
    if not calibrated:
        return ""
    return ("<p>Calibration of the systems that output probabilities: expected calibration "
            "error of the top label (10 equal-width bins, runs pooled; the reliability "
            "diagrams are under Figures): " +
            ", ".join(f"{esc(s.system)} {_pct(s.ece)} %" for s in calibrated) + ".</p>")


def _class_section(analysis: Analysis) -> Section:
    coverage = analysis.errors.coverage
    support = {c.name: c.n_items for c in next(iter(coverage.values()))}
    headers = ["System", *[f"{n} ({support[n]})" for n in LABEL_NAMES]]
    recall = table(headers, [[esc(s.system), *[_ci(s.intervals[f"recall:{n}"])
                                               for n in LABEL_NAMES]]
                             for s in analysis.systems], raw=True)
    found = table(headers, [[system, *[f"{c.right_any} / {c.right_all} / {c.right_none}"
                                       for c in cov]] for system, cov in coverage.items()])
    nonsense = [(system, cov[0]) for system, cov in coverage.items()]
    n_nonsense = nonsense[0][1].n_items
    lines = "".join(
        f"<li><span class='key'>{esc(system)}</span>: {c.right_any} of {c.n_items} at least "
        f"once, {c.right_all} in every run, {c.right_none} never</li>" for system, c in nonsense)
    body = (
        "<p>Recall per class: percent, mean over runs with its bootstrap interval. Column "
        "headers give the number of gold items; intervals of classes with a handful of items "
        "are wide, and a class absent from a resample is skipped in it.</p>" + recall +
        "<h3 id='found'>Items of each class found</h3><p>For each class: items right in at "
        "least one run / in every run / in no run.</p>" + found +
        f"<div class='note'><p class='key'>Nonsense ({n_nonsense} items): how many each "
        f"system finds</p><ul>{lines}</ul></div>")
    return Section("classes", "Per class", body)


def _delta(result) -> str:
    return (f"{_pct(result.difference)} <span class='small'>[{_pct(result.low)}, "
            f"{_pct(result.high)}]</span>")


def _significance_section(analysis: Analysis) -> Section:
    comps = analysis.comparisons
    if not comps:
        return Section("significance", "Significance",
                       "<p>Only one system: nothing to compare.</p>")
    level = f"{100 * analysis.level:g} %"
    rows, classes = [], []
    for c in comps:
        acc, f1, mf1 = c.bootstrap["accuracy"], c.bootstrap["f1"], c.bootstrap["macro_f1"]
        m = c.mcnemar
        sig = c.significant("accuracy", ALPHA) and c.holm["mcnemar"] < ALPHA
        rows.append([
            f"{esc(c.a)} <b>vs</b> {esc(c.b)}",
            _delta(acc), _p(c.holm["accuracy"]),
            _delta(f1), _p(c.holm["f1"]),
            _delta(mf1), _p(c.holm["macro_f1"]),
            f"{m.a_only} / {m.b_only}", _p(m.p_value), _p(c.holm["mcnemar"]),
            "∞" if m.odds_ratio == float("inf") else f"{m.odds_ratio:.2f}",
            "<b>yes</b>" if sig else "no"])
        classes.append("sig" if sig else "")
    pairs = table(["A vs B", "ΔAcc (points)", "p Holm", "ΔWeighted F1", "p Holm", "ΔMacro-F1",
                   "p Holm", "McNemar A-only / B-only", "McNemar p", "p Holm", "Odds ratio",
                   "Significant"], rows, row_classes=classes, raw=True)
    verdicts = []
    for c in significant_pairs(analysis, ALPHA):
        acc = c.bootstrap["accuracy"]
        verdicts.append(
            f"<li><span class='key'>{esc(c.a)}</span> is significantly worse than "
            f"<span class='key'>{esc(c.b)}</span>: accuracy {_pct(acc.difference)} points "
            f"[{_pct(acc.low)}, {_pct(acc.high)}], Holm-adjusted bootstrap p = "
            f"{_p(c.holm['accuracy'])}, McNemar p = {_p(c.holm['mcnemar'])}</li>")
    warning = resolution_warning(analysis, ALPHA)
    if warning:
        verdicts.append(f"<li><b>Warning</b>: {esc(warning)}.</li>")
    summary = (f"<ul>{''.join(verdicts)}</ul>" if verdicts
               else "<p>No pair differs significantly in accuracy.</p>")
    body = (
        f"<p>Every pair of systems on the {analysis.n_common} items they share. Δ = A − B in "
        f"points with its {level} paired-bootstrap interval (the same item resamples for both "
        "systems); the bootstrap p-value is twice the share of resamples on the far side of "
        f"zero. McNemar's test compares per-item correctness (right in most runs) with an "
        "exact binomial test on the items only one system gets right; the odds ratio is "
        "A-only / B-only. p-values are Holm-adjusted over the "
        f"{len(comps)} pairs, per test. A pair is marked significant when both the accuracy "
        f"bootstrap and McNemar are below {ALPHA} after adjustment.</p>"
        f"<div class='note'><p class='key'>Significant differences in accuracy</p>{summary}"
        "</div>" + pairs)
    return Section("significance", "Significance", body)


def _errors_section(analysis: Analysis) -> Section:
    errors = analysis.errors
    parts = [("<h3>Confusions that account for most errors</h3><p>Errors summed over runs; "
              "share of all the system's errors and the cumulative share.</p>")]
    parts.append("<div class='grid'>")
    for system, pairs in errors.confusions.items():
        title = "All systems pooled" if system == POOLED else system
        parts.append(f"<div><h4>{esc(title)}</h4>" + table(
            ["Gold", "Predicted", "Errors", "Share %", "Cum. %"],
            [[p.gold_name, p.pred_name, str(p.count), _pct(p.share_of_errors),
              _pct(p.cumulative_share)] for p in pairs], numeric_from=2) + "</div>")
    parts.append("</div>")
    parts.append("<h3>Run-to-run agreement</h3><p>How often a system's runs disagree on the "
                 "same item (runs as raters for Fleiss' κ).</p>")
    parts.append(table(
        ["System", "Runs", "Items where runs disagree", "% of items", "Mean pairwise agreement %",
         "Fleiss' κ", "Right in some runs only"],
        [[a.system, str(a.n_runs), str(a.items_disagree), _pct(a.share_disagree),
          _pct(a.mean_pairwise_agreement),
          f"{a.fleiss_kappa:.3f}" if a.fleiss_kappa is not None else "–",
          str(a.items_flipping_correctness)] for a in errors.agreement]))
    missed = errors.missed_by_all
    parts.append(f"<h3>Items every system misses ({len(missed)} of {analysis.n_common})</h3>"
                 "<p>No run of any system gives the gold label. By gold class: " +
                 esc(", ".join(f"{k} {v}" for k, v in errors.missed_by_class.items() if v)
                     or "none") + ".</p>")
    if missed:
        rows = []
        for item in missed:
            said = "<br>".join(
                f"{esc(s)}: " + esc(", ".join(f"{k} ×{v}" for k, v in preds.items()))
                for s, preds in item.predictions.items())
            text = (f"<details><summary>{esc(item.response)}</summary>"
                    f"<pre>{esc(item.context)}</pre></details>" if item.response is not None
                    else "<span class='small'>(pass --data to show the text)</span>")
            rows.append([esc(item.id), esc(item.gold_name), text, said])
        parts.append(table(["Item", "Gold", "Response (context on click)", "Predictions"],
                           rows, numeric_from=99, raw=True))
    for note in errors.notes:
        parts.append(f"<p class='note'>{esc(note)}</p>")
    return Section("errors", "Error analysis", "".join(parts))


def _figures_section(figures: Sequence[RenderedFigure]) -> Section:
    blocks = []
    for fig in figures:
        data = base64.b64encode(fig.png).decode("ascii")
        blocks.append(f"<figure id='fig-{esc(fig.slug)}'><img alt='{esc(fig.title)}' "
                      f"src='data:image/png;base64,{data}'><figcaption><b>{esc(fig.title)}."
                      f"</b> {esc(fig.caption)}</figcaption></figure>")
    return Section("figures", "Figures", "".join(blocks))


def _taxonomy_section() -> Section:
    rows = [[str(c.id), c.name, c.name_zh, str(c.node), "safe" if c.safe else "unsafe",
             c.definition] for c in CATEGORIES]
    nodes = "".join(f"<li><b>Node {n.number}, {esc(n.title)}</b>: {esc(n.question)} → "
                    f"{esc(', '.join(LABEL_NAMES[i] for i in n.labels))}</li>" for n in NODES)
    body = ("<p>Annotation walks four nodes in order; the first node that fires decides the "
            "label. Binary view: Safe Response is safe, every other label unsafe.</p>"
            f"<ul>{nodes}</ul>" +
            table(["Id", "Name", "中文", "Node", "Binary", "Definition"], rows, numeric_from=99))
    return Section("taxonomy", "Taxonomy", body)


def _provenance_section(prov: Provenance) -> Section:
    parts = [f"<p>Generated {esc(prov.generated)}.</p>"]
    if prov.command:
        parts.append(f"<h3>Command line</h3><pre>{esc(prov.command)}</pre>")
    parts.append("<h3>Runs (what the records say)</h3>")
    rows = []
    for r in prov.runs:
        meta = "<br>".join(f"{esc(k)}: {esc(' | '.join(v))}" for k, v in r.meta.items()) or "–"
        errs = "<br>".join(f"{esc(k)}: {v}" for k, v in r.errors.items()) or "–"
        files = "<br>".join(f"{esc(f['path'])} <span class='small'>sha256 "
                            f"{esc(f['sha256'][:16])}…</span>" for f in r.files)
        rows.append([esc(r.system), esc(", ".join(r.runs)), str(r.n_items),
                     esc("; ".join(r.notes)) or "–", meta, errs, files])
    parts.append(table(["System", "Runs", "Items", "Notes", "Record metadata",
                        "Record errors", "Files"], rows, numeric_from=99, raw=True))
    parts.append("<h3>Manifests found beside the records</h3>")
    if prov.manifests:
        for m in prov.manifests:
            cut = " (truncated)" if m.truncated else ""
            parts.append(f"<h4>{esc(m.path)}</h4>")
            if m.summary:
                parts.append(table(["Field", "Value"], list(m.summary.items()),
                                   numeric_from=99))
            parts.append(f"<details><summary>full file{cut}</summary>"
                         f"<pre>{esc(m.text)}</pre></details>")
    else:
        parts.append("<p>None: the input folders hold only prediction records, so the "
                     "protocol above is what the records themselves say.</p>")
    parts.append("<h3>Data</h3>")
    if prov.data is not None:
        parts.append(table(["File", "sha256", "Note"],
                           [[prov.data.path, prov.data.sha256, prov.data.note]],
                           numeric_from=99))
    else:
        parts.append("<p>No dataset given (--data); items are identified by their ids in the "
                     "records. Prediction file hashes are listed above.</p>")
    parts.append("<h3>Inputs and settings</h3>" + table(
        ["Setting", "Value"],
        [["inputs", ", ".join(prov.inputs)],
         *[[k, json.dumps(v) if not isinstance(v, str) else v] for k, v in
           prov.settings.items()]], numeric_from=99))
    parts.append("<h3>Software</h3>" + table(["Component", "Version"],
                                             list(prov.software.items()), numeric_from=99))
    return Section("provenance", "Protocol and provenance", "".join(parts))


def render_html(analysis: Analysis, metrics: Sequence[SystemMetrics],
                figures: Sequence[RenderedFigure], provenance: Provenance,
                title: str = "Dialogue safety: analysis report") -> str:
    """The whole page as one string."""
    sections = [_summary_section(analysis, metrics), _significance_section(analysis),
                _class_section(analysis), _errors_section(analysis), _figures_section(figures),
                _taxonomy_section(), _provenance_section(provenance)]
    nav = "".join(f"<li><a href='#{s.anchor}'>{esc(s.title)}</a></li>" for s in sections)
    systems = ", ".join(s.system for s in analysis.systems)
    body = "".join(f"<section id='{s.anchor}'><h2>{esc(s.title)}</h2>{s.body}</section>"
                   for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p class='small'>{len(analysis.systems)} systems "
        f"({esc(systems)}) on {analysis.n_common} shared items · generated "
        f"{esc(provenance.generated)} · mhsafety {esc(provenance.software.get('mhsafety'))}"
        f"</p><nav><ol>{nav}</ol></nav></header>{body}</body></html>\n")


@dataclass
class ReportResult:
    out_dir: Path
    html: Path
    analysis: Analysis
    figures: list[Path]


def _check_target(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir())
                                                       and not (out_dir / MARKER).exists())):
        raise UsageError(f"{out_dir}: exists and is not a report folder made by mhsafety; "
                         "choose another --out (nothing was overwritten)")


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
                 level: float = 0.95, command: str | None = None,
                 title: str = "Dialogue safety: analysis report") -> ReportResult:
    """Analyse the runs under ``paths`` and write ``out_dir``: index.html (self-contained),
    analysis.json and figures/ (PNG and SVG).

    The folder is built under a temporary name and swapped in at the end; an existing folder
    is replaced only if an earlier report made it.
    """
    target = Path(out_dir)
    _check_target(target)
    runs = load_runs(paths)
    systems = from_runs(runs)
    analysis = analyze_systems(systems, resamples, seed, level)
    if data is not None:
        from ..analysis.errors import attach_text
        from ..data import load_examples

        examples = {ex.id if ex.id is not None else str(i): ex
                    for i, ex in enumerate(load_examples(Path(data)))}
        found = attach_text(analysis.errors.missed_by_all, examples)
        if found < len(analysis.errors.missed_by_all):
            analysis.errors.notes.append(f"{len(analysis.errors.missed_by_all) - found} "
                                         f"missed item ids are not in {data}")
    metrics = score_systems(runs)
    settings = {"resamples": resamples, "seed": seed, "level": level}
    provenance = collect_provenance(paths, runs, data, command, settings)
    with atomic_directory(target) as tmp:
        figures = render_figures(analysis, tmp / "figures")
        page = render_html(analysis, metrics, figures, provenance, title)
        write_text(tmp / "index.html", page)
        write_json(tmp / "analysis.json", {"analysis": analysis.to_dict(),
                                           "provenance": provenance.to_dict()})
        write_text(tmp / MARKER, "made by mhsafety report; may be replaced by it\n")
        _readable(tmp)
    files = [target / "figures" / p.name for fig in figures for p in fig.files]
    return ReportResult(target, target / "index.html", analysis, files)
