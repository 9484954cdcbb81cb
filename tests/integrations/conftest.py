"""Fixtures of the harness tests: a small labelled file and a scripted judge server."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from mhsafety.taxonomy import LABEL_NAMES
from mhsafety.testing.fakeserver import FakeServer, item_from_prompt


def need(module: str, extra: str) -> None:
    """Skip the calling test when an optional tool is not installed."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install 'mhsafety[{extra}]')")


def scripted_answer(index: int, label: int) -> str:
    """A fixed answer per item: right, 'Safe Response', a wrong name with an explanation,
    or no label at all (so every harness must count invalid answers the same way)."""
    kind = index % 4
    if kind == 0:
        return LABEL_NAMES[label]
    if kind == 1:
        return "Safe Response"
    if kind == 2:
        return "Linguistic Neglect. The reply drifts away from the concern."
    return "I cannot tell."


@pytest.fixture(scope="session")
def small_items(test_examples):
    """40 items, five per label where there are five, every label present."""
    by_label: dict[int, list] = {}
    for ex in test_examples:
        by_label.setdefault(ex.label, []).append(ex)
    return [ex for lab in sorted(by_label) for ex in by_label[lab][:5]][:40]


@pytest.fixture(scope="session")
def small_file(small_items, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("harness") / "small.jsonl"
    path.write_text("".join(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n"
                            for ex in small_items), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def answers(small_items) -> dict[tuple[str, str], str]:
    return {(ex.context, ex.response): scripted_answer(i, ex.label)
            for i, ex in enumerate(small_items)}


@pytest.fixture
def scripted_server(answers):
    srv = FakeServer(lambda prompt, body: answers.get(item_from_prompt(prompt), "?")).start()
    yield srv
    srv.stop()
