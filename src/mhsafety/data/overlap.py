"""Shared items between two sets: the same (context, response) pair after whitespace
normalisation, so a reformatted copy of a training item still counts as seen.

Every protocol or command that learns from one set and scores another checks this before doing
any work (:func:`check_overlap`): ``benchmark --train``, ``train --dev``, the few-shot judge's
``--train`` against ``--data``, and the guard's calibration file against the checkpoint's
training data. Checkpoints store each training item's fingerprint
(``train_item_fingerprints`` in the manifest), so any later file can be checked against a
model's training data without the training file itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from ..errors import DataError
from .examples import Example

# Hex digits kept per fingerprint: 64 bits, so a false match among a million items has a
# probability of about 3e-8, at 16 bytes per item in a manifest.
FINGERPRINT_CHARS = 16
# How many of the shared ids a refusal names.
IDS_SHOWN = 5


class OverlapError(DataError):
    """The scored set shares items with the set a system learned from (exit 2)."""


def normalise_text(text: str) -> str:
    """``text`` with every run of whitespace as one space and no leading/trailing space."""
    return " ".join(text.split())


def item_key(ex: Example) -> str:
    """The (context, response) pair with every run of whitespace made one space."""
    return normalise_text(ex.context) + "\x1f" + normalise_text(ex.response)


def item_fingerprints(examples: Iterable[Example]) -> list[str]:
    """One short hash of :func:`item_key` per example, in order."""
    return [hashlib.sha256(item_key(ex).encode("utf-8")).hexdigest()[:FINGERPRINT_CHARS]
            for ex in examples]


def shared_ids(known: Iterable[str], examples: Sequence[Example]) -> list[str]:
    """Ids (else 0-based indices) of ``examples`` whose fingerprint is in ``known``."""
    seen = set(known)
    return [ex.id if ex.id is not None else str(i)
            for i, (ex, fp) in enumerate(zip(examples, item_fingerprints(examples)))
            if fp in seen]


def find_overlap(first: Sequence[Example], second: Sequence[Example]) -> list[str]:
    """Ids of the items of ``second`` that are also in ``first``, in ``second``'s order."""
    return shared_ids(item_fingerprints(first), second)


def overlap_message(shared: Sequence[str], n_scored: int, learned_name: str,
                    scored_name: str) -> str:
    """The one-sentence refusal: how many, which ids first, and how to go on."""
    first = ", ".join(shared[:IDS_SHOWN]) + (", ..." if len(shared) > IDS_SHOWN else "")
    return (f"{len(shared)} of the {n_scored} items of {scored_name} also occur in "
            f"{learned_name} (same context and response; ids {first}): scores on them would "
            "flatter the system; use disjoint files, or --allow-overlap to run anyway with "
            "every table row marked")


def check_overlap(learned: Sequence[Example], scored: Sequence[Example], learned_name: str,
                  scored_name: str, allow: bool = False) -> list[str]:
    """Refuse (:class:`OverlapError`, one sentence) when the sets share items, unless
    ``allow``; returns the shared ids either way (empty when there are none)."""
    shared = find_overlap(learned, scored)
    if shared and not allow:
        raise OverlapError(overlap_message(shared, len(scored), learned_name, scored_name))
    return shared
