"""Inter-annotator agreement, agreement with gold labels, and majority adjudication.

The statistics come from maintained libraries: Cohen's kappa from scikit-learn, Fleiss' kappa
from statsmodels, Krippendorff's alpha (nominal) from ``krippendorff``. This module only
arranges the ratings for them.

Ratings are ``{item_id: {annotator: value}}``. Besides the final label, every node of the
sequential framework is measured on its own: the answer an annotator gave at node k exists only
if their walk reached node k, so per-node ratings have gaps, which Krippendorff's alpha handles
and Fleiss' kappa does not (see :func:`fleiss`).
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import DataError, UsageError, missing_extra
from ..io import write_json_rows
from ..taxonomy import CATEGORIES, NODES, SAFE_LABEL, UNSAFE_LEAVES, label_name

Ratings = Mapping[str, Mapping[str, Hashable]]


# --------------------------------------------------------------------------- the statistics


def _nan_to_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def cohen_pairs(ratings: Ratings) -> list[dict[str, Any]]:
    """Cohen's kappa for every pair of annotators, over the items both rated."""
    from sklearn.metrics import cohen_kappa_score

    annotators = sorted({a for per_item in ratings.values() for a in per_item})
    out = []
    for a, b in itertools.combinations(annotators, 2):
        both = [(r[a], r[b]) for r in ratings.values() if a in r and b in r]
        kappa = None
        if both:
            ya, yb = zip(*both)
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                # Both raters using one and the same category gives 0/0: kappa undefined.
                warnings.simplefilter("ignore")
                kappa = _nan_to_none(cohen_kappa_score(list(map(str, ya)), list(map(str, yb))))
        observed = sum(x == y for x, y in both) / len(both) if both else None
        out.append({"a": a, "b": b, "items": len(both), "observed": observed, "kappa": kappa})
    return out


def fleiss(ratings: Ratings, categories: Sequence[Hashable] | None = None) -> dict[str, Any]:
    """Fleiss' kappa over the items that have the same number of ratings.

    Fleiss' kappa needs an equal number of ratings per item (not the same raters). Items are
    grouped by their number of ratings (2 or more) and the largest group is used; ``items`` and
    ``raters`` in the result say which.
    """
    from statsmodels.stats.inter_rater import fleiss_kappa

    sizes = Counter(len(r) for r in ratings.values() if len(r) >= 2)
    if not sizes:
        return {"kappa": None, "items": 0, "raters": 0}
    raters = max(sizes, key=lambda m: (sizes[m], m))
    rows = [list(r.values()) for r in ratings.values() if len(r) == raters]
    cats = list(categories) if categories is not None else sorted(
        {v for row in rows for v in row}, key=str)
    index = {c: i for i, c in enumerate(cats)}
    table = np.zeros((len(rows), len(cats)))
    for i, row in enumerate(rows):
        for value in row:
            table[i, index[value]] += 1
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        kappa = fleiss_kappa(table, method="fleiss")
    return {"kappa": _nan_to_none(kappa), "items": len(rows), "raters": raters}


def krippendorff_alpha(ratings: Ratings) -> dict[str, Any]:
    """Krippendorff's alpha (nominal) over every item with two or more ratings."""
    try:
        import krippendorff
    except ImportError:
        raise missing_extra("krippendorff", "annotate") from None
    annotators = sorted({a for r in ratings.values() for a in r})
    units = [r for r in ratings.values() if len(r) >= 2]
    values = sorted({v for r in units for v in r.values()}, key=str)
    if not units:
        return {"alpha": None, "items": 0}
    if len(values) < 2:
        # Everyone used one category everywhere: no disagreement, but alpha is 0/0.
        return {"alpha": None, "items": len(units)}
    code = {v: i for i, v in enumerate(values)}
    data = np.full((len(annotators), len(units)), np.nan)
    for j, r in enumerate(units):
        for i, a in enumerate(annotators):
            if a in r:
                data[i, j] = code[r[a]]
    alpha = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    return {"alpha": _nan_to_none(alpha), "items": len(units)}


def observed_agreement(ratings: Ratings) -> float | None:
    """Share of agreeing annotator pairs, averaged over items with two or more ratings."""
    shares = []
    for r in ratings.values():
        values = list(r.values())
        if len(values) < 2:
            continue
        pairs = list(itertools.combinations(values, 2))
        shares.append(sum(x == y for x, y in pairs) / len(pairs))
    return sum(shares) / len(shares) if shares else None


def summarize(ratings: Ratings, categories: Sequence[Hashable] | None = None) -> dict[str, Any]:
    """Observed agreement, Fleiss' kappa and Krippendorff's alpha of one set of ratings."""
    multi = sum(1 for r in ratings.values() if len(r) >= 2)
    return {"items_multi": multi, "observed": observed_agreement(ratings),
            "fleiss": fleiss(ratings, categories), "krippendorff": krippendorff_alpha(ratings)}


# --------------------------------------------------------------------------- from the store


def label_ratings(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        if row.get("status", "labelled") == "labelled" and row["label"] is not None:
            out.setdefault(str(row["item_id"]), {})[row["annotator"]] = int(row["label"])
    return out


def node_ratings(rows: Iterable[Mapping[str, Any]], node: int) -> dict[str, dict[str, bool]]:
    """The yes/no answer at ``node`` (1..4) of every walk that reached it."""
    out: dict[str, dict[str, bool]] = {}
    for row in rows:
        answers = row.get("answers") or []
        if row.get("status", "labelled") == "labelled" and len(answers) >= node:
            out.setdefault(str(row["item_id"]), {})[row["annotator"]] = bool(answers[node - 1])
    return out


def leaf_ratings(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Which unsafe leaf was chosen, for walks that ended unsafe at node 4."""
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        if row.get("status", "labelled") == "labelled" and row["label"] in UNSAFE_LEAVES:
            out.setdefault(str(row["item_id"]), {})[row["annotator"]] = int(row["label"])
    return out


def gold_agreement(ratings: Mapping[str, Mapping[str, int]],
                   gold: Mapping[str, int | None]) -> list[dict[str, Any]]:
    """Accuracy and Cohen's kappa of each annotator against the gold labels."""
    from sklearn.metrics import cohen_kappa_score

    per: dict[str, list[tuple[int, int]]] = {}
    for item, r in ratings.items():
        g = gold.get(item)
        if g is None:
            continue
        for annotator, value in r.items():
            per.setdefault(annotator, []).append((value, g))
    out = []
    for annotator in sorted(per):
        pairs = per[annotator]
        ya, yg = zip(*pairs)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            kappa = _nan_to_none(cohen_kappa_score(ya, yg))
        out.append({"annotator": annotator, "items": len(pairs),
                    "accuracy": sum(a == g for a, g in pairs) / len(pairs), "kappa": kappa})
    return out


@dataclass(frozen=True)
class Adjudication:
    item_id: str
    label: int | None  # None when the top labels tie or nobody labelled the item
    votes: dict[int, int]
    tie: bool

    @property
    def annotations(self) -> int:
        return sum(self.votes.values())


def adjudicate(ratings: Mapping[str, Mapping[str, int]],
               item_ids: Sequence[str]) -> list[Adjudication]:
    """Majority label per item, in ``item_ids`` order; a tie for the top is flagged."""
    out = []
    for item in item_ids:
        votes = Counter(ratings.get(item, {}).values())
        if not votes:
            out.append(Adjudication(item, None, {}, False))
            continue
        ranked = votes.most_common()
        tie = len(ranked) > 1 and ranked[0][1] == ranked[1][1]
        out.append(Adjudication(item, None if tie else ranked[0][0],
                                dict(sorted(votes.items())), tie))
    return out


def agreement_report(store: Any) -> dict[str, Any]:
    """Every statistic for an annotation store, as a JSON-ready dict."""
    rows = store.annotations()
    labels = label_ratings(rows)
    if not labels:
        raise DataError(f"{store.path}: no annotations yet, nothing to measure")
    examples = store.examples()
    gold = {ex.id: ex.label for ex in examples}
    binary = {i: {a: ("safe" if v == SAFE_LABEL else "unsafe") for a, v in r.items()}
              for i, r in labels.items()}
    nodes = []
    for node in NODES:
        stats = summarize(node_ratings(rows, node.number), [False, True])
        nodes.append({"node": node.number, "title": node.title, **stats})
    nodes.append({"node": "4-leaf", "title": "Unsafe kind", **summarize(
        leaf_ratings(rows), list(UNSAFE_LEAVES))})
    report: dict[str, Any] = {
        "items": len(examples),
        "annotated_items": len(labels),
        "annotations": sum(len(r) for r in labels.values()),
        "annotators": sorted({a for r in labels.values() for a in r}),
        "label": summarize(labels, [c.id for c in CATEGORIES]),
        "binary": summarize(binary, ["safe", "unsafe"]),
        "pairs": cohen_pairs(labels),
        "nodes": nodes,
    }
    if any(g is not None for g in gold.values()):
        adjudicated = [a for a in adjudicate(labels, [ex.id for ex in examples])  # type: ignore[misc]
                       if a.label is not None and gold.get(a.item_id) is not None]
        majority = None
        if adjudicated:
            majority = {"items": len(adjudicated),
                        "accuracy": sum(a.label == gold[a.item_id] for a in adjudicated)
                        / len(adjudicated)}
        report["gold"] = {"items": sum(g is not None for g in gold.values()),
                          "annotators": gold_agreement(labels, gold), "majority": majority}
    return report


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f} %" if pct else f"{value:.3f}"


def format_report(report: Mapping[str, Any]) -> str:
    """The agreement report as plain text."""
    lines = [(f"items: {report['items']}, annotated: {report['annotated_items']}, "
             f"annotations: {report['annotations']}, annotators: "
             f"{', '.join(report['annotators'])}"), ""]

    def block(title: str, s: Mapping[str, Any]) -> str:
        f, k = s["fleiss"], s["krippendorff"]
        return (f"{title:<28} items with 2+ ratings {s['items_multi']:>5} | observed "
                f"{_fmt(s['observed'], True):>8} | Fleiss' kappa {_fmt(f['kappa']):>6} "
                f"({f['items']} items x {f['raters']} raters) | Krippendorff's alpha "
                f"{_fmt(k['alpha']):>6}")

    lines.append(block("label (8 categories)", report["label"]))
    lines.append(block("binary (safe / unsafe)", report["binary"]))
    lines += ["", "per node (answers of walks that reached the node):"]
    for node in report["nodes"]:
        lines.append(block(f"  node {node['node']} {node['title']}", node))
    lines += ["", "Cohen's kappa per pair (label):"]
    for p in report["pairs"]:
        lines.append(f"  {p['a']} / {p['b']}: {p['items']} shared items, observed "
                     f"{_fmt(p['observed'], True)}, kappa {_fmt(p['kappa'])}")
    if not report["pairs"]:
        lines.append("  (only one annotator)")
    if "gold" in report:
        g = report["gold"]
        lines += ["", f"agreement with gold labels ({g['items']} items have one):"]
        for row in g["annotators"]:
            lines.append(f"  {row['annotator']}: {row['items']} items, accuracy "
                         f"{_fmt(row['accuracy'], True)}, Cohen's kappa {_fmt(row['kappa'])}")
        if g["majority"]:
            lines.append(f"  majority label (ties left out): {g['majority']['items']} items, "
                         f"accuracy {_fmt(g['majority']['accuracy'], True)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- export


TiePolicy = Literal["omit", "unlabelled"]


def export_adjudicated(store: Any, out: str | os.PathLike[str], ties: TiePolicy = "omit",
                       min_annotators: int = 1) -> dict[str, Any]:
    """Write the majority labels in the dataset format (``.json`` list, else JSONL).

    Every row keeps ``votes`` (label id -> count), ``annotations`` and ``tie``, which the
    dataset loader keeps as item metadata. Tied items are left out (``ties="omit"``) or written
    without a label (``ties="unlabelled"``, for a second round of annotation); items with fewer
    than ``min_annotators`` annotations are left out. The summary lists what was left out.
    """
    if ties not in ("omit", "unlabelled"):
        raise UsageError(f"ties must be 'omit' or 'unlabelled', got {ties!r}")
    if min_annotators < 1:
        raise UsageError("min_annotators must be at least 1")
    examples = store.examples()
    labels = label_ratings(store.annotations())
    decisions = {a.item_id: a for a in adjudicate(labels, [ex.id for ex in examples])}
    rows, tied, too_few = [], [], []
    for ex in examples:
        d = decisions[ex.id]
        if d.annotations < min_annotators:
            too_few.append(ex.id)
            continue
        if d.tie:
            tied.append(ex.id)
            if ties == "omit":
                continue
        row: dict[str, Any] = {"id": ex.id, "context": ex.context, "response": ex.response}
        if d.label is not None:
            row["label"] = d.label
        row["annotations"] = d.annotations
        row["votes"] = {str(k): v for k, v in d.votes.items()}
        row["tie"] = d.tie
        if ex.label is not None:
            row["gold_label"] = ex.label
        rows.append(row)
    if not rows:
        raise DataError(f"{store.path}: no item has an adjudicated label to export "
                        f"({len(tied)} tied, {len(too_few)} with fewer than {min_annotators} "
                        "annotations); nothing was written")
    path = Path(out)
    write_json_rows(path, rows)
    counts = Counter(r.get("label") for r in rows)
    labels = {label_name(k): v for k, v in sorted(counts.items(), key=lambda kv: (
        kv[0] is None, kv[0] or 0)) if k is not None}
    if None in counts:
        labels["unlabelled (tied)"] = counts[None]
    return {"written": len(rows), "tied": tied, "too_few": too_few, "ties": ties,
            "labels": labels}
