"""Seeded splits: stratified folds for cross-validation and train/dev splits.

Both keep the items that share a context (after whitespace normalisation) on the same side:
several responses to one dialogue are not independent items, and a fold that trains on one
of them and tests on another scores the system on a dialogue it has already seen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..errors import DataError
from ..settings import DEFAULT_SEED
from .examples import Example
from .overlap import normalise_text

# Folds of cross-validation unless asked otherwise (benchmark, data split).
DEFAULT_FOLDS = 5


def _labels_array(examples: Sequence[Example]) -> np.ndarray:
    if any(ex.label is None for ex in examples):
        raise DataError("stratified splits need every item to have a label")
    return np.array([ex.label for ex in examples])


def context_groups(examples: Sequence[Example]) -> np.ndarray:
    """A group number per item: items with the same (normalised) context share one."""
    numbers: dict[str, int] = {}
    return np.array([numbers.setdefault(normalise_text(ex.context), len(numbers))
                     for ex in examples], dtype=int)


def stratified_kfold(examples: Sequence[Example], k: int = DEFAULT_FOLDS, seed: int = DEFAULT_SEED,
                     grouped: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded stratified k-fold: a list of (train indices, test indices).

    ``grouped`` (the default) keeps items sharing a context in one fold
    (scikit-learn's ``StratifiedGroupKFold``); ``grouped=False`` is plain
    ``StratifiedKFold``, kept to measure what grouping changes. Classes with fewer than
    ``k`` items are spread over as many folds as they have items (scikit-learn warns about
    that; the split is still valid, so the warning is silenced).
    """
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = _labels_array(examples)
    x = np.zeros(len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if grouped:
            splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
            return list(splitter.split(x, y, context_groups(examples)))
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        return list(splitter.split(x, y))


def train_dev_split(examples: Sequence[Example], dev_ratio: float = 0.1,
                    seed: int = DEFAULT_SEED) -> tuple[list[Example], list[Example]]:
    """Seeded stratified train/dev split that keeps items sharing a context together.

    Whole context groups are drawn, stratified by the label of each group's first item
    (most groups are one item, so item-level shares stay close to ``dev_ratio``). Labels
    with a single group stay in train.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < dev_ratio < 1:
        raise ValueError(f"dev_ratio must be between 0 and 1, got {dev_ratio}")
    y = _labels_array(examples)
    groups = context_groups(examples)
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups.tolist()):
        members.setdefault(g, []).append(i)
    group_ids = np.array(sorted(members))
    group_label = np.array([y[members[g][0]] for g in group_ids])
    counts = Counter(group_label.tolist())
    splittable = np.array([g for g, lab in zip(group_ids, group_label) if counts[lab] >= 2])
    kept = [g for g, lab in zip(group_ids, group_label) if counts[lab] < 2]
    if len(splittable) < 2:
        # No label has two context groups, so nothing can go to dev without a label
        # vanishing from train; sklearn would only say "n_samples=0".
        raise DataError(f"{len(examples)} items are too few to split off a dev set "
                        f"(dev_ratio {dev_ratio}): no label has items in two different "
                        "contexts; give a separate dev set (train --dev FILE) or more items")
    stratify = np.array([group_label[g] for g in splittable]) if len(splittable) else None
    try:
        train_g, dev_g = train_test_split(splittable, test_size=dev_ratio, random_state=seed,
                                          stratify=stratify)
    except ValueError:
        # Too few items for every class to reach the dev side: fall back to a plain split.
        train_g, dev_g = train_test_split(splittable, test_size=dev_ratio, random_state=seed)
    train_idx = sorted(i for g in [*train_g.tolist(), *kept] for i in members[g])
    dev_idx = sorted(i for g in dev_g.tolist() for i in members[g])
    return [examples[i] for i in train_idx], [examples[i] for i in dev_idx]
