"""The audit report: a synthetic probe results folder (two targets, multi-turn replies with
risk levels, crisis verdicts, a calibration sample) becomes one self-contained page."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from mhsafety.cli import main
from mhsafety.errors import DataError, UsageError
from mhsafety.io import mark_output_dir, write_json
from mhsafety.probe import Calibration, CrisisVerdict, GradedReply, build_summary, write_replies
from mhsafety.probe.crisis import GRADED, NO_DISCLOSURE
from mhsafety.probe.records import REPLIES_FILE
from mhsafety.probe.report import (
    CONTENT_NOTE,
    SECTIONS,
    is_probe_results,
    load_probe_results,
    worst_replies,
    write_probe_report,
)
from mhsafety.taxonomy import LABEL_NAMES, SAFE_LABEL

SCRIPT = "<script>alert('x')</script>"
RISKS = ("none", "low", "high", "imminent")
# A target named in Chinese draws with tofu where no CJK font is installed (matplotlib warns).
pytestmark = pytest.mark.filterwarnings("ignore:Glyph .* missing from font")


def _probs(label: int, sure: float) -> list[float]:
    row = [(1 - sure) / 7] * 8
    row[label] = sure
    return row


def _replies() -> list[GradedReply]:
    rng = np.random.default_rng(5)
    out = []
    for target, unsafe_share in (("bot-a", 0.15), ("机器人 <b>", 0.4)):
        for c in range(12):
            risk = RISKS[c % 4]
            for turn in (1, 2, 3):
                unsafe = rng.random() < unsafe_share
                pred = int(rng.integers(0, 7)) if unsafe else SAFE_LABEL
                ungraded = c == 5 and turn == 3
                out.append(GradedReply(
                    target=target, conversation_id=f"persona-{c}#0", turn=turn,
                    persona=f"persona-{c}", risk=risk,
                    context=f"[seeker]我最近很难受 {c}.{turn}",
                    reply=f"reply {target} {c}.{turn}",
                    pred=None if ungraded else pred,
                    probs=None if ungraded else _probs(pred, 0.6),
                    grader="baseline:ckpt",
                    grader_error="grader abstained: no answer" if ungraded else None,
                    prompt_tokens=40, completion_tokens=25, latency_s=0.1 * turn))
    # the reply the grader is surest is unsafe carries markup: it must come out escaped
    out[0] = GradedReply(target="bot-a", conversation_id="persona-0#0", turn=1,
                         persona="persona-0", risk="none", context="[seeker]<i>ctx</i>",
                         reply=SCRIPT, pred=3, probs=_probs(3, 0.99), grader="baseline:ckpt",
                         prompt_tokens=40, completion_tokens=25, latency_s=0.1)
    return out


def _verdicts() -> list[CrisisVerdict]:
    out = []
    for target in ("bot-a", "机器人 <b>"):
        for c in range(12):
            risk = RISKS[c % 4]
            if risk not in ("high", "imminent"):
                continue
            passed = target == "bot-a" or c % 3 == 0
            out.append(CrisisVerdict(
                f"persona-{c}#0", target, f"persona-{c}", risk,
                NO_DISCLOSURE if c == 11 else GRADED, disclosure=1, window=[2, 4],
                window_complete=True,
                answers={} if c == 11 else {"acknowledged": True, "asked_safety": passed,
                                            "human_help": True}))
    return out


@pytest.fixture
def probe_folder(tmp_path):
    replies = _replies()
    rng = np.random.default_rng(1)
    gold = rng.random(300) < 0.3
    pred = np.where(rng.random(300) < 0.85, gold, ~gold)
    summary = build_summary(replies, calibration=Calibration(gold, pred),
                            crisis=_verdicts(), resamples=200)
    # what a probe run adds to the summary: per target its model, failures, tokens, cost
    summary["targets"]["bot-a"].update({"model": "model-a", "failed": 2, "cost": 0.0123,
                                        "tokens": {"prompt_tokens": 2880,
                                                   "completion_tokens": 1800,
                                                   "total_tokens": 4680}})
    summary["price_per_million"] = {"in": 1.5, "out": 4.25}
    folder = tmp_path / "audit"
    write_replies(folder / REPLIES_FILE, replies)
    write_json(folder / "summary.json", summary)
    write_json(folder / "manifest.json", {"targets": [{"name": "bot-a", "model": "model-a"}],
                                          "seeker": "<seeker-model>"})
    mark_output_dir(folder, "probe")
    return folder


@pytest.mark.slow
def test_report_has_every_section_escapes_dialogue_and_needs_nothing_outside(
        probe_folder, tmp_path):
    assert is_probe_results(probe_folder)
    result = write_probe_report(probe_folder, tmp_path / "report", command="mhsafety report x")
    page = result.html.read_text(encoding="utf-8")
    for anchor, _ in SECTIONS:
        assert f"<section id='{anchor}'>" in page
    # nothing outside the page
    assert "<script" not in page and "<link" not in page and "url(" not in page
    assert not re.search(r"""(src|href)\s*=\s*['"](?!data:|#)""", page)
    assert not re.search(r"https?://", page)
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) == page.count("<img ") == 4  # rates, categories, risk, crisis
    assert all(base64.b64decode(img)[:4] == b"\x89PNG" for img in images)
    # dialogue text and names escaped; the content note stands before the worst replies
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "&lt;i&gt;ctx&lt;/i&gt;" in page and "<i>ctx" not in page
    assert "机器人 &lt;b&gt;" in page and "机器人 <b>" not in page
    worst = page.index("<section id='worst'>")
    assert worst < page.index(CONTENT_NOTE.split(":")[0]) < page.index("&lt;script&gt;")
    # the numbers: observed and corrected rates with intervals, the grader, crisis, tokens
    summary = json.loads((result.out_dir / "summary.json").read_text(encoding="utf-8"))
    rate = summary["targets"]["bot-a"]["unsafe_rate"]
    assert rate["corrected"] is not None
    assert f"{100 * rate['observed']:.1f} <span class='small'>[" in page
    assert f"{100 * rate['corrected']:.1f} <span class='small'>[" in page
    assert "Youden&#39;s J" in page and "300" not in page.split("id='grader'")[0][-10:]
    assert "grader abstained: no answer ×1" in page
    assert "Pointed to human help" in page and "imminent" in page
    # tokens and cost: the run's own count for bot-a, the replies' sum for the other
    usage = page.split("<section id='usage'>")[1].split("</section>")[0]
    assert "<td class='num'>2880</td><td class='num'>1800</td>" in usage
    assert "<td class='num'>0.0123</td>" in usage and "model-a" in usage
    other = sum(r.prompt_tokens for r in _replies() if r.target != "bot-a")
    assert f"<td class='num'>{other}</td>" in usage
    assert "4.25" in usage  # the prices the run was given
    assert "&lt;seeker-model&gt;" in page  # the run's manifest, escaped
    assert "mhsafety report x" in page and "baseline:ckpt" in page
    assert "{{" not in page and "{%" not in page
    for fig in ("unsafe-rates", "categories", "by-risk", "crisis"):
        assert (result.out_dir / "figures" / f"{fig}.png").is_file()
        assert (result.out_dir / "figures" / f"{fig}.svg").is_file()
    assert len(result.figures) == 8


def test_worst_replies_are_the_surest_unsafe_per_target():
    replies = _replies()
    worst = worst_replies(replies, per_target=3)
    assert list(worst) == ["bot-a", "机器人 <b>"]
    assert worst["bot-a"][0].reply == SCRIPT
    assert all(r.pred != SAFE_LABEL and r.pred is not None
               for rows in worst.values() for r in rows)
    assert all(len(rows) == 3 for rows in worst.values())


def test_the_report_never_replaces_the_results_and_needs_results(probe_folder, tmp_path):
    with pytest.raises(UsageError, match="holds the audit's results"):
        write_probe_report(probe_folder, probe_folder, force=True)
    with pytest.raises(UsageError, match="holds the audit's results"):
        write_probe_report(probe_folder, probe_folder.parent, force=True)
    assert (probe_folder / REPLIES_FILE).is_file()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither replies.jsonl"):
        load_probe_results(tmp_path / "empty")
    assert not is_probe_results(tmp_path / "empty")


def test_a_folder_without_summary_is_summarised_here(probe_folder):
    (probe_folder / "summary.json").unlink()
    results = load_probe_results(probe_folder, resamples=100)
    assert list(results.summary["targets"]) == ["bot-a", "机器人 <b>"]
    assert results.summary["targets"]["bot-a"]["unsafe_rate"]["corrected"] is None
    assert results.summary["protocol"]["resamples"] == 100


@pytest.mark.slow
def test_mhsafety_report_recognises_a_probe_folder(probe_folder, tmp_path, capsys):
    out = tmp_path / "page"
    main(["report", str(probe_folder), "--out", str(out)])
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<title>Chatbot safety audit</title>" in page
    assert "audit of 2 targets" in capsys.readouterr().err
    assert LABEL_NAMES[3] in page
