"""From a run's request outcomes to prediction records, round votes and counts (no files).

The in-memory judge and the folder runner both end here: each round's outcomes (a
:class:`~mhsafety.judge.log.RoundLog`: the answer or last failure per item) become one
prediction record per item (:func:`round_records`), an optional majority vote over the
rounds (:func:`vote_records`), the rounds combined into the classifier interface's
:class:`~mhsafety.classifiers.base.Predictions` (:func:`combine_rounds`, with the reason of
every abstention, :func:`abstain_reason`), and the counts a summary shows
(:func:`round_counts`, :func:`usage_counts`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..classifiers.base import Predictions
from ..data import Example
from ..records import PredictionRecord
from ..taxonomy import NUM_LABELS
from . import sequential as seq
from .log import RoundLog
from .parse import (
    CUT_OFF,
    NO_CATEGORY,
    PROBS_LOGPROBS,
    PROBS_VOTES,
    Parser,
    Verdict,
    answer_parser,
    read_answer,
    vote,
)
from .settings import JudgeSettings

NOT_REQUESTED = "not requested (the run stopped)"
Verdicts = dict[tuple[int, str], Verdict]  # (round, item id) -> verdict parsed on arrival


def verdict_of(entry: dict[str, Any], settings: JudgeSettings) -> Verdict:
    """The verdict of one logged answer under ``settings`` (output format, parser, logprobs)."""
    return read_answer(entry, answer_parser(settings.output, settings.parser), settings.logprobs)


@dataclass
class RoundFacts:
    """What the records of all rounds leave out but a summary counts."""

    with_reasoning: int = 0
    fewer_samples: int = 0  # answers with fewer samples than asked (servers that ignore n)


def _flat_record(r: int, item_id: str, ex: Example, entry: dict[str, Any],
                 settings: JudgeSettings, notes: list[str], verdict: Verdict | None,
                 facts: RoundFacts) -> PredictionRecord:
    verdict = verdict or verdict_of(entry, settings)
    meta: dict[str, Any] = {"model": entry.get("model")}
    if verdict.probs_from:
        meta["probs_from"] = verdict.probs_from
    if verdict.reasoning:
        facts.with_reasoning += 1
    if settings.samples > 1 and len(entry.get("answers") or [0]) < settings.samples:
        facts.fewer_samples += 1
    return PredictionRecord(item_id, ex.label, verdict.pred, settings.name, str(r),
                            probs=verdict.probs, raw=verdict.text, error=verdict.error,
                            meta=meta, notes=list(notes))


def _failed_record(r: int, item_id: str, ex: Example, lg: RoundLog, settings: JudgeSettings,
                   notes: list[str]) -> PredictionRecord:
    failure = lg.failures.get(item_id)
    reason = failure["error"] if failure else NOT_REQUESTED
    return PredictionRecord(item_id, ex.label, None, settings.name, str(r),
                            error=f"request failed: {reason}", meta={}, notes=list(notes))


def _walk_record(r: int, item_id: str, ex: Example, lg: RoundLog, settings: JudgeSettings,
                 notes: list[str], parse: Parser) -> PredictionRecord:
    pred, raw, error, meta = seq.outcome(lg.answers, lg.failures, item_id, parse)
    return PredictionRecord(item_id, ex.label, pred, settings.name, str(r), raw=raw,
                            error=error, meta=meta, notes=list(notes))


def round_records(r: int, lg: RoundLog, examples: Sequence[Example], ids: Sequence[str],
                  settings: JudgeSettings, notes: list[str], verdicts: Verdicts | None = None,
                  facts: RoundFacts | None = None) -> list[PredictionRecord]:
    """One record per item of round ``r``: its label, invalid answer or failure."""
    facts = facts if facts is not None else RoundFacts()
    verdicts = verdicts or {}
    if settings.protocol == "sequential":
        parse = answer_parser(settings.output, settings.parser)
        return [_walk_record(r, ids[i], ex, lg, settings, notes, parse)
                for i, ex in enumerate(examples)]
    out = []
    for i, ex in enumerate(examples):
        entry = lg.answers.get(ids[i])
        out.append(_failed_record(r, ids[i], ex, lg, settings, notes) if entry is None else
                   _flat_record(r, ids[i], ex, entry, settings, notes,
                                verdicts.get((r, ids[i])), facts))
    return out


def vote_records(records: dict[str, list[PredictionRecord]], examples: Sequence[Example],
                 ids: Sequence[str], settings: JudgeSettings,
                 notes: list[str]) -> list[PredictionRecord]:
    """The majority over the rounds per item (a tie goes to the label seen first)."""
    out = []
    for i, ex in enumerate(examples):
        pred = vote([recs[i].pred for recs in records.values()])
        out.append(PredictionRecord(
            ids[i], ex.label, pred, f"{settings.name} vote", "vote",
            error=None if pred is not None else "no valid answer in any round",
            meta={"rounds": settings.rounds}, notes=list(notes)))
    return out


@dataclass
class JudgeRecords:
    """Every round's records (``"1"``, ``"2"``, ... and ``"vote"`` when asked) and facts."""

    records: dict[str, list[PredictionRecord]]
    facts: RoundFacts = field(default_factory=RoundFacts)


def all_records(logs: dict[int, RoundLog], examples: Sequence[Example], ids: Sequence[str],
                settings: JudgeSettings, notes: list[str],
                verdicts: Verdicts | None = None) -> JudgeRecords:
    """The records of every round in ``logs``, plus the vote when ``settings.vote`` asks."""
    facts = RoundFacts()
    records = {str(r): round_records(r, lg, examples, ids, settings, notes, verdicts, facts)
               for r, lg in logs.items()}
    if settings.vote and settings.rounds > 1:
        records["vote"] = vote_records(records, examples, ids, settings, notes)
    return JudgeRecords(records, facts)


# --------------------------------------------------------------------------- predictions


def abstain_reason(record: PredictionRecord) -> str:
    """A short reason for a record with no label, led by its kind (what the guard shows)."""
    error = record.error or "no answer"
    if record.raw is not None:
        if error == CUT_OFF:
            return "answer cut off by the token budget (finish_reason: length)"
        if error == NO_CATEGORY:
            shown = record.raw if len(record.raw) <= 60 else record.raw[:57] + "..."
            return f"unparseable answer: {shown!r}"
        return error
    low = error.lower()
    if "no answer within" in low:
        return f"timeout: {error}"
    if any(s in low for s in ("cannot connect", "connection", "nothing listens",
                              "does not resolve", "tls failure")):
        return f"server unreachable: {error}"
    if "not requested" in low:
        return "not asked: the run stopped before this item"
    return error


def combine_rounds(rounds: Sequence[Sequence[PredictionRecord]], n: int
                   ) -> tuple[Predictions, str | None]:
    """Per item, the mean over the valid rounds of each answer's distribution (logprobs,
    vote shares of samples, or the one-hot label); an item no round answered is a NaN row
    with its reason. Also says what the probabilities are (logprobs or vote shares)."""
    probs = np.full((n, NUM_LABELS), np.nan)
    reasons: list[str | None] = []
    kinds: set[str] = set()
    for i in range(n):
        valid = [recs[i] for recs in rounds if recs[i].pred is not None]
        if not valid:
            reasons.append(abstain_reason(rounds[0][i]))
            continue
        row = np.zeros(NUM_LABELS)
        for rec in valid:
            if rec.probs is not None:
                row += np.asarray(rec.probs, dtype=float)
                kinds.add(rec.meta.get("probs_from") or PROBS_VOTES)
            else:
                row[rec.pred] += 1.0
                kinds.add(PROBS_VOTES)
        probs[i] = row / row.sum()
        reasons.append(None)
    kind = PROBS_LOGPROBS if kinds == {PROBS_LOGPROBS} else PROBS_VOTES if kinds else None
    return Predictions(probs, tuple(reasons)), kind


# --------------------------------------------------------------------------- counts


def round_counts(records: dict[str, list[PredictionRecord]]) -> dict[str, dict[str, int]]:
    """Answered, failed and invalid items per round (the vote left out)."""
    return {r: {"answered": sum(1 for x in recs if x.raw is not None),
                "failed": sum(1 for x in recs if x.raw is None),
                "invalid": sum(1 for x in recs if x.raw is not None and x.pred is None)}
            for r, recs in records.items() if r != "vote"}


@dataclass
class Usage:
    """Who answered and what it cost, over every answer of these settings."""

    models: Counter[str] = field(default_factory=Counter)
    fingerprints: Counter[str] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)
    batch_tokens: Counter[str] = field(default_factory=Counter)  # another price

    def token_totals(self) -> dict[str, int]:
        return {k: int(self.tokens.get(k, 0))
                for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def usage_counts(logs: dict[int, RoundLog]) -> Usage:
    """Models, fingerprints and tokens of every answer (a sequential item has one per node)."""
    out = Usage()
    for lg in logs.values():
        for entry in lg.answers.values():
            if entry.get("model"):
                out.models[entry["model"]] += 1
            if entry.get("system_fingerprint"):
                out.fingerprints[entry["system_fingerprint"]] += 1
            for k, v in (entry.get("usage") or {}).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out.tokens[k] += v
                    if entry.get("via") == "batch":
                        out.batch_tokens[k] += v
    return out


def cost(usage: Usage, settings: JudgeSettings) -> float | None:
    """The estimated price of the tokens (None without prices); tokens answered through a
    batch cost ``batch_price_factor`` times the given prices."""
    if settings.price_in is None and settings.price_out is None:
        return None
    tokens = usage.token_totals()
    factor = settings.batch_price_factor
    weighted = {k: tokens[k] - usage.batch_tokens.get(k, 0) * (1 - factor)
                for k in ("prompt_tokens", "completion_tokens")}
    return round((weighted["prompt_tokens"] * (settings.price_in or 0.0)
                  + weighted["completion_tokens"] * (settings.price_out or 0.0)) / 1e6, 6)
