"""Fixtures the command-line tests share."""

from __future__ import annotations

import pytest

from mhsafety.data import write_examples


@pytest.fixture(scope="module")
def small_file(test_examples, tmp_path_factory):
    """Every fifth item of the test set (160 items)."""
    path = tmp_path_factory.mktemp("data") / "small.jsonl"
    write_examples(path, test_examples[::5])
    return path
