"""The work behind ``mhsafety train`` and ``mhsafety predict``: build, fit, save, predict.

Any classifier kind goes through :mod:`mhsafety.registry`; these functions only see the
one classifier interface.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .classifiers.base import Classifier, read_manifest
from .data import (
    FINGERPRINT_VERSION,
    CheckpointOverlap,
    Example,
    OverlapError,
    check_checkpoint_overlap,
    check_overlap,
    item_fingerprint,
    item_fingerprints,
    load_examples,
    overlap_message,
    resolve_data,
    train_dev_split,
)
from .errors import DataError, UsageError
from .io import mark_output_dir, prepare_output_dir
from .progress import step_printer
from .records import NOTE_DEV_OVERLAP, NOTE_OVERLAP, Run, merge_notes, write_records
from .registry import checked_config, create_classifier, load_classifier, model_spec
from .settings import DEFAULT_SEED
from .taxonomy import label_name

__all__ = ["DEFAULT_TRAIN_SEEDS", "check_records_overlap", "check_trainable", "model_spec",
           "predict_file", "train_checkpoints", "train_model"]

# One checkpoint unless more seeds are asked for.
DEFAULT_TRAIN_SEEDS: tuple[int, ...] = (DEFAULT_SEED,)


def check_trainable(clf: Classifier, train: Sequence[Example], source: str) -> None:
    """Refuse, in one sentence naming ``source``, training data ``clf`` cannot learn from:
    fewer items than the kind needs, or a single label."""
    if not clf.needs_training:
        return
    if len(train) < clf.min_train_items:
        raise DataError(f"{source}: {len(train)} item{'s' if len(train) != 1 else ''} "
                        f"{'are' if len(train) != 1 else 'is'} too few to train the "
                        f"{clf.kind} (it needs at least {clf.min_train_items} labelled items)")
    labels = {ex.label for ex in train}
    if len(labels) < 2:
        only = next(iter(labels))
        name = label_name(only) if only is not None else "none"
        raise DataError(f"{source}: every item has the label {name}; training needs at "
                        "least two different labels")


def train_model(model: str, train: Sequence[Example], dev: Sequence[Example] | None = None,
                seed: int = DEFAULT_SEED, config: dict[str, Any] | None = None,
                source: str = "the training data",
                on_progress: Callable[[int, int, str], None] | None = None) -> Classifier:
    """Build the classifier for ``model`` (see :func:`model_spec`) and fit it.

    ``source`` names the training data in errors; ``on_progress(done, total, info)`` hears
    the classifier's progress (see :meth:`Classifier.report_progress`).
    """
    clf = create_classifier(model_spec(model), seed=seed, **(config or {}))
    check_trainable(clf, train, source)
    clf.on_progress = on_progress
    if clf.needs_training:
        clf.fit(train, dev)
    clf.on_progress = None
    clf.record_training_data(train)
    return clf


def _is_checkpoint(folder: Path) -> bool:
    try:
        read_manifest(folder)
    except DataError:
        return False
    return True


def is_checkpoints_folder(folder: Path) -> bool:
    """A checkpoint, or a folder of ``seed-N`` checkpoints: what ``train`` wrote before its
    folders carried the output marker."""
    if _is_checkpoint(folder):
        return True
    children = list(folder.iterdir())
    return bool(children) and all(c.name.startswith("seed-") and c.is_dir() and _is_checkpoint(c)
                                  for c in children)


def train_checkpoints(model: str, train_path: str | os.PathLike[str], out: str | os.PathLike[str],
                      seeds: Sequence[int] = DEFAULT_TRAIN_SEEDS, dev_path: str | os.PathLike[str] | None = None,
                      dev_ratio: float | None = None, config: dict[str, Any] | None = None,
                      log: Callable[[str], None] | None = None,
                      allow_overlap: bool = False, force: bool = False) -> list[Path]:
    """Train one checkpoint per seed: ``out`` itself for one seed, ``out/seed-N`` for several.

    ``dev_path`` gives a dev set; otherwise ``dev_ratio`` splits one off the training file
    (seeded, stratified). The dev set is for model selection only, never the test set; a
    ``dev_path`` sharing items with the training file is refused unless ``allow_overlap``
    (the checkpoint's manifest then carries :data:`~mhsafety.records.NOTE_DEV_OVERLAP`).

    ``out`` is checked before anything is read or fitted (:func:`~mhsafety.io.prepare_output_dir`):
    a folder that ``train`` did not write is refused unless ``force``, and so is a place
    that cannot be written.
    """
    if dev_path is not None and dev_ratio is not None:
        raise UsageError("give either --dev or --dev-ratio, not both")
    if not seeds:
        raise UsageError("give at least one seed")
    config = checked_config(model_spec(model), config or {}, "--config")
    # One seed: the checkpoint replaces ``out`` whole when saved (atomically); several: the
    # seed-N checkpoints go into ``out``, made and marked now.
    prepare_output_dir(out, command="train", force=force, create=len(seeds) > 1,
                       recognise=is_checkpoints_folder)
    if len(seeds) > 1:  # each seed-N checkpoint is replaced whole: check it too
        for seed in seeds:
            prepare_output_dir(Path(out) / f"seed-{seed}", command="train", force=force,
                               recognise=is_checkpoints_folder)
    train_all = load_examples(train_path)
    dev_fixed = load_examples(dev_path) if dev_path is not None else None
    notes: list[str] = []
    # Picking an epoch on items the model was trained on rewards memorising them.
    if dev_fixed is not None and check_overlap(train_all, dev_fixed, str(train_path),
                                               str(dev_path), allow_overlap):
        notes.append(NOTE_DEV_OVERLAP)
    written = []
    for seed in seeds:
        train, dev = train_all, dev_fixed
        if dev_ratio is not None:
            train, dev = train_dev_split(train_all, dev_ratio, seed)
        target = Path(out) if len(seeds) == 1 else Path(out) / f"seed-{seed}"
        clf = train_model(model, train, dev, seed, config, str(train_path),
                          step_printer(f"seed {seed}", "fit", quiet=log is None))
        clf.notes = [*clf.notes, *notes]
        clf.save(target)
        # listing what it holds: a rerun then refuses to delete files added to it later
        mark_output_dir(target, "train", entries=os.listdir(target))
        written.append(target)
        if log:
            log(f"seed {seed}: saved {target}")
    return written


def predict_file(checkpoint: str | os.PathLike[str], data: str | os.PathLike[str] | None,
                 out: str | os.PathLike[str], system: str | None = None, run: str = "0",
                 settings: dict[str, Any] | None = None, allow_overlap: bool = False,
                 warn: Callable[[str], None] | None = None) -> int:
    """Load any checkpoint, predict ``data`` (labels optional), write records; returns count.

    ``settings`` override inference-only config of the checkpoint (an encoder's batch size,
    device, precision). Items the checkpoint was trained on (its manifest's fingerprints,
    :func:`~mhsafety.data.check_checkpoint_overlap`) are refused before any work unless
    ``allow_overlap``, which marks every record with :data:`~mhsafety.records.NOTE_OVERLAP`;
    a checkpoint whose record of its training data is weaker gets ``warn`` called with a
    sentence saying so. Each record keeps the checkpoint's path and the item's fingerprint
    (``meta``), so ``evaluate`` can check the file again later. Under a multi-process
    launcher (``RANK`` set) every process predicts its share and only process 0 writes.
    """
    clf = load_classifier(checkpoint).with_settings(**(settings or {}))
    data_path = resolve_data(data)
    examples = load_examples(data_path, require_label=False)
    name = system or Path(checkpoint).resolve().name
    overlap = CheckpointOverlap()
    if clf.needs_training or clf.train_item_fingerprints or clf.train_data_sha256:
        overlap = check_checkpoint_overlap(read_manifest(checkpoint), examples,
                                           f"checkpoint {checkpoint}", str(data_path),
                                           allow_overlap)
    if overlap.warning and warn is not None:
        warn(overlap.warning)
    records = clf.predict_records(examples, name, run)
    where = str(Path(checkpoint).resolve())
    for rec, fp in zip(records, item_fingerprints(examples)):
        rec.meta.update(checkpoint=where, fingerprint=fp)
        if overlap.shared:
            rec.notes = merge_notes(rec.notes, [NOTE_OVERLAP])
    if os.environ.get("RANK", "0") == "0":
        write_records(out, records)
    return len(records)


def check_records_overlap(systems: Mapping[str, Sequence[Run]],
                          checkpoint: str | os.PathLike[str] | None = None,
                          examples: Sequence[Example] | None = None, allow: bool = False,
                          warn: Callable[[str], None] | None = None) -> dict[str, list[str]]:
    """Check scored records against the training data of the checkpoint that made them.

    The checkpoint is ``checkpoint``, else the one each run's records name (``meta.checkpoint``,
    written by :func:`predict_file`); each item's fingerprint is computed from ``examples``
    (joined on ids), else read from the record (``meta.fingerprint``). A system with shared
    items is refused (:class:`~mhsafety.data.OverlapError`, one sentence) unless its records
    already carry :data:`~mhsafety.records.NOTE_OVERLAP` or ``allow``; returns the shared ids
    per system (mark those rows). What cannot be checked is said through ``warn``.
    """
    by_id = {ex.id: ex for ex in examples or ()}
    found: dict[str, list[str]] = {}
    for system, runs in systems.items():
        records = [rec for run in runs for rec in run.records]
        named = checkpoint or next((rec.meta.get("checkpoint") for rec in records
                                    if isinstance(rec.meta.get("checkpoint"), str)), None)
        if named is None:
            continue
        if checkpoint is None and not Path(named).is_dir():
            if warn is not None:
                warn(f"{system}: its checkpoint {named} is gone, so its records cannot be "
                     "checked against its training data")
            continue
        manifest = read_manifest(named)
        version = manifest.get("fingerprint_version", 1)
        stored = set(manifest.get("train_item_fingerprints") or ())
        if not stored:
            if warn is not None and manifest.get("train_data_sha256"):
                warn(f"{system}: checkpoint {named} stores no per-item training fingerprints, "
                     "so its records cannot be checked; retrain it to store them")
            continue
        shared: list[str] = []
        unknown = 0
        for rec in dict.fromkeys(r.id for r in records):
            ex = by_id.get(rec)
            fp = None
            if ex is not None:
                fp = item_fingerprint(ex, version)
            else:
                meta = next(r.meta for r in records if r.id == rec)
                if version == FINGERPRINT_VERSION and isinstance(meta.get("fingerprint"), str):
                    fp = meta["fingerprint"]
            if fp is None:
                unknown += 1
            elif fp in stored:
                shared.append(rec)
        if unknown and warn is not None:
            warn(f"{system}: {unknown} items could not be checked against checkpoint {named} "
                 "(no text: pass --data with the scored file)")
        if version == 1 and warn is not None:
            warn(f"{system}: checkpoint {named} stores version-1 training fingerprints "
                 "(whitespace only): near-duplicates go undetected; retrain it")
        marked = any(NOTE_OVERLAP in rec.all_notes for rec in records)
        if shared and not allow and not marked:
            raise OverlapError(overlap_message(
                shared, len(dict.fromkeys(r.id for r in records)),
                f"the training data of checkpoint {named}", f"the records of {system}"))
        if shared:
            found[system] = shared
    return found
