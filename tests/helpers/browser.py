"""Headless Chromium for the browser tests (skipped when /usr/bin/chromium is missing)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def require_browser() -> None:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(f"headless Chromium not installed ({CHROMIUM}, {CHROMEDRIVER}); "
                    "install the Debian packages chromium and chromium-driver")
    pytest.importorskip("selenium", reason="selenium is not installed (pip install "
                        "'mhsafety[test]')")


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000, extra_args: tuple[str, ...] = (),
             log_performance: bool = False) -> Iterator[object]:
    """A headless Chromium driver; ``extra_args`` are added to its command line and
    ``log_performance`` records every network request in the driver's performance log."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="mhsafety-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", f"--window-size={width},{height}", *extra_args):
        options.add_argument(arg)
    if log_performance:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
