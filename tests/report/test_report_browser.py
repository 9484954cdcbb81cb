"""The report page opened from disk in headless Chromium: every table and image renders."""

from __future__ import annotations

import pytest

from mhsafety.report import build_report
from tests.helpers.browser import chromium, require_browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_report_renders_in_chromium(upstream_pair, test_json, tmp_path):
    require_browser()
    out = tmp_path / "report"
    result = build_report([upstream_pair], out, data=test_json, resamples=1000)
    shot = tmp_path / "report.png"
    with chromium() as driver:
        driver.get(result.html.resolve().as_uri())
        assert driver.title == "Dialogue safety: analysis report"
        tables = driver.find_elements("tag name", "table")
        images = driver.find_elements("tag name", "img")
        assert len(tables) >= 10
        # intervals, distributions, per-class F1 and one confusion matrix per system
        assert len(images) == 5
        widths = driver.execute_script(
            "return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
        assert all(w > 100 for w in widths), widths
        # no request left the page: everything it shows is inside it
        resources = driver.execute_script(
            "return performance.getEntriesByType('resource').map(r => r.name)")
        assert all(r.startswith("data:") for r in resources), resources
        text = driver.find_element("tag name", "body").text
        assert ("ChatGPT-0613 zero-shot is significantly worse than BERT-base" in text)
        assert "Nonsense (53 items): how many each system finds" in text
        # wide tables scroll inside their box; the page itself never scrolls sideways
        assert driver.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth")
        for cell in tables[0].find_elements("tag name", "td")[:3]:
            assert cell.is_displayed()
        driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
