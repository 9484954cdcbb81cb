"""Shared items between two sets: the same (context, response) pair after whitespace
normalisation, so a reformatted copy of a training item still counts as seen.

Checkpoints store each training item's fingerprint (``train_item_fingerprints`` in the
manifest), so any later file can be checked against a model's training data without the
training file itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from .examples import Example

# Hex digits kept per fingerprint: 64 bits, so a false match among a million items has a
# probability of about 3e-8, at 16 bytes per item in a manifest.
FINGERPRINT_CHARS = 16


def item_key(ex: Example) -> str:
    """The (context, response) pair with every run of whitespace made one space."""
    return " ".join(ex.context.split()) + "\x1f" + " ".join(ex.response.split())


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
    """Ids of the items of ``second`` that are also in ``first``."""
    return shared_ids(item_fingerprints(first), second)
