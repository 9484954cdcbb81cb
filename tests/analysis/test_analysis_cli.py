from __future__ import annotations

import json
from collections import defaultdict

import pytest

from mhsafety.analysis import analyze
from mhsafety.cli import main
from mhsafety.records import load_runs


def _run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_analyze_prints_every_section(runs_dir, capsys):
    code, out, err = _run_cli(["analyze", str(runs_dir), "--resamples", "300"], capsys)
    assert code == 0, err
    for heading in ("Scores with 95 % bootstrap intervals", "Recall per class",
                    "Items of each class found", "Pairwise comparisons",
                    "Confusions that account for most errors", "Run-to-run agreement",
                    "Items every system misses", "Per-node scores"):
        assert f"## {heading}" in out
    row = next(line for line in out.splitlines() if line.startswith("| good vs weak"))
    assert row.rstrip(" |").endswith("yes")  # 80 % vs 45 % on 300 items is significant
    # no resample crosses zero: the p-value is the floor 2 / 301, printed as a bound
    assert "< 0.0066" in row
    assert "McNemar (majority vote)" in out and "resample their runs and then the items" in out
    # 'good' has invalid answers: its coverage is shown
    header = next(line for line in out.splitlines() if line.startswith("| System | Runs"))
    assert header.rstrip(" |").endswith("Coverage")


@pytest.mark.slow
def test_analyze_json_and_plots(runs_dir, tmp_path, capsys):
    out_file = tmp_path / "analysis.json"
    plots = tmp_path / "plots"
    code, _, err = _run_cli(["analyze", str(runs_dir), "--resamples", "200", "--json",
                             "--out", str(out_file), "--plots", str(plots)], capsys)
    assert code == 0, err
    data = json.loads(out_file.read_text())
    assert [s["system"] for s in data["systems"]] == ["good", "weak"]
    assert data["systems"][0]["n_invalid"] > 0
    assert data["comparisons"][0]["mcnemar"]["a_only"] > data["comparisons"][0]["mcnemar"][
        "b_only"]
    names = {p.name for p in plots.iterdir()}
    for stem in ("intervals", "score-distributions", "per-class-f1", "confusion-good",
                 "confusion-weak"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
    assert (plots / "per-class-f1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"Linguistic Neglect" in (plots / "per-class-f1.svg").read_bytes()


def test_analyze_bad_input_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.preds.jsonl"
    bad.write_text('{"id": "1", "pred": 9, "gold": 0}\n')
    code, _, err = _run_cli(["analyze", str(bad)], capsys)
    assert code == 2
    assert err.startswith("mhsafety: error: ") and "line 1" in err and "Traceback" not in err
    code, _, err = _run_cli(["analyze", str(tmp_path / "missing")], capsys)
    assert code == 2 and "no such file or folder" in err


def test_upstream_bert_beats_chatgpt_0613_zero_shot_and_nonsense_counts(upstream_runs,
                                                                         test_json):
    result = analyze([upstream_runs], resamples=1000, seed=0, data=test_json)
    comparison = result.comparison("ChatGPT-0613 zero-shot", "BERT-base")
    assert comparison.bootstrap["accuracy"].high < 0
    assert comparison.significant("accuracy") and comparison.holm["mcnemar"] < 0.05
    # Nonsense coverage counted directly from the records
    runs = load_runs([upstream_runs])
    for system, system_runs in runs.items():
        right = defaultdict(int)
        for run in system_runs:
            for rec in run.records:
                if rec.gold == 0:
                    right[rec.id] += rec.pred == 0
        nonsense = result.errors.coverage[system][0]
        assert nonsense.n_items == len(right) == 53
        assert nonsense.right_any == sum(v > 0 for v in right.values())
        assert nonsense.right_all == sum(v == len(system_runs) for v in right.values())
    assert all(item.response is not None for item in result.errors.missed_by_all)


def test_too_few_resamples_for_the_pairs_is_flagged(runs_dir, capsys):
    code, out, err = _run_cli(["analyze", str(runs_dir), "--resamples", "100"], capsys)
    assert code == 0, err
    assert "Warning: with 100 resamples and 1 pairs" not in out  # 2/101 < 0.025
    from mhsafety.analysis import analyze
    from mhsafety.analysis.core import resolution_warning

    result = analyze([runs_dir], resamples=100)
    result.comparisons = result.comparisons * 3  # as if there were 3 pairs: floor 0.059
    assert "no Holm-adjusted bootstrap p-value can fall below 0.059" in resolution_warning(
        result)
