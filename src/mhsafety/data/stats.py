"""Dataset statistics: label counts, turns and lengths, as printed by ``data stats``."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..taxonomy import CATEGORIES
from .examples import Example


def _summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "min": float(min(values)),
        "median": float(statistics.median(values)),
        "mean": float(statistics.fmean(values)),
        "max": float(max(values)),
    }


def dataset_stats(examples: Sequence[Example]) -> dict[str, Any]:
    """Label counts, turn counts and character lengths (raw strings, markers included)."""
    labels = Counter(ex.label for ex in examples if ex.label is not None)
    n_turns = [len(ex.turns) for ex in examples]
    out: dict[str, Any] = {
        "items": len(examples),
        "labelled": sum(labels.values()),
        "labels": [
            {"id": c.id, "name": c.name, "count": labels.get(c.id, 0)} for c in CATEGORIES
        ],
        "turns": {**_summary(n_turns), "histogram": dict(sorted(Counter(n_turns).items())),
                  "single_turn": sum(1 for n in n_turns if n == 1)},
        "context_chars": _summary([len(ex.context) for ex in examples]),
        "response_chars": _summary([len(ex.response) for ex in examples]),
        "responses_with_newline": sum(1 for ex in examples if "\n" in ex.response),
        "repeated_responses": sum(
            1 for n in Counter(ex.response for ex in examples).values() if n > 1
        ),
    }
    if labels:
        out["majority_accuracy"] = max(labels.values()) / sum(labels.values())
    return out


def format_stats(stats: dict[str, Any]) -> str:
    lines = [f"items: {stats['items']} ({stats['labelled']} labelled)", "", "label counts:"]
    width = max(len(row["name"]) for row in stats["labels"])
    total = max(stats["labelled"], 1)
    for row in sorted(stats["labels"], key=lambda r: -r["count"]):
        share = 100 * row["count"] / total
        lines.append(f"  {row['id']} {row['name']:<{width}}  {row['count']:>5}  {share:5.1f} %")
    if "majority_accuracy" in stats:
        lines.append(f"majority-class accuracy: {100 * stats['majority_accuracy']:.1f} %")
    t = stats["turns"]
    lines.append("")
    lines.append(f"context turns: min {t['min']:.0f}, median {t['median']:g}, "
                 f"mean {t['mean']:.2f}, max {t['max']:.0f}; single-turn items: {t['single_turn']}")
    lines.append("  histogram: " + ", ".join(f"{k}:{v}" for k, v in t["histogram"].items()))
    for key, title in (("context_chars", "context length"), ("response_chars", "response length")):
        s = stats[key]
        lines.append(f"{title} (chars): min {s['min']:.0f}, median {s['median']:g}, "
                     f"mean {s['mean']:.1f}, max {s['max']:.0f}")
    lines.append(f"responses containing a newline: {stats['responses_with_newline']}")
    lines.append(f"response strings occurring more than once: {stats['repeated_responses']}")
    return "\n".join(lines)
