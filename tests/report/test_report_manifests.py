"""Reports embed only the manifests mhsafety wrote beside the records, within a cap, and say
what they left out (issue 20: a folder of 24,001 upstream JSON files made a 148 MB page)."""

from __future__ import annotations

import json

from mhsafety.cli import main
from mhsafety.io import mark_output_dir
from mhsafety.records import PredictionRecord, write_records
from mhsafety.report import build_report
from mhsafety.report.provenance import MANIFESTS_MAX_CHARS, find_manifests


def _records(folder, system="sys"):
    recs = [PredictionRecord(id=str(i), gold=i % 8, pred=(i * 3) % 8, system=system, run="0")
            for i in range(40)]
    return write_records(folder / f"{system}.preds.jsonl", recs)


def _no_figures(monkeypatch):
    monkeypatch.setattr("mhsafety.report.html.render_figures", lambda *a, **k: [])


def test_many_foreign_json_files_are_counted_not_embedded(tmp_path, monkeypatch):
    _no_figures(monkeypatch)
    root = tmp_path / "runs"
    release = root / "DialogueSafety" / "answers"
    release.mkdir(parents=True)
    for i in range(3000):  # like the upstream release: JSON answers, not manifests
        (release / f"{i}.json").write_text(json.dumps({"answer": "x" * 200, "i": i}))
    (root / "notes.json").write_text(json.dumps({"secret": "FOREIGN-BESIDE-RECORDS"}))
    _records(root / "preds")
    result = build_report([root], tmp_path / "report", resamples=100)
    page = result.html.read_text(encoding="utf-8")
    assert "FOREIGN-BESIDE-RECORDS" not in page and '"answer"' not in page
    assert len(page) < 2_000_000
    # only folders beside the records were read: the release's 3000 files were not even listed
    assert "1 JSON file beside the records not written by mhsafety, not shown" in page
    assert "notes.json" in page


def test_manifests_the_tool_wrote_are_shown_and_capped(tmp_path):
    root = tmp_path / "bench"
    root.mkdir()
    _records(root / "predictions")
    mark_output_dir(root, "benchmark")
    big = {"protocol": "cv", "config": "y" * 15_000}
    for i in range(20):  # 20 x ~15k characters: past the cap
        (root / f"m{i:02d}.json").write_text(json.dumps(big))
    judge = tmp_path / "judge"  # an unmarked folder: its manifest names its kind
    _records(judge / "preds", "j")
    (judge / "manifest.json").write_text(json.dumps({"kind": "mhsafety-judge-run",
                                                     "model": "m"}))
    (judge / "other.json").write_text("{}")
    sources = [str(p) for p in tmp_path.rglob("*.preds.jsonl")]
    found, left_out = find_manifests([root, judge], sources)
    paths = [m.path for m in found]
    assert str(judge / "manifest.json") in paths and str(judge / "other.json") not in paths
    assert sum(len(m.text) for m in found) <= MANIFESTS_MAX_CHARS
    assert any("past the cap" in line for line in left_out)
    assert any("1 JSON file beside the records not written by mhsafety" in line
               and "other.json" in line for line in left_out)


def test_report_shows_progress_when_piped(tmp_path, capsys, monkeypatch):
    _no_figures(monkeypatch)
    _records(tmp_path / "runs", "a")
    _records(tmp_path / "runs", "b")
    try:
        main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "r"), "--resamples",
              "100"])
    except SystemExit as exc:
        assert not exc.code
    err = capsys.readouterr().err
    steps = [line for line in err.splitlines() if line.startswith("report: step ")]
    # two systems bootstrapped, comparisons, errors, figures, page
    assert steps == ["report: step 1/6 (bootstrap a)", "report: step 2/6 (bootstrap b)",
                     "report: step 3/6 (comparisons)", "report: step 4/6 (error analysis)",
                     "report: step 5/6 (figures)", "report: step 6/6 (page)"]
