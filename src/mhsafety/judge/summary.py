"""A judge run's summary: the counts, tokens and cost ``summary.json`` holds, and its text.

:func:`run_summary` builds the summary from the records and the log's view of the run
(answers of earlier runs included); :func:`format_summary` is what ``mhsafety judge``
prints; :func:`format_batch_file` what ``--batch-file-only`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .results import JudgeRecords, Usage, cost, round_counts
from .settings import JudgeSettings


@dataclass
class Reuse:
    """What the run took from its log instead of asking."""

    resumed: int = 0  # answers reused
    stale: int = 0  # logged answers of other settings, ignored
    torn: int = 0  # torn last lines a crash left, cut off


def run_summary(settings: JudgeSettings, items: int, judged: JudgeRecords, usage: Usage,
                stats: dict[str, Any], reuse: Reuse) -> dict[str, Any]:
    """The summary of a run over ``items`` items (``summary.json``)."""
    per_round = round_counts(judged.records)
    tokens = usage.token_totals()
    return {
        "system": settings.name, "model": settings.model, "items": items,
        "rounds": settings.rounds, "per_round": per_round,
        "answered": sum(v["answered"] for v in per_round.values()),
        "failed": sum(v["failed"] for v in per_round.values()),
        "invalid": sum(v["invalid"] for v in per_round.values()),
        "with_reasoning": judged.facts.with_reasoning,
        "fewer_samples_than_asked": judged.facts.fewer_samples,
        "resumed": reuse.resumed, "stale_ignored": reuse.stale,
        "torn_lines_repaired": reuse.torn,
        "this_run": stats, "tokens": tokens,
        "cost": cost(usage, settings),
        "price_per_million": {"in": settings.price_in, "out": settings.price_out},
        "batch_tokens": {"prompt_tokens": int(usage.batch_tokens.get("prompt_tokens", 0)),
                         "completion_tokens": int(usage.batch_tokens.get("completion_tokens",
                                                                         0))},
        "batch_price_factor": settings.batch_price_factor,
        "protocol": settings.protocol,
        "models_answered": dict(usage.models),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a few human-readable lines (what ``mhsafety judge`` prints)."""
    s = summary
    lines = [(f"{s['system']}: {s['items']} items x {s['rounds']} rounds; "
              f"answered {s['answered']}, failed {s['failed']}, "
              f"invalid answers {s['invalid']}")]
    for r, v in s["per_round"].items():
        lines.append(f"  round {r}: answered {v['answered']}, failed {v['failed']}, "
                     f"invalid {v['invalid']}")
    run = s["this_run"]
    lines.append(f"this run: {run['requests']} requests ({run['retries']} retries) in "
                 f"{run['wall_s']:.1f} s, {run['per_second']:.1f}/s; "
                 f"{s['resumed']} answers reused from the log")
    if s.get("protocol") == "sequential":
        lines.append(f"sequential protocol: {run['requests']} node questions for "
                     f"{run.get('items', 0)} item walks this run")
    if run.get("batch"):
        b = run["batch"]
        lines.append(f"batch: {b.get('answered', 0)} answered, {b.get('failed', 0)} failed, "
                     f"{b.get('stale', 0)} stale results ignored"
                     + (f" (batch {b['batch_id']})" if b.get("batch_id") else ""))
    t = s["tokens"]
    line = (f"tokens: {t['prompt_tokens']} prompt + {t['completion_tokens']} completion = "
            f"{t['total_tokens']}")
    batch_tokens = s.get("batch_tokens") or {}
    batched = bool(batch_tokens.get("prompt_tokens") or batch_tokens.get("completion_tokens"))
    if batched:
        line += (f" ({batch_tokens['prompt_tokens']} + {batch_tokens['completion_tokens']} "
                 "of them through a batch)")
    if s.get("cost") is not None:
        line += f"; estimated cost {s['cost']:.4f} (at the given prices per million tokens"
        if batched:
            line += f", batch tokens at {s['batch_price_factor']:g} x those prices"
        line += ")"
    lines.append(line)
    if s["models_answered"]:
        lines.append("models answering: " + ", ".join(
            f"{m} ({n})" for m, n in s["models_answered"].items()))
    if s["stale_ignored"]:
        lines.append(f"ignored {s['stale_ignored']} logged answers from other settings")
    if s["torn_lines_repaired"]:
        lines.append(f"repaired {s['torn_lines_repaired']} torn log line(s) left by a crash")
    if s.get("fewer_samples_than_asked"):
        lines.append(f"{s['fewer_samples_than_asked']} answers came with fewer samples than "
                     "--samples asked (the server ignores n); their records have no vote shares")
    if s["failed"]:
        lines.append("failed items are recorded with their reason; rerun the same command "
                     "to retry them")
    return "\n".join(lines)


def format_batch_file(summary: dict[str, Any], model: str) -> str:
    """What ``--batch-file-only`` prints: the file and how to run and join it."""
    path = summary["batch_requests_file"]
    return (f"wrote {summary['batch_requests']} requests to {path}\n"
            f"run them, e.g.: vllm run-batch -i {path} -o results.jsonl --model {model}\n"
            "then join the answers: the same command with --batch-results results.jsonl "
            "instead of --batch-file-only")
