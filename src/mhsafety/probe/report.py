"""The HTML audit report of a chatbot audit: one self-contained page over a results folder.

Input (:func:`load_probe_results`): a ``mhsafety probe`` results folder (``summary.json`` and
the graded replies, :data:`~mhsafety.probe.records.REPLIES_FILE`), or the inspect_ai log(s)
of the ``chatbot_safety`` task (a ``.eval`` file or a folder of them), read back as graded
replies and summarised by :func:`~mhsafety.probe.summary.build_summary`.

Output (:func:`write_probe_report`): ``index.html``, ``figures/`` (PNG and SVG) and
``summary.json`` (what the page shows). The page is rendered from
``report/templates/probe.html`` with autoescape on, so every reply, context, target and
persona name is escaped; it has no scripts and references nothing outside itself (figures
are data URIs, the style sheet inline), so it opens from disk with no network.

The page: unsafe rates per target observed and corrected with their intervals, paired
comparisons, unsafe categories and rates by risk level (tables and charts), crisis handling
by risk level, the grader's validity, the worst replies behind a content note, token use and
cost, and the provenance of the numbers.
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..analysis.stats import format_p
from ..errors import DataError, UsageError
from ..io import atomic_directory, prepare_output_dir, sha256_file, write_json, write_text
from ..report.figures import RenderedFigure, render_probe_figures
from ..report.provenance import software_versions
from ..tables import percent
from ..taxonomy import CATEGORIES, LABEL_NAMES, SAFE_LABEL
from .records import REPLIES_FILE, GradedReply, read_replies
from .summary import build_summary

SUMMARY_FILE = "summary.json"
MANIFEST_FILE = "manifest.json"  # what a probe run asked (targets, data, sampling, grader)
TITLE = "Chatbot safety audit"
INSPECT_SUFFIX = ".eval"
WORST_SHOWN = 10  # worst replies shown per target
SECTIONS = (("rates", "Unsafe rates"), ("comparisons", "Paired comparisons"),
            ("categories", "Categories and risk levels"), ("crisis", "Crisis handling"),
            ("grader", "The grader"), ("worst", "Worst replies"), ("usage", "Tokens and cost"),
            ("figures", "Figures"), ("provenance", "Protocol and provenance"))
CONTENT_NOTE = ("Content note: the replies below answer people who talk about distress, "
                "self-harm and suicide, and were chosen because the grader found them the "
                "most unsafe. Read them with care. If this brings up something for you, "
                "please reach out to someone you trust or a local crisis line.")


@dataclass
class ProbeResults:
    """An audit's graded replies and summary, and the files they were read from."""

    summary: dict[str, Any]
    replies: list[GradedReply]
    inputs: list[Path]  # the files read (records, summary, logs)
    kind: str  # "probe folder" or "inspect log"
    extra: dict[str, Any] = field(default_factory=dict)  # summary fields beyond the rates
    manifest: dict[str, Any] | None = None  # the run's manifest, where the folder has one


def _chatbot_logs(folder: Path) -> list[Path]:
    from ..integrations.harness_logs import is_chatbot_log

    return [p for p in sorted(folder.rglob(f"*{INSPECT_SUFFIX}")) if is_chatbot_log(p)]


def is_probe_results(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is something :func:`load_probe_results` reads: a probe results folder,
    a ``chatbot_safety`` inspect log, or a folder holding such logs and no other logs or
    prediction records."""
    p = Path(path)
    if p.is_dir():
        if (p / REPLIES_FILE).is_file():
            return True
        if any(p.rglob("*.preds.jsonl")):
            return False
        logs = sorted(p.rglob(f"*{INSPECT_SUFFIX}"))
        # Only audit logs: a folder mixing in other logs goes to the prediction report,
        # whose reader names the audit log it cannot take.
        return bool(logs) and len(_chatbot_logs(p)) == len(logs)
    if p.is_file() and p.suffix == INSPECT_SUFFIX:
        from ..integrations.harness_logs import is_chatbot_log

        return is_chatbot_log(p)
    return False


def load_probe_results(path: str | os.PathLike[str], **summary_options: Any) -> ProbeResults:
    """Read a probe results folder, a ``chatbot_safety`` inspect log, or a folder of such
    logs (several models: several targets). A folder's ``summary.json`` is taken as written;
    logs (and a folder whose summary is missing) are summarised here by
    :func:`~mhsafety.probe.summary.build_summary` with ``summary_options`` (level,
    resamples, seed; no calibration: rates uncorrected)."""
    p = Path(path)
    if p.is_dir() and (p / REPLIES_FILE).is_file():
        replies = read_replies(p / REPLIES_FILE)
        inputs = [p / REPLIES_FILE]
        if (p / SUMMARY_FILE).is_file():
            try:
                summary = json.loads((p / SUMMARY_FILE).read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise DataError(f"{p / SUMMARY_FILE}: not valid JSON ({exc})") from None
            if not isinstance(summary, dict) or not isinstance(summary.get("targets"), dict):
                raise DataError(f"{p / SUMMARY_FILE}: not an audit summary (no 'targets')")
            inputs.append(p / SUMMARY_FILE)
        else:
            summary = build_summary(replies, **summary_options)
        results = _results(summary, replies, inputs, "probe folder")
        if (p / MANIFEST_FILE).is_file():
            try:
                results.manifest = json.loads((p / MANIFEST_FILE).read_text(encoding="utf-8"))
                results.inputs.append(p / MANIFEST_FILE)
            except (UnicodeDecodeError, json.JSONDecodeError):
                results.manifest = None  # not the run's: the page says none was read
        return results
    if p.is_file() and p.suffix == INSPECT_SUFFIX:
        logs = [p]
    elif p.is_dir():
        logs = _chatbot_logs(p)
        if not logs:
            raise DataError(f"{p}: holds neither {REPLIES_FILE} (a probe results folder) nor "
                            "an inspect log of the chatbot_safety task")
    else:
        raise DataError(f"{p}: no such file or folder")
    from ..integrations.harness_logs import read_chatbot_log

    replies = [r for log in logs for r in read_chatbot_log(log)]
    return _results(build_summary(replies, **summary_options), replies, logs, "inspect log")


def _results(summary: dict[str, Any], replies: list[GradedReply], inputs: list[Path],
             kind: str) -> ProbeResults:
    if not summary.get("targets"):
        raise DataError(f"{inputs[0]}: the audit holds no graded replies")
    known = {"targets", "comparisons", "grader", "protocol"}
    return ProbeResults(summary, replies, inputs, kind,
                        {k: v for k, v in summary.items() if k not in known})


# --------------------------------------------------------------------------- page


def _p_unsafe(reply: GradedReply) -> float:
    if reply.probs is not None:
        return 1.0 - float(reply.probs[SAFE_LABEL])
    return 1.0


def worst_replies(replies: Sequence[GradedReply], per_target: int = WORST_SHOWN
                  ) -> dict[str, list[GradedReply]]:
    """Per target, its unsafe replies the grader was surest of (P(unsafe) = 1 - P(safe) where
    the grader gave probabilities), at most ``per_target``."""
    out: dict[str, list[GradedReply]] = {}
    for reply in replies:
        out.setdefault(reply.target, [])
    for name in out:
        unsafe = [r for r in replies if r.target == name and r.unsafe]
        unsafe.sort(key=lambda r: (-_p_unsafe(r), r.cluster, r.sample, r.turn))
        out[name] = unsafe[:per_target]
    return out


def usage_rows(replies: Sequence[GradedReply], summary: dict[str, Any] | None = None
               ) -> list[dict[str, Any]]:
    """Per target: replies, tokens the target used, cost, median latency, and why replies
    went ungraded. Tokens and cost are the run's own where its summary holds them (every
    request counted, as the judge counts), else the sum over the replies that reported
    them."""
    rows = []
    blocks = (summary or {}).get("targets", {})
    targets = list(dict.fromkeys([*blocks, *(r.target for r in replies)]))
    for name in targets:
        own = [r for r in replies if r.target == name]
        block = blocks.get(name, {})
        counted = [r for r in own if r.prompt_tokens is not None
                   or r.completion_tokens is not None]
        latencies = sorted(r.latency_s for r in own if r.latency_s is not None)
        logged = block.get("tokens") if isinstance(block.get("tokens"), dict) else None
        rows.append({
            "target": name, "model": block.get("model"), "replies": len(own),
            "failed": block.get("failed"),
            "tokens_from": "the run's log" if logged else f"{len(counted)} replies",
            "prompt_tokens": (logged or {}).get("prompt_tokens",
                                                sum(r.prompt_tokens or 0 for r in counted)),
            "completion_tokens": (logged or {}).get(
                "completion_tokens", sum(r.completion_tokens or 0 for r in counted)),
            "cost": block.get("cost"),
            "median_latency_s": latencies[len(latencies) // 2] if latencies else None,
            "ungraded_reasons": Counter(r.grader_error or "no reason recorded"
                                        for r in own if not r.graded).most_common(),
        })
    return rows


def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("mhsafety.report", "templates"),
                      autoescape=select_autoescape(["html"]), undefined=StrictUndefined)
    env.filters.update(
        pct=lambda x, decimals=1: percent(x, decimals),
        p=lambda x: "–" if x is None else format_p(x),
        b64=lambda data: base64.b64encode(data).decode("ascii"),
        num=lambda x, d=2: "–" if x is None else f"{x:.{d}f}",
        label_name=lambda i: "ungraded" if i is None else LABEL_NAMES[i],
        json=lambda v: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False),
        pretty=lambda v: json.dumps(v, ensure_ascii=False, indent=2),
    )
    return env


def render_probe_html(results: ProbeResults, figures: Sequence[RenderedFigure],
                      provenance: dict[str, Any], title: str) -> str:
    """The page as one string."""
    summary = results.summary
    level = summary.get("protocol", {}).get("level", 0.95)
    replies = results.replies
    worst = worst_replies(replies)
    template = _environment().get_template("probe.html")
    return template.render(
        title=title, summary=summary, targets=summary["targets"], sections=SECTIONS,
        level=f"{100 * level:g} %", figures=figures, provenance=provenance,
        unsafe_names=[n for i, n in enumerate(LABEL_NAMES) if i != SAFE_LABEL],
        label_names=LABEL_NAMES, worst=worst, p_unsafe=_p_unsafe,
        shown_worst=sum(len(v) for v in worst.values()), content_note=CONTENT_NOTE,
        usage=usage_rows(replies, summary), extra=results.extra, kind=results.kind,
        manifest=results.manifest,
        risk_rows=[(name, risk, block) for name, t in summary["targets"].items()
                   for risk, block in t["by_risk"].items()],
        crisis_rows=[(name, risk, block) for name, t in summary["targets"].items()
                     if t.get("crisis") for risk, block in
                     [("all", t["crisis"]), *t["crisis"].get("by_risk", {}).items()]],
        taxonomy_rows=[[c.id, c.name, c.name_zh, "safe" if c.safe else "unsafe",
                        c.definition] for c in CATEGORIES],
    ) + "\n"


@dataclass
class ProbeReport:
    out_dir: Path
    html: Path
    results: ProbeResults
    figures: list[Path]


def _inside(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


def write_probe_report(results_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                       force: bool = False, *, title: str = TITLE, command: str | None = None,
                       **summary_options: Any) -> ProbeReport:
    """Write the audit report of ``results_dir`` (see :func:`load_probe_results`) to
    ``out_dir``: index.html (self-contained), figures/ and summary.json.

    The folder is built under a temporary name and swapped in at the end; an existing
    non-empty folder is replaced only if an earlier report made it, or with ``force``
    (:func:`~mhsafety.io.prepare_output_dir`); never the results themselves.
    ``summary_options`` (level, resamples, seed) apply where the summary is built here
    (inspect logs); a probe folder's ``summary.json`` is shown as written."""
    source, out = Path(results_dir), Path(out_dir)
    if source.exists() and _inside(source, out):  # replacing OUT would delete the results
        raise UsageError(f"{out}: holds the audit's results ({source}); write the report to "
                         "another folder")
    target = prepare_output_dir(out, command="report", force=force)
    results = load_probe_results(source, **summary_options)
    provenance = {
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "command": command, "source": str(source), "kind": results.kind,
        "files": [{"path": str(f), "sha256": sha256_file(f)} for f in results.inputs],
        "protocol": results.summary.get("protocol") or {},
        "graders": sorted({r.grader for r in results.replies if r.grader}),
        "software": software_versions(),
    }
    with atomic_directory(target, "report") as tmp:
        figures = render_probe_figures(results.summary, tmp / "figures")
        write_text(tmp / "index.html", render_probe_html(results, figures, provenance, title))
        write_json(tmp / SUMMARY_FILE, results.summary)
    files = [target / "figures" / p.name for fig in figures for p in fig.files]
    return ProbeReport(target, target / "index.html", results, files)
