"""Seeded splits: stratified folds for cross-validation and train/dev splits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..errors import DataError
from .examples import Example


def _labels_array(examples: Sequence[Example]) -> np.ndarray:
    if any(ex.label is None for ex in examples):
        raise DataError("stratified splits need every item to have a label")
    return np.array([ex.label for ex in examples])


def stratified_kfold(examples: Sequence[Example], k: int = 5,
                     seed: int = 42) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded stratified k-fold: a list of (train indices, test indices).

    Classes with fewer than ``k`` items are spread over as many folds as they have items
    (scikit-learn warns about that; the split is still valid, so the warning is silenced).
    """
    import warnings

    from sklearn.model_selection import StratifiedKFold

    y = _labels_array(examples)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return [(train, test) for train, test in splitter.split(np.zeros(len(y)), y)]


def train_dev_split(examples: Sequence[Example], dev_ratio: float = 0.1,
                    seed: int = 42) -> tuple[list[Example], list[Example]]:
    """Seeded stratified train/dev split. Classes with a single item stay in train."""
    from sklearn.model_selection import train_test_split

    if not 0 < dev_ratio < 1:
        raise ValueError(f"dev_ratio must be between 0 and 1, got {dev_ratio}")
    y = _labels_array(examples)
    counts = Counter(y.tolist())
    splittable = np.array([i for i, lab in enumerate(y) if counts[lab] >= 2])
    singletons = [i for i, lab in enumerate(y) if counts[lab] < 2]
    try:
        train_idx, dev_idx = train_test_split(
            splittable, test_size=dev_ratio, random_state=seed, stratify=y[splittable]
        )
    except ValueError:
        # Too few items for every class to reach the dev side: fall back to a plain split.
        train_idx, dev_idx = train_test_split(splittable, test_size=dev_ratio, random_state=seed)
    train = [examples[i] for i in sorted([*train_idx.tolist(), *singletons])]
    dev = [examples[i] for i in sorted(dev_idx.tolist())]
    return train, dev
