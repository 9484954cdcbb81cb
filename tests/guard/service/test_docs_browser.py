"""/docs and /redoc render in headless Chromium with the network off: every asset comes from
the package, none from a CDN (issue 14)."""

from __future__ import annotations

import contextlib
import json
import time

import pytest

from tests.helpers.browser import chromium, require_browser

pytestmark = pytest.mark.browser


@contextlib.contextmanager
def offline_chromium():
    """Chromium that can reach 127.0.0.1 only: every host name fails to resolve, and the
    performance log records every request it tried."""
    require_browser()
    with chromium(extra_args=("--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",),
                  log_performance=True) as driver:
        yield driver


def requested_urls(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def wait_for(driver, css: str, at_least: int, seconds: float = 30):
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + seconds
    found = []
    while time.monotonic() < deadline:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        if len(found) >= at_least:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{css}: found {len(found)} elements, expected {at_least}\n"
                         + driver.page_source[:2000])


def test_swagger_ui_and_redoc_work_offline(baseline_server):
    with offline_chromium() as driver:
        driver.get(f"{baseline_server.url}/docs")
        paths = {e.get_attribute("data-path") for e in
                 wait_for(driver, ".opblock-summary-path", 7)}
        assert {"/v1/check", "/v1/check_dialogue", "/v1/taxonomy", "/v1/policy", "/healthz",
                "/readyz", "/metrics"} <= paths
        driver.get(f"{baseline_server.url}/redoc")
        wait_for(driver, "[data-section-id^='operation/']", 7)
        outside = [u for u in requested_urls(driver)
                   if not u.startswith((baseline_server.url, "data:", "blob:", "about:",
                                       "chrome://"))]  # the browser's own pages
        assert outside == []
