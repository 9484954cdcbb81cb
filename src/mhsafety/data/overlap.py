"""Shared items between a training (or example) set and a scored set.

Two items are the same when their context and response are equal after whitespace
normalisation (runs of whitespace become one space, ends stripped). Every protocol or
command that learns from one set and scores another checks this before doing any work:
``benchmark --train``, ``train --dev``, the few-shot judge's ``--train`` against ``--data``,
and the guard's calibration file against the checkpoint's training data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..errors import DataError
from .examples import Example

# How many of the shared ids the refusal names.
IDS_SHOWN = 5


class OverlapError(DataError):
    """The scored set shares items with the set a system learned from (exit 2)."""


def normalise_text(text: str) -> str:
    """``text`` with every run of whitespace as one space and no leading/trailing space."""
    return " ".join(text.split())


def item_key(example: Example) -> tuple[str, str]:
    """What makes two items the same item: (context, response), whitespace-normalised."""
    return normalise_text(example.context), normalise_text(example.response)


def find_overlap(learned: Iterable[Example], scored: Sequence[Example]) -> list[str]:
    """Ids of the ``scored`` items (0-based index when an item has no id) that also occur in
    ``learned``, in ``scored`` order."""
    keys = {item_key(ex) for ex in learned}
    return [ex.id or str(i) for i, ex in enumerate(scored) if item_key(ex) in keys]


def check_overlap(learned: Iterable[Example], scored: Sequence[Example], learned_name: str,
                  scored_name: str, allow: bool = False) -> list[str]:
    """Refuse (:class:`OverlapError`, one sentence) when the sets share items, unless
    ``allow``; returns the shared ids either way (empty when there are none)."""
    shared = find_overlap(learned, scored)
    if shared and not allow:
        first = ", ".join(shared[:IDS_SHOWN]) + (", ..." if len(shared) > IDS_SHOWN else "")
        raise OverlapError(
            f"{len(shared)} of the {len(scored)} items of {scored_name} also occur in "
            f"{learned_name} (same context and response; ids {first}): scores on them would "
            "flatter the system; use disjoint files, or --allow-overlap to run anyway with "
            "every table row marked")
    return shared
