"""The CLI conventions, run as a real subprocess: one line on stderr and exit 2 on bad input."""

import json
import subprocess
import sys

import pytest


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mhsafety", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120, check=False)


def test_help_lists_the_foundation_commands():
    result = run("--help")
    assert result.returncode == 0
    for name in ("taxonomy", "data", "evaluate", "reproduce"):
        assert name in result.stdout


def test_taxonomy_tree_and_json():
    tree = run("taxonomy")
    assert tree.returncode == 0 and "Node 3" in tree.stdout and "Linguistic Neglect" in tree.stdout
    parsed = json.loads(run("taxonomy", "--json").stdout)
    assert [c["name"] for c in parsed["labels"]][7] == "Safe Response"


def test_bad_data_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"context": "a", "response": "b", "label": 12}]', encoding="utf-8")
    result = run("data", "stats", "--data", str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "item 0" in lines[0] and "'label'" in lines[0] and "0..7" in lines[0]
    assert "Traceback" not in result.stderr


def test_verbose_shows_the_traceback(tmp_path):
    result = run("data", "stats", "--data", str(tmp_path / "missing.json"), "--verbose")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "no such file" in result.stderr


def test_usage_error_exits_2():
    result = run("evaluate")
    assert result.returncode == 2


def test_stats_on_the_public_set(test_json):
    result = run("data", "stats", "--data", str(test_json), "--json")
    stats = json.loads(result.stdout)
    assert {row["name"]: row["count"] for row in stats["labels"]}["Nonsense"] == 53


def test_split_writes_stratified_files(test_json, tmp_path):
    result = run("data", "split", "--data", str(test_json), "--out-dir", str(tmp_path),
                 "--dev-ratio", "0.1", "--seed", "3")
    assert result.returncode == 0, result.stderr
    from collections import Counter

    from mhsafety.data import load_examples

    train, dev = load_examples(tmp_path / "train.jsonl"), load_examples(tmp_path / "dev.jsonl")
    everything = load_examples(test_json)
    assert sorted(e.id for e in train + dev) == sorted(e.id for e in everything)
    assert not {e.id for e in train} & {e.id for e in dev}
    # Stratified: every label keeps about its share on the dev side (within two items of
    # 10 %), where an unstratified 80-item draw often misses a small class by more.
    total, on_dev = Counter(e.label for e in everything), Counter(e.label for e in dev)
    for label, n in total.items():
        assert abs(on_dev[label] - 0.1 * n) <= 2, (label, on_dev[label], n)
    assert abs(len(dev) - 80) <= 4


@pytest.mark.parametrize("fmt", ["markdown", *(pytest.param(f, marks=pytest.mark.slow)
                                               for f in ("latex", "csv", "json"))])
def test_evaluate_formats(tmp_path, fmt):
    from mhsafety.records import PredictionRecord, write_records

    for run_name, preds in (("1", [7, 2, 0, 7]), ("2", [7, 7, None, 7])):
        write_records(tmp_path / f"{run_name}.preds.jsonl",
                      [PredictionRecord(str(i), g, p, "My system", run_name)
                       for i, (g, p) in enumerate(zip([7, 2, 0, 2], preds))])
    result = run("evaluate", str(tmp_path), "--format", fmt, "--extra")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    if fmt == "json":
        row = json.loads(out)[0]
        assert row["invalid"] == 1 and row["runs"] == 2
        assert row["scores"]["accuracy"]["mean"] == pytest.approx((0.75 + 0.25) / 2)
    else:
        assert "My system" in out and "50.00" in out


def test_evaluate_missing_file_is_exit_2(tmp_path):
    result = run("evaluate", str(tmp_path / "nope.preds.jsonl"))
    assert result.returncode == 2 and "no such file" in result.stderr
