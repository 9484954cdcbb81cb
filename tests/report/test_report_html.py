from __future__ import annotations

import base64
import json
import re

import pytest

from mhsafety.cli import main
from mhsafety.errors import UsageError
from mhsafety.report import build_report


@pytest.mark.slow
def test_report_is_self_contained_and_complete(report_runs, tmp_path, test_json):
    out = tmp_path / "report"
    result = build_report([report_runs], out, resamples=300, command="mhsafety report x")
    page = result.html.read_text(encoding="utf-8")
    # nothing outside the page: no scripts, links, remote or relative sources
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"""(src|href)\s*=\s*['"](?!data:|#)""", page)
    assert "url(" not in page
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) == page.count("<img ")
    assert all(base64.b64decode(img)[:4] == b"\x89PNG" for img in images)
    # sections, the taxonomy, the provenance and escaping
    for anchor in ("summary", "significance", "classes", "nodes", "errors", "figures",
                   "taxonomy", "provenance"):
        assert f"<section id='{anchor}'>" in page
    # per-node scores, run-aware intervals, coverage of the system with invalid answers
    assert "Node 4: which unsafe kind" in page and "runs and items" in page
    assert "<th>Coverage</th>" in page and "majority vote over runs" in page
    # rendered from the template: nothing left unrendered
    assert "{{" not in page and "{%" not in page
    assert "Unauthorized Preachment" in page and "越权说教" in page
    assert "judge &lt;b&gt;&amp;" in page and "judge <b>&" not in page
    assert "unit-test protocol" in page  # the manifest beside the records
    assert "tfidf-lr" in page and "5-fold CV" in page  # what the records say
    assert "mhsafety report x" in page
    assert "scikit-learn" in page and "numpy" in page
    # the reliability diagram appears for the system with probabilities only
    assert "Reliability diagram: baseline" in page
    assert "Reliability diagram: judge" not in page
    assert "Calibration of the systems that output probabilities" in page
    assert (out / "figures" / "reliability-baseline.svg").exists()
    assert (out / "figures" / "per-class-f1.png").exists()
    data = json.loads((out / "analysis.json").read_text())
    assert data["provenance"]["settings"]["resamples"] == 300
    assert [s["system"] for s in data["analysis"]["systems"]] == ["baseline", "judge <b>&"]


def test_report_never_overwrites_a_folder_it_did_not_make(report_runs, tmp_path, monkeypatch):
    # folder handling only: skip drawing the figures
    monkeypatch.setattr("mhsafety.report.html.render_figures", lambda *a, **k: [])
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="did not write; choose another --out, or pass --force"):
        build_report([report_runs], precious, resamples=100)
    assert (precious / "notes.txt").read_text() == "keep me"
    # an earlier report is replaced
    out = tmp_path / "report"
    build_report([report_runs], out, resamples=100)
    (out / "index.html").write_text("old page")
    build_report([report_runs], out, resamples=100)
    assert (out / "index.html").read_text() != "old page"
    # but not while it holds a file someone added: replacing would delete it
    (out / "my-notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="also holds my-notes.txt"):
        build_report([report_runs], out, resamples=100)
    assert (out / "my-notes.txt").read_text() == "keep me"
    build_report([report_runs], out, resamples=100, force=True)
    assert not (out / "my-notes.txt").exists() and (out / "index.html").exists()


def test_report_command(report_runs, tmp_path, test_json, capsys, monkeypatch):
    monkeypatch.setattr("mhsafety.report.html.render_figures", lambda *a, **k: [])
    out = tmp_path / "r"
    with pytest.raises(SystemExit) as exc:
        main(["report", str(report_runs), "--out", str(out), "--resamples", "200",
              "--data", str(test_json)])
        raise SystemExit(0)
    # the synthetic ids are 0..159, the public test set's too: its hash is recorded
    assert exc.value.code == 0, capsys.readouterr().err
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "ee8fbf5094a98f75d10aff5c65510a7fd35fc7f80df552448a21ae3aee01b841" in page
    assert "--resamples 200" in page
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "r2")])
    assert exc.value.code == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_command_line_is_data():
    from mhsafety.report.provenance import command_line

    assert command_line(["/usr/bin/mhsafety", "report", "runs dir", "--out", "r"]) == \
        "mhsafety report 'runs dir' --out r"
