"""Dataset folders: export with a card, load with `datasets`, read back identically."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from mhsafety.data import load_examples
from mhsafety.taxonomy import LABEL_NAMES

pytestmark = pytest.mark.skipif(importlib.util.find_spec("datasets") is None,
                                reason="datasets is not installed (pip install 'mhsafety[hf]')")


@pytest.mark.parametrize("fmt", ["hf", "parquet", "jsonl"])
def test_export_loads_with_datasets_and_reads_back_identically(fmt, test_examples, tmp_path):
    import datasets

    from mhsafety.data.export import export_dataset

    train = test_examples[:60]
    out = export_dataset({"test": test_examples, "train": train}, tmp_path / fmt, fmt)
    loaded = datasets.load_from_disk(str(out)) if fmt == "hf" else \
        datasets.load_dataset(str(out))
    assert set(loaded) == {"test", "train"}
    assert loaded["test"].features["label"].names == list(LABEL_NAMES)
    rows = [(r["id"], r["context"], r["response"], r["label"]) for r in loaded["test"]]
    assert rows == [(ex.id, ex.context, ex.response, ex.label) for ex in test_examples]
    # mhsafety's own reader: the test split by default, another split by name.
    assert load_examples(out) == test_examples
    if fmt == "hf":
        assert load_examples(out / "train") == train
    else:
        [train_file] = (out / "data").glob("train*")
        assert load_examples(train_file) == train


def test_card_names_labels_splits_citation_and_licence(test_examples, tmp_path):
    from mhsafety.data.export import export_dataset

    out = export_dataset({"test": test_examples}, tmp_path / "pq", "parquet")
    card = (out / "README.md").read_text(encoding="utf-8")
    header = card.split("---")[1]
    assert "'7': \"Safe Response\"" in header and "path: data/test-*.parquet" in header
    assert "| test | 800 |" in card  # split sizes
    assert "no declared licence" in card and "data-use" in card
    assert "2307.16457" in card and "语言忽视" in card


@pytest.mark.slow
def test_cli_export_then_stats_read_the_folder(test_json, tmp_path):
    out = tmp_path / "hf"
    run = [sys.executable, "-m", "mhsafety"]
    subprocess.run(run + ["data", "export", "--data", str(test_json), "--format", "hf",
                          "--out", str(out)], check=True, timeout=120)
    stats = subprocess.run(run + ["data", "stats", "--data", str(out), "--json"], check=True,
                           capture_output=True, text=True, timeout=120).stdout
    assert '"items": 800' in stats


def test_a_folder_without_a_dataset_is_one_sentence(tmp_path):
    from mhsafety.errors import DataError

    with pytest.raises(DataError, match="no dataset in it"):
        load_examples(tmp_path)


def test_folder_with_several_splits_and_no_test_asks_for_one(test_examples, tmp_path):
    from mhsafety.data.export import export_dataset
    from mhsafety.errors import DataError

    out = export_dataset({"a": test_examples[:5], "b": test_examples[5:9]}, tmp_path / "x",
                         "jsonl")
    with pytest.raises(DataError, match="none is 'test'"):
        load_examples(out)
