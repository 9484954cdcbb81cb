"""What a judge run writes into its folder besides the log: manifest, records, summary.

Layout::

    manifest.json                  what was run (model asked and answered, URL, sampling,
                                   prompt template hash, few-shot ids per round, seed, version)
    preds/round-<r>.preds.jsonl    prediction records of round r (the project's format)
    preds/vote.preds.jsonl         majority vote over the rounds (with ``vote=True``)
    summary.json                   counts, token usage, cost estimate, timing

Every file is written atomically (:mod:`mhsafety.io`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..data import Example, examples_hash
from ..io import write_json
from ..records import PredictionRecord, write_records
from . import sequential as seq
from .core import RunPlan
from .parse import PROBS_VOTES
from .results import Usage
from .settings import JudgeSettings
from .transport import resolve_transport

MANIFEST, SUMMARY, PREDS = "manifest.json", "summary.json", "preds"


def _probabilities(settings: JudgeSettings) -> str | None:
    """What the records' ``probs`` hold, said once in the manifest (and per record)."""
    if settings.logprobs:
        return "logprobs of the answer's first token, renormalised over the eight labels"
    if settings.samples > 1:
        return f"{PROBS_VOTES} of {settings.samples} answers per item and round"
    return None


def _template(plan: RunPlan) -> dict[str, Any]:
    if plan.sequential:
        return {"source": "built-in sequential node prompts", "sha256": seq.templates_sha256()}
    return {"source": plan.template.source, "sha256": plan.template.sha256}


def _few_shot(plan: RunPlan, train: list[Example] | None,
              train_source: str | None) -> dict[str, Any] | None:
    if plan.shots is None:
        return None
    return {"train": train_source, "train_items": len(train or ()),
            "train_sha256": examples_hash(train or ()), "ids_per_round": plan.shots.ids(),
            "excluded_self": plan.shots_from_judged}


def start_manifest(plan: RunPlan, train: list[Example] | None, data_source: str | None,
                   train_source: str | None, created: str) -> dict[str, Any]:
    """The manifest of a run before any request (what was asked, of which data)."""
    from .. import __version__

    settings = plan.settings
    s = asdict(settings)
    return {
        "kind": "mhsafety-judge-run", "mhsafety_version": __version__, "created": created,
        "system": settings.name, "model_requested": settings.model,
        "models_answered": {}, "system_fingerprints": {},
        "base_url": settings.base_url,
        "client": resolve_transport(settings.client, settings.base_url),
        "api_key_env": settings.api_key_env, "sampling": settings.sampling,
        "token_param": settings.token_param, "output": settings.output,
        "probabilities": _probabilities(settings), "extra_body": settings.extra_body,
        "header_names": sorted(settings.headers),  # names only: values may be private
        "shots": settings.shots, "rounds": settings.rounds, "seed": settings.seed,
        "parser": settings.parser, "template": _template(plan), "cache_key": plan.key,
        "data": {"source": data_source, "items": len(plan.examples),
                 "sha256": examples_hash(plan.examples)},
        "few_shot": _few_shot(plan, train, train_source),
        "requests": {k: s[k] for k in ("concurrency", "timeout", "max_attempts",
                                      "backoff_base", "stop_after_failures", "batch")},
        "protocol": settings.protocol,
        "notes": list(plan.notes),
    }


def finish_manifest(manifest: dict[str, Any], plan: RunPlan, usage: Usage,
                    stats: dict[str, Any], updated: str) -> dict[str, Any]:
    """The manifest once answered: who answered, the token field used, substitutions."""
    manifest["models_answered"] = dict(usage.models)
    manifest["system_fingerprints"] = dict(usage.fingerprints)
    if stats.get("token_param"):
        manifest["token_param_used"] = stats["token_param"]
    if plan.shots is not None:
        manifest["few_shot"]["substitutions"] = {
            str(r): subs for r, subs in sorted(plan.shots.substitutions.items())}
    manifest["updated"] = updated
    return manifest


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    write_json(out / MANIFEST, manifest)


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    write_json(out / SUMMARY, summary)


def write_predictions(out: Path, records: dict[str, list[PredictionRecord]]) -> list[Path]:
    """One records file per round (and the vote); files of rounds this run no longer has
    are removed, since they would be scored with the current ones (they are derived: the
    log keeps every answer)."""
    folder = out / PREDS
    files = [write_records(folder / f"{name if name == 'vote' else 'round-' + name}"
                                     ".preds.jsonl", recs)
             for name, recs in records.items()]
    for stale_file in folder.glob("*.preds.jsonl"):
        if stale_file not in files:
            stale_file.unlink()
    return files
