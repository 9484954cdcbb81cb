"""What the harness integrations share: the judge's defaults, read from their one home."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..taxonomy import NUM_LABELS

# The protocols a harness task offers (the judge's: flat = one question, eight answers;
# sequential = one question per node of the framework).
PROTOCOLS = ("flat", "sequential")
# Few-shot means one example per label, as in the judge.
N_SHOTS = NUM_LABELS
# The error a record keeps for an answer that names no label: the judge's records' words.
UNPARSED = "answer names no category"


def judge_default(name: str) -> Any:
    """The judge settings' default of ``name`` (max_tokens, temperature, parser, seed, ...)."""
    from ..judge.runner import JudgeSettings

    for f in dataclasses.fields(JudgeSettings):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    raise KeyError(f"the judge settings have no field {name!r}")
