"""Benchmark protocols over the one classifier interface, and the results folder they write.

(The work behind ``train`` and ``predict`` lives in :mod:`mhsafety.training`.)

Two protocols:

- ``cv`` (default, needs no private data): repeated stratified k-fold cross-validation on one
  labelled file (the public test set), items sharing a dialogue context kept in one fold. One run per repeat, seeds 42..46; a run's predictions
  are the out-of-fold predictions of its k folds, so every run covers every item once.
- ``train-test`` (the paper's): fit on a training file, predict the test file, once per seed.

Systems are named by specs resolved through :func:`registry.create_classifier`
(``baseline``, ``encoder:NAME_OR_PATH``, ``judge:...``), optionally with a display name:
``"My BERT=encoder:bert-base-chinese"``. Systems that never learn (``needs_training`` False)
just predict every item once per run.

The results folder (written file by file, atomically, and resumable: rerunning with the same
``out_dir`` reuses finished runs when the data and settings match)::

    predictions/<system>/<run>.preds.jsonl   prediction records of each run
    metrics.json                             SystemMetrics per system + protocol + settings
    table.md                                 Table 2: measured rows beside the paper's
    confusion-<system>.png                   confusion matrix summed over runs
    state.json                               what the folder holds (for resuming)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import (
    DEFAULT_FOLDS,
    Example,
    check_overlap,
    context_groups,
    examples_hash,
    load_examples,
    resolve_data,
    stratified_kfold,
)
from .errors import DataError, UsageError
from .io import prepare_output_dir, sha256_file, write_json, write_text
from .metrics import SystemMetrics
from .records import NOTE_OVERLAP, PredictionRecord, Run, merge_notes, read_records, write_records
from .settings import DEFAULT_SEED
from .tables import DEFAULT_DECIMALS

DEFAULT_SYSTEMS: tuple[str, ...] = ("baseline",)
# Five repeats, one per seed, from the project's seed up.
DEFAULT_SEEDS: tuple[int, ...] = tuple(range(DEFAULT_SEED, DEFAULT_SEED + 5))
BASELINE_NAME = "Baseline (char n-grams + dialogue features, LR)"


# --------------------------------------------------------------------------- systems


@dataclass(frozen=True)
class SystemSpec:
    """A system to benchmark: its display name and its ``kind[:argument]`` spec."""

    name: str
    spec: str

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.name).strip("-")[:80] or "system"


def parse_system(text: str) -> SystemSpec:
    """``baseline``, ``encoder:NAME``, ``judge:...`` or ``DISPLAY NAME=SPEC``."""
    name, sep, spec = text.partition("=")
    if not sep:
        name, spec = "", text
    spec = spec.strip()
    if not spec:
        raise UsageError(f"system {text!r}: expected a spec such as baseline or encoder:NAME")
    if not name.strip():
        name = BASELINE_NAME if spec == "baseline" else spec
    return SystemSpec(name.strip(), spec)


# --------------------------------------------------------------------------- protocols


@dataclass
class Protocol:
    name: str  # "cv" or "train-test"
    description: str
    seeds: tuple[int, ...]
    folds: int | None = None
    short: str = ""  # shown next to each measured system's name in tables

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "short": self.short,
                "seeds": list(self.seeds), "folds": self.folds}


def cv_protocol(n_items: int, seeds: Sequence[int] = DEFAULT_SEEDS,
                folds: int = DEFAULT_FOLDS, data_name: str = "the data") -> Protocol:
    return Protocol("cv", f"measured here: {len(seeds)}×{folds}-fold cross-validation within "
                    f"the {n_items} items of {data_name}, folds grouped by dialogue context, "
                    "not the paper's protocol",
                    tuple(seeds), folds, f"measured, {len(seeds)}×{folds}-fold CV")


def train_test_protocol(n_train: int, n_test: int, seeds: Sequence[int] = DEFAULT_SEEDS,
                        train_name: str = "the training file", test_name: str = "the test file"
                        ) -> Protocol:
    return Protocol("train-test", f"measured here: trained on the {n_train:,} items of "
                    f"{train_name}, tested on the {n_test:,} items of {test_name}, "
                    f"{len(seeds)} seeds", tuple(seeds),
                    short=f"measured, trained on {train_name}")


def _records(clf, examples: Sequence[Example], system: str, run: str,
             notes: list[str]) -> list[PredictionRecord]:
    records = clf.predict_records(examples, system, run)
    for rec in records:
        # Keep a system's own notes (e.g. an encoder whose epoch was picked on the test set).
        rec.notes = merge_notes(notes, rec.all_notes)
        rec.meta = {k: v for k, v in rec.meta.items() if k != "notes"}
    return records


def cv_run(spec: str, examples: Sequence[Example], seed: int, folds: int, system: str,
           notes: list[str], config: dict[str, Any] | None = None,
           on_fit: Callable[[], None] | None = None,
           grouped: bool = True) -> list[PredictionRecord]:
    """One repeat of stratified k-fold CV: out-of-fold records for every item, input order.

    Items sharing a context stay in one fold (``grouped``; ``False`` only to measure the
    ungrouped protocol's optimism).
    """
    from .registry import create_classifier

    run = f"seed-{seed}"
    clf = create_classifier(spec, seed=seed, **(config or {}))
    if not clf.needs_training:
        out = _records(clf, examples, system, run, notes)
        if on_fit:
            on_fit()
        return out
    slots: list[PredictionRecord | None] = [None] * len(examples)
    groups = context_groups(examples)
    for train_idx, test_idx in stratified_kfold(examples, folds, seed, grouped=grouped):
        overlap = set(train_idx.tolist()) & set(test_idx.tolist())
        if overlap:  # cannot happen with the splitter; guard the protocol's promise anyway
            raise RuntimeError(f"fold puts items {sorted(overlap)[:5]} in train and test")
        if grouped and set(groups[train_idx].tolist()) & set(groups[test_idx].tolist()):
            raise RuntimeError("a fold puts one dialogue context in train and test")
        clf = create_classifier(spec, seed=seed, **(config or {}))
        clf.fit([examples[i] for i in train_idx])
        fold_records = _records(clf, [examples[i] for i in test_idx], system, run, notes)
        for i, rec in zip(test_idx, fold_records):
            rec.id = examples[i].id or str(i)
            slots[i] = rec
        if on_fit:
            on_fit()
    return [rec for rec in slots if rec is not None]


def answer_rounds(clf: Any) -> tuple[int, bool]:
    """(rounds, vote) of a system that answers each item in several independent rounds (an LLM
    judge's ``rounds`` and ``vote`` settings); (1, False) for any other."""
    settings = getattr(clf, "settings", None)
    return int(getattr(settings, "rounds", 1) or 1), bool(getattr(settings, "vote", False))


def round_runs(spec: str, examples: Sequence[Example], seed: int, system: str,
               notes: list[str], config: dict[str, Any] | None = None,
               on_fit: Callable[[], None] | None = None) -> dict[str, list[PredictionRecord]]:
    """Every round of a several-round system (an LLM judge) as its own run,
    ``seed-S-round-R``: the paper scored single rounds and averaged the scores, which a
    majority vote over the rounds (one "run") would not reproduce."""
    from .registry import create_classifier

    clf = create_classifier(spec, seed=seed, **(config or {}))
    rounds = clf.round_records(examples)  # every round's answers, each its own run
    out: dict[str, list[PredictionRecord]] = {}
    for r in sorted((k for k in rounds if k.isdigit()), key=int):
        run = f"seed-{seed}-round-{r}"
        out[run] = [PredictionRecord(ex.id or str(i), ex.label, rec.pred, system, run,
                                     probs=rec.probs, raw=rec.raw, error=rec.error,
                                     meta=dict(rec.meta), notes=merge_notes(notes, rec.all_notes))
                    for i, (ex, rec) in enumerate(zip(examples, rounds[r]))]
    if on_fit:
        on_fit()
    return out


def untrained_protocol(data_name: str, seeds: Sequence[int], rounds: int,
                       vote: bool) -> Protocol:
    """The protocol of a system that never learns: what one of its runs is."""
    n = len(seeds)
    if rounds == 1:
        return Protocol("predict-only", f"measured here: no training; every item of {data_name} "
                        f"predicted once per run, {n} runs", tuple(seeds),
                        short=f"measured, no training, {n} runs")
    if vote:
        return Protocol("predict-only", f"measured here: no training; every item of {data_name} "
                        f"answered in {rounds} rounds per run and their majority vote scored, "
                        f"{n} runs", tuple(seeds),
                        short=f"measured, no training, majority vote of {rounds} rounds per "
                              f"run, {n} runs")
    return Protocol("predict-only", f"measured here: no training; every item of {data_name} "
                    f"answered in {rounds} rounds per seed ({n} seeds), each round scored on "
                    "its own and the scores averaged, as the paper did", tuple(seeds),
                    short=f"measured, no training, mean over {rounds * n} single rounds")


def train_test_run(spec: str, train: Sequence[Example], test: Sequence[Example], seed: int,
                   system: str, notes: list[str], config: dict[str, Any] | None = None,
                   on_fit: Callable[[], None] | None = None) -> list[PredictionRecord]:
    from .registry import create_classifier

    clf = create_classifier(spec, seed=seed, **(config or {}))
    if clf.needs_training:
        # An encoder asked for the paper's leaky protocol picks its epoch on the test set
        # (its records are then marked so in every table).
        clf.fit(train, test if clf.selects_on_test else None)
    if on_fit:
        on_fit()
    return _records(clf, test, system, f"seed-{seed}", notes)


# --------------------------------------------------------------------------- results folder


@dataclass
class BenchmarkResult:
    out_dir: Path
    protocol: Protocol
    systems: list[SystemMetrics]
    table: str
    reused_runs: int = 0
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)


def default_out_dir(data: Path, protocol: Protocol, key: str,
                    specs: Sequence[SystemSpec]) -> Path:
    """``results/benchmark-<data>-<protocol>-<digest>``, named by the run's settings, so
    rerunning the same command after an interruption finds (and resumes) its folder."""
    blob = json.dumps([key, [(s.name, s.spec) for s in specs]], ensure_ascii=False)
    digest = hashlib.sha256(blob.encode("utf-8")).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", data.stem).strip("-")[:40] or "data"
    return Path("results") / f"benchmark-{stem}-{protocol.name}-{digest}"


def _state_key(protocol: Protocol, data_hash: str, train_hash: str | None,
               config: dict[str, Any], notes: Sequence[str] = ()) -> str:
    from .judge.settings import JudgeSettings

    # A judge's transport settings (concurrency, timeouts, retries; its work folder) change
    # no answer, so they do not change the folder's identity (SYSTEM.KEY scoped or not).
    neutral = JudgeSettings.TRANSPORT_FIELDS | {"work_dir"}
    config = {k: v for k, v in config.items() if k.rpartition(".")[2] not in neutral}
    parts: list[Any] = [protocol.to_dict(), data_hash, train_hash, config]
    if notes:  # runs marked differently never mix in one folder
        parts.append(sorted(notes))
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _is_benchmark_folder(folder: Path) -> bool:
    """A results folder written before folders carried the output marker."""
    return (folder / "state.json").is_file()


def _check_out_dir(out_dir: Path, key: str, force: bool) -> None:
    """Make ``out_dir`` this run's folder (:func:`~mhsafety.io.prepare_output_dir`): new,
    empty, or a benchmark folder of the same data and settings, which is resumed."""
    prepare_output_dir(out_dir, command="benchmark", force=force, create=True,
                       recognise=_is_benchmark_folder)
    state = out_dir / "state.json"
    if state.exists():  # never with force: the folder was emptied
        try:
            old = json.loads(state.read_text(encoding="utf-8")).get("key")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            old = None
        if old != key:
            raise UsageError(f"{out_dir}: holds a benchmark with other data or settings; "
                             "choose another --out, or pass --force to start it afresh")


def _load_finished(path: Path, system: SystemSpec, run: str,
                   ids: list[str]) -> list[PredictionRecord] | None:
    """A finished run's records when they match the items, else None (recompute it)."""
    if not path.exists():
        return None
    try:
        records = read_records(path)
    except DataError:
        return None
    if [r.id for r in records] != ids or any(r.system != system.name or r.run != run
                                             for r in records):
        return None
    return records


def system_config(spec: SystemSpec, config: dict[str, Any],
                  specs: Sequence[SystemSpec] = ()) -> dict[str, Any]:
    """The settings for one system: unscoped keys apply to every system, ``SYSTEM.KEY`` only
    to the system whose name, folder name or kind (``encoder`` in ``encoder:...``) is SYSTEM.

    A scoped key that names none of ``specs`` is an error, so a typo never passes silently.
    """
    kind = spec.spec.partition(":")[0]
    out: dict[str, Any] = {}
    for key, value in config.items():
        scope, dot, name = key.rpartition(".")
        if not dot:
            out[key] = value
            continue
        known = {x for other in specs or [spec]
                 for x in (other.name, other.slug, other.spec.partition(":")[0])}
        if scope not in known:
            raise UsageError(f"--config {key}: {scope!r} is not one of the systems "
                             f"({', '.join(sorted(known))})")
        if scope in (spec.name, spec.slug, kind):
            out[name] = value
    return out


def run_benchmark(systems: Sequence[str | SystemSpec] = DEFAULT_SYSTEMS,
                  data: str | os.PathLike[str] | None = None,
                  train: str | os.PathLike[str] | None = None,
                  seeds: Sequence[int] = DEFAULT_SEEDS, folds: int = DEFAULT_FOLDS,
                  out_dir: str | os.PathLike[str] | None = None,
                  config: dict[str, Any] | None = None, include_paper: bool = True,
                  decimals: int = DEFAULT_DECIMALS, show_progress: bool = True,
                  log: Callable[[str], None] | None = None,
                  allow_overlap: bool = False, force: bool = False) -> BenchmarkResult:
    """Benchmark ``systems`` and write the results folder; returns the scores and the table.

    Without ``train``: the ``cv`` protocol on ``data`` (default: the cached public test set).
    With ``train``: the paper's protocol, fit on ``train`` and test on ``data``; test items
    that also occur in ``train`` are refused (:class:`~mhsafety.data.OverlapError`) unless
    ``allow_overlap``, which marks every row with :data:`~mhsafety.records.NOTE_OVERLAP`.

    The results folder is resumed when it holds a benchmark of the same data and settings;
    any other non-empty folder is refused unless ``force``, which empties it first.
    Progress: a bar on a terminal, a line per fit when stderr is piped (``show_progress``).
    """
    from .progress import Steps
    from .scoring import score_runs
    from .tables import EXTRA_COLUMNS, TABLE2_COLUMNS, format_table, legend, paper_rows

    start = time.perf_counter()
    if not seeds:
        raise UsageError("give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise UsageError("seeds must be different from each other")
    specs = [s if isinstance(s, SystemSpec) else parse_system(s) for s in systems]
    if not specs:
        raise UsageError("give at least one system")
    names = [s.name for s in specs]
    if len(set(names)) != len(names) or len({s.slug for s in specs}) != len(specs):
        raise UsageError("two systems have the same name; name them with NAME=SPEC")
    # Resolve every system before any work, so a typo fails in a second, not after an hour.
    # Building each system once also checks its settings (an unknown key, a missing extra).
    from .registry import checked_config, create_classifier

    configs = {s.name: checked_config(s.spec, system_config(s, config or {}, specs),
                                      f"--config for {s.name}") for s in specs}
    probes = {s.name: create_classifier(s.spec, seed=seeds[0], **configs[s.name]) for s in specs}
    needs_fit = {name: clf.needs_training for name, clf in probes.items()}

    test_path = resolve_data(data)
    test = load_examples(test_path)
    train_examples = load_examples(train) if train is not None else None
    if train_examples is None:
        if folds < 2:
            raise UsageError(f"folds must be at least 2, got {folds}")
        counts = np.bincount([ex.label for ex in test])  # type: ignore[misc]
        if counts.max() < folds:
            raise UsageError(f"{test_path}: no label has {folds} items, too few for "
                             f"{folds}-fold cross-validation")
        protocol = cv_protocol(len(test), seeds, folds, Path(test_path).name)
    else:
        protocol = train_test_protocol(len(train_examples), len(test), seeds,
                                       Path(train).name, Path(test_path).name)  # type: ignore[arg-type]
    # A score on items the system was trained on flatters it: refuse before any work.
    run_notes: list[str] = []
    if train_examples is not None:
        shared = check_overlap(train_examples, test, str(train), str(test_path), allow_overlap)
        if shared:
            run_notes.append(NOTE_OVERLAP)
            if log:
                log(f"warning: {len(shared)} test items also occur in {train}; every row is "
                    "marked so")
    # Data no system can learn from fails now, before the results folder exists.
    from .training import check_trainable

    for s in specs:
        if not needs_fit[s.name]:
            continue
        if train_examples is not None:
            check_trainable(probes[s.name], train_examples, str(train))
            continue
        check_trainable(probes[s.name], test, str(test_path))
        for seed in seeds:
            for k, (train_idx, _) in enumerate(stratified_kfold(test, folds, seed)):
                check_trainable(probes[s.name], [test[i] for i in train_idx],
                                f"{test_path} (the training part of fold {k + 1}, seed {seed})")
    # Systems that never learn (zero-shot judges) use no folds: their rows say what a run is
    # (one prediction, a single round of several, or a majority vote over rounds).
    rounds = {name: answer_rounds(clf) for name, clf in probes.items()}
    single_rounds = {s.name: not needs_fit[s.name] and rounds[s.name][0] > 1
                     and not rounds[s.name][1] for s in specs}
    system_protocol = {s.name: protocol if needs_fit[s.name] else
                       untrained_protocol(Path(test_path).name, seeds, *rounds[s.name])
                       for s in specs}
    # Notes a system's kind always carries (the baseline's design was chosen on the public
    # test items).
    design_notes = {s.name: list(getattr(probes[s.name], "design_notes", ())) for s in specs}

    key = _state_key(protocol, examples_hash(test),
                     examples_hash(train_examples) if train_examples else None, config or {},
                     run_notes)
    if out_dir is None:
        out = default_out_dir(Path(test_path), protocol, key, specs)
        if log:
            log(f"results folder: {out} (interrupted? the same command resumes there; "
                f"or pass --out {out})")
    else:
        out = Path(out_dir)
    _check_out_dir(out, key, force)
    write_json(out / "state.json", {
        "key": key, "protocol": protocol.to_dict(), "data": str(test_path),
        "train": str(train) if train is not None else None,
        "systems": [{"name": s.name, "spec": s.spec} for s in specs], "config": config or {},
    })

    ids = [ex.id or str(i) for i, ex in enumerate(test)]
    fits_per_run = {s.name: (folds if train_examples is None else 1) if needs_fit[s.name] else 1
                    for s in specs}
    total = sum(fits_per_run[s.name] * len(seeds) for s in specs)
    bar = Steps(total, "benchmark", "fit", quiet=not show_progress)
    reused = 0
    files: list[Path] = []
    all_runs: dict[str, dict[str, list[PredictionRecord]]] = {}
    try:
        for s in specs:
            runs: dict[str, list[PredictionRecord]] = {}
            k = rounds[s.name][0]
            for seed in seeds:
                names = ([f"seed-{seed}-round-{r}" for r in range(1, k + 1)]
                         if single_rounds[s.name] else [f"seed-{seed}"])
                paths = {run: out / "predictions" / s.slug / f"{run}.preds.jsonl"
                         for run in names}
                loaded = {run: _load_finished(paths[run], s, run, ids) for run in names}
                if all(records is not None for records in loaded.values()):
                    reused += 1
                    bar.update(f"{s.name}, seed {seed} reused", n=fits_per_run[s.name])
                    made = loaded
                else:
                    tick = (lambda name=s.name, seed=seed: bar.update(f"{name}, seed {seed}"))
                    notes = [system_protocol[s.name].short, *design_notes[s.name], *run_notes]
                    if single_rounds[s.name]:
                        made = round_runs(s.spec, test, seed, s.name, notes, configs[s.name],
                                          tick)
                    elif train_examples is None:
                        made = {names[0]: cv_run(s.spec, test, seed, folds, s.name, notes,
                                                 configs[s.name], tick)}
                    else:
                        made = {names[0]: train_test_run(s.spec, train_examples, test, seed,
                                                         s.name, notes, configs[s.name], tick)}
                    for run, records in made.items():
                        write_records(paths[run], records)
                files += [paths[run] for run in names]
                runs.update(made)  # type: ignore[arg-type]
            all_runs[s.name] = runs
    finally:
        bar.close()

    # One scoring path: the protocol's short text leads each row's notes, then the records'.
    scored = score_runs({s.name: [Run(s.name, run, recs) for run, recs in all_runs[s.name].items()]
                         for s in specs},
                        {s.name: system_protocol[s.name].description for s in specs},
                        {s.name: [system_protocol[s.name].short, *design_notes[s.name],
                                  *run_notes] for s in specs})
    measured: list[SystemMetrics] = scored.systems
    rows = scored.rows
    columns = TABLE2_COLUMNS + EXTRA_COLUMNS
    table = format_table([*rows, *(paper_rows() if include_paper else [])], "markdown",
                         columns, decimals)
    if legend(columns):
        table += "\n\n" + legend(columns)
    write_text(out / "table.md", table + "\n")
    write_json(out / "metrics.json", {
        "protocol": protocol.to_dict(),
        # file_sha256 is the file's own checksum; content_sha256 hashes the parsed items
        # (examples_hash), which checkpoints record as their training data hash.
        "data": {"path": str(test_path), "items": len(test), "file_sha256": sha256_file(test_path),
                 "content_sha256": examples_hash(test)},
        "train": ({"path": str(train), "items": len(train_examples),
                   "file_sha256": sha256_file(train),  # type: ignore[arg-type]
                   "content_sha256": examples_hash(train_examples)} if train_examples else None),
        "config": config or {},
        "systems": [{"spec": s.spec, "protocol": system_protocol[s.name].to_dict(),
                     "config": configs[s.name], **m.to_dict()} for s, m in zip(specs, measured)],
        "seconds": round(time.perf_counter() - start, 3),
    })
    files += [out / "table.md", out / "metrics.json"]
    from .report.figures import plot_confusion_matrix, save_figure

    for s, m in zip(specs, measured):
        matrix = np.sum([np.asarray(r.confusion) for r in m.run_metrics], axis=0)
        title = f"{s.name}\n{system_protocol[s.name].description}, summed over {len(m.runs)} runs"
        fig = plot_confusion_matrix(matrix, title)
        files += save_figure(fig, out / f"confusion-{s.slug}.png")
    if log and reused:
        log(f"reused {reused} finished run(s) from {out}")
    return BenchmarkResult(out, protocol, measured, table, reused,
                           time.perf_counter() - start, files)
