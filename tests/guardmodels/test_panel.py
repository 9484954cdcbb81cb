"""The panel kind: saved graders voting, by majority or weighted by measured accuracy."""

from __future__ import annotations

import pytest

from mhsafety.errors import UsageError
from mhsafety.guardmodels.panel import NO_MAJORITY
from mhsafety.guardmodels.settings import SETTINGS
from mhsafety.records import NOTE_BINARY_ONLY
from mhsafety.registry import create_classifier, load_classifier
from mhsafety.taxonomy import NUM_LABELS, SAFE_LABEL
from mhsafety.testing import FakeServer, constant
from tests.helpers.guard_fakes import GoldGuardResponder

FAST = {"max_attempts": 1, "timeout": 5.0}


@pytest.fixture(scope="module")
def items(test_examples):
    out = []
    for label in range(NUM_LABELS):
        out += [ex for ex in test_examples if ex.label == label][:3]
    return out


@pytest.fixture
def servers(items):
    started = {
        "gold": FakeServer(GoldGuardResponder(items, SETTINGS["policy"]())).start(),
        "safe": FakeServer(constant("Safe Response")).start(),
        "qwen": FakeServer(GoldGuardResponder(items, SETTINGS["qwen3guard"]())).start(),
    }
    yield started
    for server in started.values():
        server.stop()


def member(tmp_path, name, spec):
    path = tmp_path / name
    create_classifier(spec, **FAST).save(path)
    return str(path)


def test_majority_and_weighted_votes(servers, items, tmp_path):
    gold = member(tmp_path, "gold", f"policy:m@{servers['gold'].url}")
    safe1 = member(tmp_path, "safe1", f"policy:m@{servers['safe'].url}")
    safe2 = member(tmp_path, "safe2", f"policy:m@{servers['safe'].url}")
    golds = [ex.label for ex in items]

    majority = create_classifier(f"panel:{gold},{safe1},{safe2}")
    assert majority.predict(items).tolist() == [SAFE_LABEL] * len(items)  # two say safe

    weighted = create_classifier(f"panel:{gold},{safe1},{safe2}", vote="weighted")
    with pytest.raises(UsageError, match="fit"):
        weighted.predict(items)
    weighted.fit(items).save(tmp_path / "panel")
    loaded = load_classifier(tmp_path / "panel")
    assert loaded.weights[0] == 1.0 and loaded.weights[1] == pytest.approx(
        golds.count(SAFE_LABEL) / len(golds))  # right on the safe items only
    assert loaded.predict(items).tolist() == golds  # the accurate member outweighs the two
    assert loaded.train_item_fingerprints  # scoring on the weighing items is overlap

    tie = create_classifier(f"panel:{gold},{safe1}")
    preds = tie.predictions(items)
    unsafe_rows = [i for i, g in enumerate(golds) if g != SAFE_LABEL]
    assert all(preds.reasons[i] == NO_MAJORITY for i in unsafe_rows)


def test_binary_panel_takes_binary_only_members(servers, items, tmp_path):
    qwen = member(tmp_path, "qwen", f"qwen3guard:m@{servers['qwen'].url}")
    gold = member(tmp_path, "gold", f"policy:m@{servers['gold'].url}")
    safe = member(tmp_path, "safe", f"policy:m@{servers['safe'].url}")
    with pytest.raises(UsageError, match="names no taxonomy label"):
        create_classifier(f"panel:{qwen},{gold}")
    panel = create_classifier(f"panel:{qwen},{gold},{safe}", view="binary")
    records = panel.predict_records(items, "panel")
    assert [r.unsafe for r in records] == [ex.label != SAFE_LABEL for ex in items]
    assert all(r.pred is None and NOTE_BINARY_ONLY in r.notes for r in records)


def test_a_panel_needs_two_members(tmp_path):
    with pytest.raises(UsageError, match="at least two"):
        create_classifier(f"panel:{tmp_path}")
