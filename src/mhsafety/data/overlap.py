"""Shared items between two sets: the same (context, response) pair after every change that
alters no meaning, so a reformatted copy of a training item still counts as seen.

Every protocol or command that learns from one set and scores another checks this before doing
any work (:func:`check_overlap`): ``benchmark --train``, ``train --dev``, the few-shot judge's
``--train`` against ``--data``, the harness few-shot routes (inspect, lm-eval), and the guard's
calibration file against the checkpoint's training data. Checkpoints store each training item's
fingerprint (``train_item_fingerprints`` in the manifest, with ``fingerprint_version``), so
``predict`` and ``evaluate`` check any later file against a model's training data without the
training file itself (:func:`checkpoint_overlap`, :func:`check_checkpoint_overlap`).

Fingerprint versions:

- 1 (manifests without ``fingerprint_version``): runs of whitespace made one space.
- 2 (:data:`FINGERPRINT_VERSION`, :func:`canonical_text`): Unicode NFKC; full-width and CJK
  punctuation mapped to one ASCII form; role tags in any case or width, with any spacing
  inside or around them, as ``[seeker]``/``[supporter]``; empty turns dropped; every
  whitespace, control and format character (zero-width spaces, BOM) removed.

A checkpoint with version-1 fingerprints is still checked, with the version-1 function (exact
copies up to whitespace are still refused), and :func:`checkpoint_overlap` returns a warning
that near-duplicates cannot be detected against it: callers print it (never silent). Retrain
to get version-2 fingerprints: the training text is not kept in a checkpoint, so they cannot be
recomputed.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import DataError
from .examples import Example

# Hex digits kept per fingerprint: 64 bits, so a false match among a million items has a
# probability of about 3e-8, at 16 bytes per item in a manifest.
FINGERPRINT_CHARS = 16
# The fingerprint function new checkpoints store (see the module docstring for versions).
FINGERPRINT_VERSION = 2
# How many of the shared ids a refusal names.
IDS_SHOWN = 5

# Punctuation NFKC leaves alone, mapped to the ASCII form NFKC gives its full-width twins, so
# "，" (NFKC: ",") and "、" and "," are one character, "。" and "." another.
_PUNCTUATION = str.maketrans({
    "。": ".", "｡": ".", "、": ",", "､": ",", "“": '"', "”": '"', "„": '"', "‘": "'",
    "’": "'", "「": '"', "」": '"', "『": '"', "』": '"', "【": "[", "】": "]", "〔": "[",
    "〕": "]", "〖": "[", "〗": "]", "《": "<", "》": ">", "〈": "<", "〉": ">", "～": "~",
    "〜": "~", "—": "-", "–": "-", "―": "-", "‐": "-", "‑": "-", "・": "·", "･": "·",
    "…": "...", "‥": "..", "﹐": ",", "﹑": ",", "﹒": ".", "﹔": ";", "﹕": ":", "﹖": "?",
    "﹗": "!",
})
# A role tag in any case, with any spacing inside the brackets (after NFKC and punctuation
# mapping, so full-width brackets and 【】 are already "[" and "]").
_TAG_RE = re.compile(r"\[\s*(seeker|supporter)\s*\]", re.IGNORECASE)
_EMPTY_TURNS_RE = re.compile(r"(?:\[(?:seeker|supporter)\])+(?=\[(?:seeker|supporter)\]|$)")


class OverlapError(DataError):
    """The scored set shares items with the set a system learned from (exit 2)."""


def normalise_text(text: str) -> str:
    """``text`` with every run of whitespace as one space and no leading/trailing space."""
    return " ".join(text.split())


def canonical_text(text: str) -> str:
    """``text`` with every difference that changes no meaning removed (fingerprint v2):
    NFKC, one form of each punctuation mark, lower-case tags, no empty turns, and no
    whitespace, control or format characters anywhere."""
    text = unicodedata.normalize("NFKC", text).translate(_PUNCTUATION)
    text = "".join(ch for ch in text
                   if not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf"))
    text = _TAG_RE.sub(lambda m: f"[{m.group(1).lower()}]", text)
    # The reader adds a tag to text that has none it recognises ("[Seeker]x" is read as
    # "[seeker][Seeker]x"), so a tag followed directly by another tag, or by nothing, is dropped.
    return _EMPTY_TURNS_RE.sub("", text)


def item_key(ex: Example, version: int = FINGERPRINT_VERSION) -> str:
    """The (context, response) pair as the fingerprint of ``version`` sees it."""
    norm = canonical_text if version >= 2 else normalise_text
    return norm(ex.context) + "\x1f" + norm(ex.response)


def item_fingerprint(ex: Example, version: int = FINGERPRINT_VERSION) -> str:
    """A short hash of :func:`item_key`: equal for two items that differ in no meaning."""
    if version not in (1, FINGERPRINT_VERSION):
        raise DataError(f"fingerprint version {version!r} is not known to this mhsafety "
                        f"(it knows 1 and {FINGERPRINT_VERSION})")
    return hashlib.sha256(item_key(ex, version).encode("utf-8")).hexdigest()[:FINGERPRINT_CHARS]


def item_fingerprints(examples: Iterable[Example],
                      version: int = FINGERPRINT_VERSION) -> list[str]:
    """One :func:`item_fingerprint` per example, in order."""
    return [item_fingerprint(ex, version) for ex in examples]


def _id(ex: Example, index: int) -> str:
    return ex.id if ex.id is not None else str(index)


def shared_ids(known: Iterable[str], examples: Sequence[Example],
               version: int = FINGERPRINT_VERSION) -> list[str]:
    """Ids (else 0-based indices) of ``examples`` whose fingerprint is in ``known``."""
    seen = set(known)
    return [_id(ex, i) for i, (ex, fp) in enumerate(zip(examples,
                                                         item_fingerprints(examples, version)))
            if fp in seen]


def find_overlap(first: Sequence[Example], second: Sequence[Example]) -> list[str]:
    """Ids of the items of ``second`` that are also in ``first``, in ``second``'s order."""
    return shared_ids(item_fingerprints(first), second)


def overlap_message(shared: Sequence[str], n_scored: int, learned_name: str,
                    scored_name: str, allow_name: str = "--allow-overlap") -> str:
    """The one-sentence refusal: how many, which ids first, and how to go on (``allow_name``:
    how the caller's user allows it)."""
    first = ", ".join(shared[:IDS_SHOWN]) + (", ..." if len(shared) > IDS_SHOWN else "")
    return (f"{len(shared)} of the {n_scored} items of {scored_name} also occur in "
            f"{learned_name} (same context and response, up to changes of no meaning; ids "
            f"{first}): scores on them would flatter the system; use disjoint files, or "
            f"{allow_name} to run anyway with every table row marked")


def check_overlap(learned: Sequence[Example], scored: Sequence[Example], learned_name: str,
                  scored_name: str, allow: bool = False,
                  allow_name: str = "--allow-overlap") -> list[str]:
    """Refuse (:class:`OverlapError`, one sentence) when the sets share items, unless
    ``allow``; returns the shared ids either way (empty when there are none)."""
    shared = find_overlap(learned, scored)
    if shared and not allow:
        raise OverlapError(overlap_message(shared, len(scored), learned_name, scored_name,
                                           allow_name))
    return shared


# ------------------------------------------------------------------ checkpoints' training data

def training_fingerprints(examples: Sequence[Example]) -> dict[str, Any]:
    """What a checkpoint manifest stores about its training items (merged into it)."""
    return {"train_item_fingerprints": item_fingerprints(examples),
            "fingerprint_version": FINGERPRINT_VERSION}


@dataclass
class CheckpointOverlap:
    """What :func:`checkpoint_overlap` found: the shared ids, and a warning when the
    checkpoint's record cannot detect every near-duplicate (print it; never drop it)."""

    shared: list[str] = field(default_factory=list)
    warning: str | None = None


def checkpoint_overlap(manifest: Mapping[str, Any], examples: Sequence[Example],
                       name: str = "the checkpoint") -> CheckpointOverlap:
    """Ids of ``examples`` in the training data a checkpoint manifest records: its per-item
    fingerprints (of their version), else the whole-file hash (with a warning), else nothing
    (with a warning)."""
    from .examples import examples_hash

    stored = manifest.get("train_item_fingerprints")
    version = manifest.get("fingerprint_version", 1)
    if stored:
        if version == 1:
            return CheckpointOverlap(
                shared_ids(stored, examples, 1),
                f"{name} stores version-1 training fingerprints (whitespace only): copies "
                "of its training items changed in case, width, punctuation or tag spacing "
                "go undetected; retrain it to store version-2 fingerprints")
        return CheckpointOverlap(shared_ids(stored, examples, version))
    sha = manifest.get("train_data_sha256")
    if sha:
        shared = ([_id(ex, i) for i, ex in enumerate(examples)]
                  if sha == examples_hash(examples) else [])
        return CheckpointOverlap(shared, f"{name} stores no per-item training fingerprints, "
                                 "only the training file's hash: only an identical file is "
                                 "detected; retrain it to store them")
    return CheckpointOverlap([], f"{name} records no training data: overlap with it cannot "
                             "be checked")


def check_checkpoint_overlap(manifest: Mapping[str, Any], examples: Sequence[Example],
                             checkpoint_name: str, scored_name: str,
                             allow: bool = False) -> CheckpointOverlap:
    """:func:`checkpoint_overlap`, refusing (:class:`OverlapError`, one sentence) shared items
    unless ``allow``; the caller prints ``warning`` when there is one."""
    found = checkpoint_overlap(manifest, examples, checkpoint_name)
    if found.shared and not allow:
        raise OverlapError(overlap_message(found.shared, len(examples),
                                           f"the training data of {checkpoint_name}",
                                           scored_name))
    return found
