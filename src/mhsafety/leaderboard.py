"""The leaderboard: several systems over the same items, one table and one page (floor 7).

Systems come from specs (:func:`~mhsafety.registry.create_classifier`: judges, guard-model
kinds, encoders, the baseline), saved checkpoints (a folder), prediction records or harness
logs (``records:PATH``, or ``LeaderboardSettings.records``), and the paper's released
outputs (``paper:RELEASE``, rows labelled "paper"). Numbers that cannot flatter:

- a system that learns is never fitted on the items it is scored on: a spec that needs
  training is *cross-fitted* (k grouped folds of :func:`~mhsafety.data.stratified_kfold`,
  each item predicted by a model that never saw its dialogue context) and its row says so;
- a checkpoint whose training data overlaps the items is refused
  (:func:`~mhsafety.data.check_checkpoint_overlap`), or with ``allow_overlap`` marked;
- an abstention or invalid answer lands on the wrong side of every score (a miss on an unsafe
  item, a false alarm on a safe one, a wrong label; below every score in a ranking);
- a binary-only system (records with ``pred`` null and ``unsafe`` set) gets no eight-label
  score ("–"), never a guessed one;
- every score carries a 95 % percentile bootstrap interval over items; the same item draws
  serve every run of a system and every system (run-aware: each resample scores every run and
  averages them, as the point estimate does).

The headline (sort) metric is Cohen's kappa of the binary verdict (unsafe or not) against the
gold labels (:data:`HEADLINE`): every system can answer it, including binary-only guards; it
is chance-corrected, so a system that flags everything (recall 100 %) or nothing scores 0; it
counts misses and false alarms both; and an abstention is a disagreement.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .analysis.nodes import DECISIONS, node_scores
from .analysis.stats import (
    DEFAULT_LEVEL,
    EXACT_BELOW,
    _percentiles,
    bootstrap_weights,
    group_sizes,
)
from .analysis.validity import (
    accuracy_weights,
    kappa_from_confusion,
    panel_vote,
    reliability,
)
from .data import DEFAULT_FOLDS, Example, load_examples, resolve_data, stratified_kfold
from .errors import DataError, UsageError
from .metrics import scores_from_confusion
from .records import (
    NOTE_BINARY_ONLY,
    NOTE_OVERLAP,
    PredictionRecord,
    load_runs,
    merge_notes,
    note_text,
    write_records,
)
from .settings import DEFAULT_SEED, Settings, SettingsError, at_least, positive, setting
from .taxonomy import NUM_LABELS, SAFE_LABEL

HEADLINE = "kappa_binary"
DEFAULT_RESAMPLES = 1000
DEFAULT_MATCHED_FALSE_ALARM = 0.10
DASH = "–"
PAPER_SOURCE = "paper (the authors' released outputs)"
CROSS_FITTED = "cross-fitted on these items ({folds} grouped folds, seed {seed})"


def _fraction(value: Any) -> str | None:
    return None if 0 < float(value) < 1 else "must be between 0 and 1"


@dataclass(frozen=True)
class LeaderboardSettings(Settings):
    """What ``mhsafety leaderboard`` runs; errors name these parameters."""

    systems: list[str] = setting([], "Systems, each [NAME=]SPEC: baseline, encoder:NAME, "
                                 "judge:MODEL@URL, a guard-model kind spec, a checkpoint "
                                 "folder, records:FILE_OR_DIR, paper:RELEASE.")
    records: list[str] = setting([], "Prediction files or folders (and harness logs) to rank "
                                 "beside the systems.")
    data: str | None = setting(None, "Labelled items every system is scored on [default: the "
                               "cached public test set].")
    panel: str | None = setting(None, "Add a panel of every system: majority vote, or "
                                "weighted by accuracy measured out-of-fold.",
                                choices=("majority", "weighted"))
    matched_false_alarm: float = setting(DEFAULT_MATCHED_FALSE_ALARM, "False-alarm rate at "
                                         "which recall is read off the curve of systems with "
                                         "probabilities.", check=_fraction)
    resamples: int = setting(DEFAULT_RESAMPLES, "Bootstrap resamples per interval.",
                             check=positive)
    seed: int = setting(DEFAULT_SEED, "Seed of the bootstrap and of the cross-fitting folds.")
    folds: int = setting(DEFAULT_FOLDS, "Folds for cross-fitting and out-of-fold panel weights.",
                         check=at_least(2))
    config: dict[str, Any] = setting({}, "Settings of the systems: KEY applies to every "
                                     "system, SYSTEM.KEY to one (its name or kind), as in "
                                     "benchmark.")
    allow_overlap: bool = setting(False, "Score a checkpoint whose training data overlaps the "
                                  "items (its row is marked).")


# --------------------------------------------------------------------------- entries


@dataclass
class Entry:
    """One system of the board: its runs' records aligned with the items, and where they
    came from."""

    name: str
    source: str
    runs: dict[str, list[PredictionRecord]]
    notes: list[str] = field(default_factory=list)
    seconds: float | None = None  # wall time to predict every run here (None: not run here)
    tokens: int | None = None

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.name).strip("-")[:80] or "system"


def _split_name(text: str) -> tuple[str, str]:
    name, sep, spec = text.partition("=")
    if not sep or ":" in name or "/" in name:  # a spec may hold '=' (a URL query)
        return "", text.strip()
    return name.strip(), spec.strip()


def _align(runs: dict[str, list[PredictionRecord]], items: Sequence[Example], ids: list[str],
           where: str) -> dict[str, list[PredictionRecord]]:
    """Each run's records in item order; a run must cover exactly the items, gold agreeing."""
    out = {}
    for run, records in runs.items():
        by_id = {r.id: r for r in records}
        missing = [i for i in ids if i not in by_id]
        extra = sorted(set(by_id) - set(ids))
        if missing or extra:
            raise DataError(f"{where}: run {run!r} covers other items than the data "
                            f"({len(missing)} missing, {len(extra)} not in it): a leaderboard "
                            "scores every system on the same items")
        for ex, i in zip(items, ids):
            if by_id[i].gold is not None and by_id[i].gold != ex.label:
                raise DataError(f"{where}: item {i!r} has gold {by_id[i].gold} in the records "
                                f"but {ex.label} in the data: records of other items?")
        out[run] = [by_id[i] for i in ids]
    return out


def _records_entries(path: str, name: str, items: Sequence[Example], ids: list[str],
                     settings: LeaderboardSettings,
                     log: Callable[[str], None] | None) -> list[Entry]:
    from .training import check_records_overlap

    systems = load_runs([path])
    # Records that name the checkpoint which made them (predict) are checked against its
    # training data as evaluate checks them: refused, or marked with allow_overlap.
    shared = check_records_overlap(systems, None, items, settings.allow_overlap,
                                   warn=(lambda text: log(f"warning: {text}")) if log else None)
    out = []
    for system, runs in systems.items():
        aligned = _align({r.run: r.records for r in runs}, items, ids, f"{path} ({system})")
        label = name if name and len(systems) == 1 else system
        marks = [NOTE_OVERLAP] if system in shared else []
        out.append(Entry(label, f"records {path}", aligned,
                         merge_notes(*(r.notes for r in runs), marks)))
    return out


def _paper_entries(path: str, items: Sequence[Example], ids: list[str]) -> list[Entry]:
    from .upstream import SYSTEMS, open_release, read_system

    out = []
    with open_release(path) as root:
        for system in SYSTEMS:
            runs = read_system(root, system, n_items=len(items))
            for records in runs.values():
                for rec, i in zip(records, ids):
                    rec.id = i
            runs = _align(runs, items, ids, f"{path} ({system.name})")
            out.append(Entry(f"paper: {system.name}", PAPER_SOURCE, runs,
                             merge_notes(*(r.all_notes for rs in runs.values() for r in rs))))
    return out


def _spec_entry(name: str, spec: str, items: Sequence[Example], ids: list[str],
                settings: LeaderboardSettings, config: dict[str, Any]) -> Entry:
    from .benchmark import cv_run
    from .registry import create_classifier

    start = time.perf_counter()
    clf = create_classifier(spec, seed=settings.seed, **config)
    notes = list(getattr(clf, "design_notes", ()))
    seed = settings.seed
    tokens: int | None = None
    if clf.needs_training:
        source = CROSS_FITTED.format(folds=settings.folds, seed=seed)
        runs = {f"seed-{seed}": cv_run(spec, items, seed, settings.folds, name,
                                       [source, *notes], config)}
    else:
        source = "measured here (no training)"
        found = _judge_runs(clf, items, name, notes)
        if found is not None:
            runs, tokens = found
        else:
            runs = {f"seed-{seed}": clf.predict_records(items, name, f"seed-{seed}")}
    seconds = time.perf_counter() - start
    for records in runs.values():
        for rec, i in zip(records, ids):
            rec.id = i
    return Entry(name, source, _align(runs, items, ids, name), notes, seconds, tokens)


def _judge_runs(clf: Any, items: Sequence[Example], name: str, notes: list[str]
               ) -> tuple[dict[str, list[PredictionRecord]], int | None] | None:
    """A zero-shot judge's rounds, each its own run (so self-consistency is measurable), and
    the tokens it spent; None for any other system (or a judge set to vote)."""
    from .judge import JudgeSettings, judge_examples

    settings = getattr(clf, "settings", None)
    if not isinstance(settings, JudgeSettings) or settings.vote:
        return None
    result = judge_examples(items, settings, getattr(clf, "transport", None))
    runs = {}
    for r, records in sorted(((k, v) for k, v in result.records.items() if k.isdigit()),
                             key=lambda kv: int(kv[0])):
        for rec in records:
            rec.system, rec.run = name, f"round-{r}"
            rec.notes = merge_notes(notes, rec.all_notes)
        runs[f"round-{r}"] = list(records)
    return runs, _tokens(result.tokens)


def _tokens(totals: dict[str, int] | None) -> int | None:
    if not totals:
        return None
    total = totals.get("total_tokens") or (totals.get("prompt_tokens", 0)
                                            + totals.get("completion_tokens", 0))
    return int(total) or None


def _checkpoint_entry(name: str, folder: str, items: Sequence[Example], ids: list[str],
                      settings: LeaderboardSettings, data_name: str) -> Entry:
    from .classifiers.base import read_manifest
    from .data import check_checkpoint_overlap
    from .registry import load_classifier

    manifest = read_manifest(folder)
    found = check_checkpoint_overlap(manifest, items, folder, data_name, settings.allow_overlap)
    notes = [NOTE_OVERLAP] if found.shared else []
    clf = load_classifier(folder)
    start = time.perf_counter()
    records = clf.predict_records(items, name, "0")
    seconds = time.perf_counter() - start
    for rec, i in zip(records, ids):
        rec.id = i
        rec.notes = merge_notes(rec.notes, notes)
    return Entry(name, f"checkpoint {folder}", _align({"0": records}, items, ids, folder),
                 merge_notes(notes, *(r.all_notes for r in records)), seconds)


def _is_records(spec: str) -> bool:
    """A prediction file, harness log, or a folder of them that is no checkpoint."""
    p = Path(spec)
    if p.is_dir():
        return not (p / "manifest.json").is_file()
    return p.is_file()


def collect_entries(settings: LeaderboardSettings, items: Sequence[Example], data_name: str,
                    log: Callable[[str], None] | None = None) -> list[Entry]:
    """Every system of ``settings`` as an :class:`Entry` over ``items`` (in order)."""
    ids = [ex.id or str(i) for i, ex in enumerate(items)]
    texts = [*settings.systems, *(f"records:{p}" for p in settings.records)]
    from .benchmark import SystemSpec, system_config
    from .registry import checked_config

    parsed = [_split_name(t) for t in texts]
    runnable = [SystemSpec(name or spec, spec) for name, spec in parsed
                if spec.partition(":")[0] not in ("records", "paper") and not Path(spec).is_dir()
                and not _is_records(spec)]
    configs = {s.name: checked_config(s.spec, system_config(s, settings.config, runnable),
                                      f"config for {s.name}") for s in runnable}
    entries: list[Entry] = []
    for name, spec in parsed:
        kind, _, argument = spec.partition(":")
        if log:
            log(f"leaderboard: {name or spec}")
        if kind != "records" and _is_records(spec):  # a records file or folder named bare
            kind, argument = "records", spec
        if kind == "records":
            entries += _records_entries(argument, name, items, ids, settings, log)
        elif kind == "paper":
            entries += _paper_entries(argument, items, ids)
        elif Path(spec).is_dir():
            entries.append(_checkpoint_entry(name or Path(spec).name, spec, items, ids,
                                             settings, data_name))
        else:
            entries.append(_spec_entry(name or spec, spec, items, ids, settings,
                                       configs[name or spec]))
    names = [e.name for e in entries]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise UsageError(f"systems: two systems are named {dup!r}; name them with NAME=SPEC")
    return entries


# --------------------------------------------------------------------------- views of a run


def _labels(records: Sequence[PredictionRecord]) -> np.ndarray:
    return np.array([-1 if r.pred is None else r.pred for r in records], dtype=int)


def _unsafe(records: Sequence[PredictionRecord]) -> np.ndarray:
    """1 unsafe, 0 safe, -1 no verdict: from the label, else a binary-only verdict."""
    return np.array([-1 if r.said_unsafe is None else int(r.said_unsafe) for r in records],
                    dtype=int)


def _p_unsafe(records: Sequence[PredictionRecord]) -> np.ndarray | None:
    """P(unsafe) per item (NaN where none), or None when the system gives no probabilities."""
    values = []
    for r in records:
        if r.p_unsafe is not None:  # a guard model's own, from its log-probabilities
            values.append(float(r.p_unsafe))
        elif r.probs is not None and r.said_unsafe is not None:
            values.append(1.0 - float(r.probs[SAFE_LABEL]))
        else:
            values.append(math.nan)
    arr = np.array(values, dtype=float)
    return None if np.isnan(arr).all() else arr


def names_labels(entry: Entry) -> bool:
    """False for a binary-only system: a record says so, or gives a verdict but no label."""
    return not any((r.pred is None and r.unsafe is not None) or NOTE_BINARY_ONLY in r.notes
                   for records in entry.runs.values() for r in records)


def _meta_number(records: Sequence[PredictionRecord], key: str) -> np.ndarray | None:
    values = []
    for r in records:
        v = r.meta.get(key)
        if key == "tokens" and isinstance(v, dict):
            v = v.get("total_tokens")
        values.append(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
                      else math.nan)
    arr = np.array(values)
    return None if np.isnan(arr).any() else arr


# --------------------------------------------------------------------------- scores


@dataclass
class Score:
    """A score with its bootstrap interval (fractions; kappa on its own scale)."""

    estimate: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


@dataclass
class Row:
    """One system's line of the board."""

    name: str
    source: str
    n: int
    runs: int
    notes: list[str]
    labels: bool
    scores: dict[str, Score | None]
    nodes: dict[str, Score | None]
    self_alpha: float | None = None
    seconds_per_1000: float | None = None
    tokens_per_1000: float | None = None
    cost_per_1000: Score | None = None
    curve: tuple[list[float], list[float]] | None = None

    @property
    def headline(self) -> float:
        s = self.scores.get(HEADLINE)
        return s.estimate if s is not None and math.isfinite(s.estimate) else -math.inf

    def to_dict(self) -> dict[str, Any]:
        return {"system": self.name, "source": self.source, "n": self.n, "runs": self.runs,
                "notes": [note_text(n) for n in self.notes], "names_labels": self.labels,
                "scores": {k: v.to_dict() if v else None for k, v in self.scores.items()},
                "nodes": {k: v.to_dict() if v else None for k, v in self.nodes.items()},
                "self_consistency_alpha": self.self_alpha,
                "seconds_per_1000_items": self.seconds_per_1000,
                "tokens_per_1000_items": self.tokens_per_1000,
                "cost_per_1000_items": self.cost_per_1000.to_dict() if self.cost_per_1000
                else None}


# Each column: (key, title, percent?) in table order.
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("kappa_binary", "κ unsafe vs gold", False),
    ("unsafe_recall", "Unsafe recall", True),
    ("false_alarm", "False alarms", True),
    ("recall_at_fa", "Recall @ matched FA", True),
    ("accuracy", "Acc (8)", True),
    ("macro_f1", "Macro-F1 (8)", True),
    ("kappa_labels", "κ 8-way", False),
    ("coverage", "Coverage", True),
)
NODE_METRIC = "f1"


def _onehot(codes: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((codes.size, size), dtype=np.float32)
    out[np.arange(codes.size), codes] = 1.0
    return out


def _recall_at(scores: np.ndarray, pos: np.ndarray, weights: np.ndarray,
               target: float) -> np.ndarray:
    """Recall at false-alarm rate <= ``target`` when flagging every item scoring at least a
    threshold, for each weight row; also reached thresholds only (ties move together)."""
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    last = np.r_[s[1:] != s[:-1], True]  # end of each block of equal scores
    w = weights[:, order]
    tp = np.cumsum(w * pos[order], axis=1)[:, last]
    fp = np.cumsum(w * (~pos[order]), axis=1)[:, last]
    npos, nneg = tp[:, -1:], fp[:, -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr, fpr = tp / npos, fp / nneg
    ok = fpr <= target + 1e-12
    return np.where(ok, tpr, 0.0).max(axis=1, initial=0.0)


def _ranking_scores(p: np.ndarray, gold_unsafe: np.ndarray) -> np.ndarray:
    """P(unsafe) with each missing one put on the wrong side of every threshold."""
    return np.where(np.isnan(p), np.where(gold_unsafe, -np.inf, np.inf), p)


class _Scorer:
    """Every score of every run of a system, for one batch of bootstrap weights (b, n)."""

    def __init__(self, gold: np.ndarray, entry: Entry, target: float) -> None:
        self.gold = gold
        self.pos = gold != SAFE_LABEL
        self.runs = list(entry.runs.values())
        self.labels = names_labels(entry)
        self.target = target
        self.unsafe = [_unsafe(r) for r in self.runs]
        self.valid = [u >= 0 for u in self.unsafe]
        probs = [_p_unsafe(r) for r in self.runs]
        self.ranks = ([_ranking_scores(p, self.pos) for p in probs]  # type: ignore[arg-type]
                      if all(p is not None for p in probs) else None)
        # Confusions as one-hot codes, multiplied by the weights: gold x (label or invalid).
        self.conf8 = [_onehot(gold * (NUM_LABELS + 1)
                              + np.where(lab < 0, NUM_LABELS, lab), NUM_LABELS * (NUM_LABELS + 1))
                      for lab in map(_labels, self.runs)] if self.labels else None
        self.conf2 = [_onehot(self.pos.astype(int) * 3 + np.where(u < 0, 2, u), 6)
                      for u in self.unsafe]
        r = len(self.runs)
        self.hits = sum((self.pos & (u == 1)).astype(np.float32) for u in self.unsafe) / r
        self.alarms = sum(((~self.pos) & (u != 0)).astype(np.float32) for u in self.unsafe) / r
        self.answered = sum(v.astype(np.float32) for v in self.valid) / r

    def __call__(self, w: np.ndarray) -> dict[str, np.ndarray]:
        npos, nneg = w @ self.pos.astype(np.float32), w @ (~self.pos).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = {"unsafe_recall": (w @ self.hits) / npos,
                   "false_alarm": (w @ self.alarms) / nneg,
                   "coverage": (w @ self.answered) / w.sum(axis=1)}
        b = w.shape[0]
        k2 = [kappa_from_confusion(np.pad((w @ c).reshape(b, 2, 3), ((0, 0), (0, 1), (0, 0))))
              for c in self.conf2]
        out["kappa_binary"] = np.mean(k2, axis=0)
        if self.ranks is not None:
            out["recall_at_fa"] = np.mean([_recall_at(s, self.pos, w, self.target)
                                           for s in self.ranks], axis=0)
        if self.conf8 is not None:
            confs = [(w @ c).reshape(b, NUM_LABELS, NUM_LABELS + 1) for c in self.conf8]
            per_run = [scores_from_confusion(c) for c in confs]
            for name in ("accuracy", "macro_f1"):
                out[name] = np.mean([s[name] for s in per_run], axis=0)
            out["kappa_labels"] = np.mean(
                [kappa_from_confusion(np.pad(c, ((0, 0), (0, 1), (0, 0)))) for c in confs],
                axis=0)
            nodes = [node_scores(c) for c in confs]
            for d in DECISIONS:
                key = f"{d.key}:{NODE_METRIC}"
                with np.errstate(invalid="ignore"):
                    out[f"node:{d.key}"] = np.mean([s[key] for s in nodes], axis=0)
        return out


def _interval(point: float, draws: np.ndarray, level: float) -> Score:
    low, high = _percentiles(draws, level)
    return Score(float(point), low, high)


def score_entries(entries: Sequence[Entry], items: Sequence[Example],
                  settings: LeaderboardSettings, level: float = DEFAULT_LEVEL) -> list[Row]:
    """One :class:`Row` per entry, sorted by the headline metric (best first)."""
    gold = np.array([ex.label for ex in items], dtype=int)
    n = gold.size
    ones = np.ones((1, n), dtype=np.float32)
    chunks = bootstrap_weights(n, settings.resamples, settings.seed)
    sizes = group_sizes(gold)
    rows = []
    for entry in entries:
        scorer = _Scorer(gold, entry, settings.matched_false_alarm)
        point = {k: float(v[0]) for k, v in scorer(ones).items()}
        draws: dict[str, list[np.ndarray]] = {}
        for w in chunks:
            for k, v in scorer(w).items():
                draws.setdefault(k, []).append(v)
        scores: dict[str, Score | None] = {key: None for key, _, _ in COLUMNS}
        nodes: dict[str, Score | None] = {d.key: None for d in DECISIONS}
        for k, v in point.items():
            iv = _interval(v, np.concatenate(draws[k]), level)
            if k.startswith("node:"):
                # An F1 over fewer than EXACT_BELOW items gets no interval (as analyze).
                if sizes[f"{k[5:]}:{NODE_METRIC}"] < EXACT_BELOW:
                    iv = Score(iv.estimate, math.nan, math.nan)
                nodes[k[5:]] = iv
            else:
                scores[k] = iv
        row = Row(entry.name, entry.source, n, len(entry.runs), entry.notes, scorer.labels,
                  scores, nodes)
        if len(entry.runs) > 1:
            views = {run: (_labels(r) if scorer.labels else _unsafe(r))
                     for run, r in entry.runs.items()}
            row.self_alpha = (reliability(views).alpha if scorer.labels
                              else _alpha_binary(views))
        total = n * len(entry.runs)
        if entry.seconds is not None:
            row.seconds_per_1000 = entry.seconds / total * 1000
        else:
            lat = [_meta_number(r, "latency_s") for r in entry.runs.values()]
            if all(x is not None for x in lat):
                row.seconds_per_1000 = float(np.mean(lat)) * 1000
        tok = [_meta_number(r, "tokens") for r in entry.runs.values()]
        if entry.tokens is not None:
            row.tokens_per_1000 = entry.tokens / total * 1000
        elif all(x is not None for x in tok):
            row.tokens_per_1000 = float(np.mean(tok)) * 1000
        cost = [_meta_number(r, "cost_usd") for r in entry.runs.values()]
        if all(x is not None for x in cost):
            per_item = np.mean(cost, axis=0) * 1000
            boot = np.concatenate([(w @ per_item) / w.sum(axis=1) for w in chunks])
            row.cost_per_1000 = _interval(float(per_item.mean()), boot, level)
        if scorer.ranks is not None:
            row.curve = _curve(np.concatenate(scorer.ranks), np.tile(scorer.pos, len(scorer.ranks)))
        rows.append(row)
    rows.sort(key=lambda r: -r.headline)
    return rows


def _alpha_binary(views: dict[str, np.ndarray]) -> float | None:
    # Binary verdicts as 0/1 ints would be read as labels (0 = a label): give booleans.
    verdicts = {k: [None if x < 0 else bool(x) for x in v] for k, v in views.items()}
    return reliability(verdicts, binary=True).alpha


def _curve(scores: np.ndarray, pos: np.ndarray) -> tuple[list[float], list[float]]:
    from sklearn.metrics import roc_curve

    finite = np.clip(scores, -1.0, 2.0)  # a missing score stays on its wrong side
    fpr, tpr, _ = roc_curve(pos.astype(int), finite)
    return fpr.tolist(), tpr.tolist()


# --------------------------------------------------------------------------- agreement, panel


@dataclass
class Agreement:
    """How the systems agree with each other (each system's run-majority answer)."""

    binary_alpha: float | None
    labels_alpha: float | None
    systems: list[str]
    pairs: list[dict[str, Any]]

    def kappa(self, a: str, b: str) -> float | None:
        """Cohen's kappa of two systems' binary verdicts."""
        return next((p["kappa"] for p in self.pairs if {p["a"], p["b"]} == {a, b}), None)

    def to_dict(self) -> dict[str, Any]:
        return {"binary_alpha": self.binary_alpha, "labels_alpha": self.labels_alpha,
                "systems": self.systems, "pairs": self.pairs}


def majority(entry: Entry, binary: bool) -> np.ndarray:
    """A system's answer per item over its runs: the vote of its runs (-1 on ties)."""
    runs = list(entry.runs.values())
    if binary:
        views = [[None if u < 0 else bool(u) for u in _unsafe(r)] for r in runs]
        return panel_vote(views, binary=True) if len(runs) > 1 else _unsafe(runs[0])
    views = [_labels(r) for r in runs]
    return panel_vote(views) if len(runs) > 1 else views[0]


def _bools(view: np.ndarray) -> list[bool | None]:
    return [None if x < 0 else bool(x) for x in view]


def agreement(entries: Sequence[Entry]) -> Agreement | None:
    """Krippendorff's alpha among the systems: on the binary view (all), and on the eight
    labels (those that name labels)."""
    if len(entries) < 2:
        return None
    binary = {e.name: _bools(majority(e, True)) for e in entries}
    rel = reliability(binary, binary=True)
    labelled = {e.name: majority(e, False) for e in entries if names_labels(e)}
    labels_alpha = reliability(labelled).alpha if len(labelled) > 1 else None
    return Agreement(rel.alpha, labels_alpha, [e.name for e in entries], list(rel.pairs))


def panel_entry(entries: Sequence[Entry], items: Sequence[Example], how: str,
                settings: LeaderboardSettings) -> Entry:
    """A panel of ``entries`` voting per item, itself a system of the board. ``weighted``
    weighs each system by its accuracy measured out of fold (grouped folds): an item's vote
    uses weights from the other folds' items only, never its own."""
    binary = not all(names_labels(e) for e in entries)
    votes = [majority(e, binary) for e in entries]
    gold = np.array([ex.label for ex in items])
    graders = [_bools(v) for v in votes] if binary else votes
    if how == "majority":
        answer = panel_vote(graders, binary=binary)
        source = f"panel: majority of {len(entries)} systems"
    else:
        answer = np.full(gold.size, -1, dtype=int)
        for train_idx, test_idx in stratified_kfold(items, settings.folds, settings.seed):
            gold_view = ([bool(g != SAFE_LABEL) for g in gold[train_idx]] if binary
                         else gold[train_idx])
            w = accuracy_weights(gold_view, [[g[i] for i in train_idx] for g in graders],
                                 binary=binary, scheme="log_odds")
            answer[test_idx] = panel_vote([[g[i] for i in test_idx] for g in graders], w,
                                          binary=binary)
        source = (f"panel: {len(entries)} systems weighted by accuracy measured out of fold "
                  f"({settings.folds} grouped folds)")
    name = f"Panel ({how})"
    ids = [ex.id or str(i) for i, ex in enumerate(items)]
    records = [PredictionRecord(i, ex.label,
                                None if binary or a < 0 else int(a), name, "0",
                                unsafe=(None if a < 0 else bool(a)) if binary else None,
                                error="panel tied or silent" if a < 0 else None,
                                notes=[NOTE_BINARY_ONLY] if binary else [])
               for i, ex, a in zip(ids, items, answer)]
    return Entry(name, source, {"0": records}, merge_notes(*(e.notes for e in entries)))


# --------------------------------------------------------------------------- tables


def _cell(score: Score | None, percent: bool, decimals: int = 1) -> str:
    if score is None or not math.isfinite(score.estimate):
        return DASH
    if not math.isfinite(score.low):
        value = 100 * score.estimate if percent else score.estimate
        return f"{value:.{decimals if percent else 2}f} (n < {EXACT_BELOW}: no interval)"
    if percent:
        return (f"{100 * score.estimate:.{decimals}f} "
                f"[{100 * score.low:.{decimals}f}, {100 * score.high:.{decimals}f}]")
    return f"{score.estimate:.2f} [{score.low:.2f}, {score.high:.2f}]"


def _plain(value: float | None, digits: int = 1) -> str:
    return DASH if value is None or not math.isfinite(value) else f"{value:,.{digits}f}"


HEADERS = ["System", "Source", "n", *(title for _, title, _ in COLUMNS), "Self α",
           "s / 1k items", "Tokens / 1k", "Cost / 1k (USD)", "Notes"]


def table_cells(rows: Sequence[Row]) -> list[list[str]]:
    out = []
    for r in rows:
        runs = f"{r.n} × {r.runs} runs" if r.runs > 1 else str(r.n)
        out.append([r.name, r.source, runs,
                    *(_cell(r.scores.get(k), pct) for k, _, pct in COLUMNS),
                    _plain(r.self_alpha, 2), _plain(r.seconds_per_1000, 2),
                    _plain(r.tokens_per_1000, 0),
                    _cell(r.cost_per_1000, False) if r.cost_per_1000 else DASH,
                    "; ".join(note_text(n) for n in r.notes)])
    return out


def node_cells(rows: Sequence[Row]) -> tuple[list[str], list[list[str]]]:
    headers = ["System", *(f"{d.key} F1" for d in DECISIONS)]
    return headers, [[r.name, *(_cell(r.nodes.get(d.key), True) for d in DECISIONS)]
                     for r in rows]


def markdown(headers: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")
    lines = ["| " + " | ".join(map(esc, headers)) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(map(esc, row)) + " |" for row in cells]
    return "\n".join(lines)


def terminal(rows: Sequence[Row]) -> str:
    """A compact table for the terminal (the files hold every column)."""
    keep = [0, 2, 3, 4, 5, 6, 7, 8, 10]
    cells = [[c[i] for i in keep] for c in table_cells(rows)]
    heads = [HEADERS[i] for i in keep]
    widths = [max(len(h), *(len(c[j]) for c in cells)) for j, h in enumerate(heads)]
    fmt = lambda row: "  ".join(str(v).ljust(w) for v, w in zip(row, widths))
    return "\n".join([fmt(heads), fmt(["-" * w for w in widths]), *map(fmt, cells)])


LEGEND = (
    "Sorted by κ unsafe vs gold (Cohen's kappa of the binary verdict against the gold labels; "
    "an abstention disagrees). Unsafe recall and false alarms at each system's own operating "
    "point; an abstention is a miss on an unsafe item and a false alarm on a safe one. "
    "Recall @ matched FA: recall where the system's P(unsafe) curve reaches {fa:.0%} false "
    "alarms (systems with probabilities; the threshold is read off these items, so it "
    "describes the ranking, not a deployable setting). (8): eight-label scores, \"–\" for "
    "binary-only systems. Brackets: 95 % percentile bootstrap over items ({resamples} "
    "resamples, the same draws for every run and system). Self α: Krippendorff's alpha "
    "across a system's runs. s / 1k items: wall time of producing the predictions here (all "
    "runs; a cross-fitted system's fits included), or the records' meta.latency_s.")


# --------------------------------------------------------------------------- the page


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mhsafety leaderboard</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:90em}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:.25em .5em;
text-align:left;vertical-align:top}th{background:#f3f3f3}.dash{color:#999}</style></head>
<body><h1>Leaderboard</h1>
<p>{{ data.items }} items of <code>{{ data.path }}</code>. {{ legend }}</p>
<table><tr>{% for h in headers %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in cells %}<tr>{% for c in row %}<td{% if c == dash %} class="dash"{% endif %}>{{ c }}</td>{% endfor %}</tr>
{% endfor %}</table>
<h2>Per-node scores (F1 of each decision of the sequential framework)</h2>
<table><tr>{% for h in node_headers %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in node_rows %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% if agreement %}<h2>Agreement between the systems</h2>
<p>Krippendorff's alpha, binary view: {{ agreement.binary_alpha }}{% if agreement.labels_alpha is not none %}; eight labels (systems that name labels): {{ agreement.labels_alpha }}{% endif %}. Each system's answer is the vote of its runs. Cohen's kappa of each pair, binary view:</p>
<table><tr><th></th>{% for s in agreement.systems %}<th>{{ s }}</th>{% endfor %}</tr>
{% for a in agreement.systems %}<tr><th>{{ a }}</th>{% for b in agreement.systems %}<td>{{ agreement.pair(a, b) }}</td>{% endfor %}</tr>
{% endfor %}</table>{% endif %}
{% if curve %}<h2>Recall against false alarms</h2>
<p>Systems with probabilities, runs pooled; the dotted line marks {{ fa }} false alarms.</p>
<img src="{{ curve }}" alt="ROC curves" style="max-width:48em">{% endif %}
<p>Made by <code>mhsafety leaderboard</code> in {{ seconds }} s.</p></body></html>
"""


def _figure(rows: Sequence[Row], path: Path, target: float) -> bool:
    curves = [r for r in rows if r.curve is not None]
    if not curves:
        return False
    from .report.figures import _pyplot, save_figure

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    for r in curves:
        ax.plot(*r.curve, label=r.name, linewidth=1.2)  # type: ignore[misc]
    ax.axvline(target, linestyle=":", color="grey")
    ax.plot([0, 1], [0, 1], color="#ccc", linewidth=0.8)
    ax.set_xlabel("False-alarm rate (safe replies flagged)")
    ax.set_ylabel("Unsafe recall")
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path)
    return True


# --------------------------------------------------------------------------- the command


@dataclass
class LeaderboardResult:
    rows: list[Row]
    agreement: Agreement | None
    out_dir: Path | None
    seconds: float
    table: str


def run_leaderboard(settings: LeaderboardSettings,
                    out_dir: str | os.PathLike[str] | None = None, *, force: bool = False,
                    log: Callable[[str], None] | None = None) -> LeaderboardResult:
    """Run and score every system of ``settings`` on the same items; with ``out_dir``, write
    ``table.md``, ``table.csv``, ``leaderboard.json``, ``nodes.md``, ``index.html``,
    ``curve.png`` (systems with probabilities) and each system's records under
    ``predictions/`` — the folder whole, atomically (refused when it holds anything the
    leaderboard did not write, unless ``force``)."""
    from .io import atomic_directory, prepare_output_dir

    start = time.perf_counter()
    if not settings.systems and not settings.records:
        raise SettingsError("give at least one system in {systems} or {records}",
                            "systems", "records")
    if out_dir is not None:  # refuse before any work
        prepare_output_dir(out_dir, command="leaderboard", force=force)
    path = resolve_data(settings.data)
    items = load_examples(path)
    entries = collect_entries(settings, items, str(path), log)
    if settings.panel:
        entries.append(panel_entry(entries, items, settings.panel, settings))
    rows = score_entries(entries, items, settings)
    agree = agreement([e for e in entries if not e.name.startswith("Panel (")])
    legend = LEGEND.format(fa=settings.matched_false_alarm, resamples=settings.resamples)
    table = markdown(HEADERS, table_cells(rows)) + "\n\n" + legend
    seconds = time.perf_counter() - start
    if out_dir is not None:
        with atomic_directory(out_dir, "leaderboard") as tmp:
            _write(tmp, rows, entries, agree, settings, path, len(items), table, legend,
                   seconds)
    return LeaderboardResult(rows, agree, Path(out_dir) if out_dir else None, seconds,
                             terminal(rows))


def _write(folder: Path, rows: Sequence[Row], entries: Sequence[Entry],
           agree: Agreement | None, settings: LeaderboardSettings, data: Path, n: int,
           table: str, legend: str, seconds: float) -> None:
    import jinja2

    (folder / "table.md").write_text(table + "\n", encoding="utf-8")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["system", "source", "n", "runs", *(f"{k}{s}" for k, _, _ in COLUMNS
                                                        for s in ("", "_low", "_high")),
                     "self_alpha", "seconds_per_1000", "tokens_per_1000", "notes"])
    for r in rows:
        vals = []
        for k, _, _ in COLUMNS:
            s = r.scores.get(k)
            vals += [s.estimate, s.low, s.high] if s else ["", "", ""]
        writer.writerow([r.name, r.source, r.n, r.runs, *vals,
                         "" if r.self_alpha is None else r.self_alpha,
                         "" if r.seconds_per_1000 is None else r.seconds_per_1000,
                         "" if r.tokens_per_1000 is None else r.tokens_per_1000,
                         "; ".join(note_text(x) for x in r.notes)])
    (folder / "table.csv").write_text(buf.getvalue(), encoding="utf-8")
    node_headers, node_rows = node_cells(rows)
    (folder / "nodes.md").write_text(markdown(node_headers, node_rows) + "\n",
                                     encoding="utf-8")
    (folder / "leaderboard.json").write_text(json.dumps({
        "headline": HEADLINE, "data": {"path": str(data), "items": n},
        "settings": settings.to_dict(), "seconds": round(seconds, 3),
        "rows": [r.to_dict() for r in rows],
        "agreement": agree.to_dict() if agree else None}, ensure_ascii=False, indent=1,
        default=str), encoding="utf-8")
    for e in entries:
        for run, records in e.runs.items():
            write_records(folder / "predictions" / e.slug / f"{run}.preds.jsonl", records)
    curve = _figure(rows, folder / "curve.png", settings.matched_false_alarm)
    fmt = lambda x: DASH if x is None else f"{x:.2f}"
    page = jinja2.Environment(autoescape=True).from_string(_PAGE).render(
        headers=HEADERS, cells=table_cells(rows), dash=DASH, legend=legend,
        node_headers=node_headers, node_rows=node_rows, data={"path": data, "items": n},
        agreement=({"binary_alpha": fmt(agree.binary_alpha),
                    "labels_alpha": agree.labels_alpha if agree.labels_alpha is None
                    else fmt(agree.labels_alpha), "systems": agree.systems,
                    "pair": lambda a, b: "" if a == b else fmt(agree.kappa(a, b))}
                   if agree else None),
        curve="curve.png" if curve else None, fa=f"{settings.matched_false_alarm:.0%}",
        seconds=f"{seconds:.1f}")
    (folder / "index.html").write_text(page, encoding="utf-8")
