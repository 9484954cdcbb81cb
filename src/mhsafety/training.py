"""The work behind ``mhsafety train`` and ``mhsafety predict``: build, fit, save, predict.

Any classifier kind goes through :mod:`mhsafety.registry`; these functions only see the
one classifier interface.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .classifiers.base import Classifier
from .data import (
    Example,
    check_overlap,
    examples_hash,
    load_examples,
    resolve_data,
    train_dev_split,
)
from .errors import UsageError
from .records import NOTE_DEV_OVERLAP, write_records
from .registry import checked_config, create_classifier, load_classifier, model_spec

__all__ = ["DEFAULT_TRAIN_SEEDS", "model_spec", "predict_file", "train_checkpoints", "train_model"]

# One checkpoint unless more seeds are asked for.
DEFAULT_TRAIN_SEEDS: tuple[int, ...] = (42,)


def train_model(model: str, train: Sequence[Example], dev: Sequence[Example] | None = None,
                seed: int = 42, config: dict[str, Any] | None = None) -> Classifier:
    """Build the classifier for ``model`` (see :func:`model_spec`) and fit it."""
    clf = create_classifier(model_spec(model), seed=seed, **(config or {}))
    if clf.needs_training:
        clf.fit(train, dev)
    clf.train_data_sha256 = examples_hash(train)
    return clf


def train_checkpoints(model: str, train_path: str | os.PathLike[str], out: str | os.PathLike[str],
                      seeds: Sequence[int] = DEFAULT_TRAIN_SEEDS, dev_path: str | os.PathLike[str] | None = None,
                      dev_ratio: float | None = None, config: dict[str, Any] | None = None,
                      log: Callable[[str], None] | None = None,
                      allow_overlap: bool = False) -> list[Path]:
    """Train one checkpoint per seed: ``out`` itself for one seed, ``out/seed-N`` for several.

    ``dev_path`` gives a dev set; otherwise ``dev_ratio`` splits one off the training file
    (seeded, stratified). The dev set is for model selection only, never the test set; a
    ``dev_path`` sharing items with the training file is refused unless ``allow_overlap``
    (the checkpoint's manifest then carries :data:`~mhsafety.records.NOTE_DEV_OVERLAP`).
    """
    if dev_path is not None and dev_ratio is not None:
        raise UsageError("give either --dev or --dev-ratio, not both")
    if not seeds:
        raise UsageError("give at least one seed")
    config = checked_config(model_spec(model), config or {}, "--config")
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
        clf = train_model(model, train, dev, seed, config)
        clf.notes = [*clf.notes, *notes]
        clf.save(target)
        written.append(target)
        if log:
            log(f"seed {seed}: saved {target}")
    return written


def predict_file(checkpoint: str | os.PathLike[str], data: str | os.PathLike[str] | None,
                 out: str | os.PathLike[str], system: str | None = None, run: str = "0",
                 settings: dict[str, Any] | None = None) -> int:
    """Load any checkpoint, predict ``data`` (labels optional), write records; returns count.

    ``settings`` override inference-only config of the checkpoint (an encoder's batch size,
    device, precision). Under a multi-process launcher (``RANK`` set) every process predicts
    its share and only process 0 writes the file.
    """
    clf = load_classifier(checkpoint)
    clf.config.update(settings or {})
    examples = load_examples(resolve_data(data), require_label=False)
    name = system or Path(checkpoint).resolve().name
    records = clf.predict_records(examples, name, run)
    if os.environ.get("RANK", "0") == "0":
        write_records(out, records)
    return len(records)
