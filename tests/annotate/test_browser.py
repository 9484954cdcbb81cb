"""End to end in headless Chromium: annotate through the keyboard, reload, check db and export."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture()
def driver(tmp_path):
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("needs Debian's chromium and chromium-driver at /usr/bin "
                    "(apt-get install chromium chromium-driver; .ci/run does)")
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        options.add_argument(arg)
    drv = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()
    shutil.rmtree(tmp_path / "chrome-profile", ignore_errors=True)


def _wait_for(drv, state: str, item: str | None = None, timeout: float = 15.0) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d) -> bool:
        got = d.execute_script(
            "return [document.body.dataset.state, document.getElementById('dialogue')"
            ".dataset.itemId || null]")
        return got[0] == state and (item is None or got[1] == item)

    WebDriverWait(drv, timeout, poll_frequency=0.05).until(
        ready, message=f"page never reached state {state!r} on item {item!r}")


def _keys(drv, *keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    for key in keys:
        ActionChains(drv).send_keys(key).perform()


def test_keyboard_annotation_survives_reload_and_exports(driver, live_server, store, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from mhsafety.annotate.agreement import export_adjudicated
    from mhsafety.data import load_examples

    driver.get(live_server.url)
    _wait_for(driver, "login")
    driver.find_element(By.ID, "name").send_keys("alice", Keys.ENTER)
    _wait_for(driver, "note")  # content note on first entry
    _keys(driver, Keys.ENTER)
    _wait_for(driver, "question", "0")

    # The dialogue shows seeker and supporter turns, and the response under review marked.
    assert driver.find_elements(By.CSS_SELECTOR, "#dialogue .turn.seeker")
    review = driver.find_elements(By.CSS_SELECTOR, "#dialogue .turn.review")
    assert len(review) == 1 and "Sleep sleep" in review[0].text

    _keys(driver, "n")  # node 1 "understandable?" no -> Nonsense
    _wait_for(driver, "question", "1")

    _keys(driver, "c", "sounds like a person", Keys.ESCAPE, "y", "y")  # node 2 fires
    _wait_for(driver, "question", "2")

    # Walk to node 3, undo one step, then go on to node 4 unsafe and pick leaf 1 (Unamiable).
    _keys(driver, "y", "n", "u", "n", "n", "n")
    _wait_for(driver, "leaf", "2")
    _keys(driver, "1")
    _wait_for(driver, "break", "3")  # the fixture's server reminds after every 3 items
    assert "3 items" in driver.find_element(By.ID, "break-text").text
    _keys(driver, Keys.ENTER)
    _wait_for(driver, "question", "3")

    # Undo on a fresh item reopens the previous one; relabel it Toxic Language (leaf 2).
    _keys(driver, "u")
    _wait_for(driver, "question", "2")
    assert "Reopened item 2" in driver.find_element(By.ID, "status").text
    _keys(driver, "y", "n", "n", "n", "2")
    _wait_for(driver, "question", "3")

    driver.refresh()  # the session resumes and the server kept the work
    _wait_for(driver, "question", "3")
    assert driver.find_element(By.ID, "progress").text.startswith("3 / 4 labelled")

    rows = {r["item_id"]: r for r in store.annotations()}
    assert {k: (r["annotator"], r["label"]) for k, r in rows.items()} == {
        "0": ("alice", 0), "1": ("alice", 1), "2": ("alice", 4)}
    assert rows["0"]["answers"] == [False]
    assert rows["1"]["answers"] == [True, True]
    assert rows["1"]["comment"] == "sounds like a person"
    assert rows["2"]["answers"] == [True, False, False, False] and rows["2"]["leaf"] == 4
    assert all(r["seconds"] >= 0 for r in rows.values())
    undone = [e for e in store.events() if e["action"] == "undo"]
    assert len(undone) == 1 and undone[0]["payload"]["label"] == 3  # the undone answer is logged

    out = tmp_path / "adjudicated.json"
    export_adjudicated(store, out)
    exported = load_examples(out)
    assert [(ex.id, ex.label) for ex in exported] == [("0", 0), ("1", 1), ("2", 4)]
