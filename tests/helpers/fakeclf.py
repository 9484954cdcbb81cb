"""A scripted test classifier (kind "guardfake"): its answer depends on words in the response.

- "RAISE"   -> predict_proba raises
- "NAN"     -> a NaN row for that item (malformed), valid rows for the others
- "SLEEP"   -> sleeps 3 s before answering (for timeouts)
- "unsafe"  -> P(Toxic Language) 0.7, P(safe) 0.2
- "border"  -> P(safe) 0.45, P(Linguistic Neglect) 0.40 (argmax safe, flagged at 0.5)
- otherwise -> P(safe) 0.9
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from mhsafety.classifiers.base import Classifier

KIND = "guardfake"
TARGET = "tests.helpers.fakeclf:FakeClassifier"


def row_for(response: str) -> list[float]:
    row = np.full(8, 0.0)
    if "unsafe" in response:
        row[4], row[7] = 0.7, 0.2
    elif "border" in response:
        row[7], row[2] = 0.45, 0.40
    else:
        row[7] = 0.9
    row += (1.0 - row.sum()) / 8
    return row.tolist()


class FakeClassifier(Classifier):
    kind = KIND

    def fit(self, train, dev=None):
        return self

    def predict_proba(self, examples):
        self.calls = getattr(self, "calls", 0) + 1  # how often the model was asked
        responses = [ex.response for ex in examples]
        if any("RAISE" in r for r in responses):
            raise RuntimeError("scripted failure")
        if any("SLEEP" in r for r in responses):
            time.sleep(3)
        return np.array([[np.nan] * 8 if "NAN" in r else row_for(r) for r in responses])

    def save_state(self, directory: Path) -> None:
        (directory / "fake.json").write_text(json.dumps({"ok": True}))

    @classmethod
    def load_state(cls, directory: Path, manifest):
        return cls(**manifest.get("config", {}))


def register() -> None:
    from mhsafety import registry

    registry.KINDS[KIND] = TARGET
