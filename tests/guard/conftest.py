"""Fixtures for the guard: checkpoints (a scripted fake and a real baseline) and real
server processes on 127.0.0.1, port 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fakeclf

TOKEN = "test-token-7f3a"
URL_RE = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


class Server:
    def __init__(self, process: subprocess.Popen, url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def start_server(checkpoint: Path, log: Path, *args: str, env: dict[str, str] | None = None,
                 ) -> Server:
    full_env = {k: v for k, v in os.environ.items() if k != "MHSAFETY_GUARD_TOKEN"}
    full_env.update(env or {})
    handle = open(log, "w", encoding="utf-8")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [sys.executable, str(HERE / "run_server.py"), "serve", "--checkpoint", str(checkpoint),
         "--port", "0", *args],
        stdout=handle, stderr=subprocess.STDOUT, env=full_env)
    handle.close()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        match = URL_RE.search(log.read_text(encoding="utf-8", errors="replace"))
        if match:
            url = match.group(1)
            try:
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                    return Server(process, url, log)
            except httpx.HTTPError:
                pass
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not start:\n{log.read_text()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def fake_kind(monkeypatch):
    """Register the scripted "guardfake" kind in this process."""
    from mhsafety.classifiers import base

    monkeypatch.setitem(base.KINDS, fakeclf.KIND, fakeclf.TARGET)
    return fakeclf


@pytest.fixture(scope="session")
def fake_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("guard") / "fake"
    fakeclf.FakeClassifier().save(path)
    return path


@pytest.fixture(scope="session")
def baseline_checkpoint(tmp_path_factory, test_examples) -> Path:
    """A real baseline trained on the public test set (small settings, to keep tests fast)."""
    from mhsafety.classifiers import create_classifier

    path = tmp_path_factory.mktemp("guard") / "baseline"
    model = create_classifier("baseline", seed=0, c_grid=[2.0], calibrate=False, ngram_max=2,
                              max_iter=300)
    model.fit(test_examples).save(path)
    return path


@pytest.fixture(scope="session")
def baseline_server(baseline_checkpoint, tmp_path_factory):
    """No auth; small limits so each can be hit cheaply."""
    log = tmp_path_factory.mktemp("guard-logs") / "baseline.log"
    server = start_server(baseline_checkpoint, log, "--max-batch", "8", "--max-text-chars",
                          "600", "--max-body-bytes", "20000")
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def fake_server(fake_checkpoint, tmp_path_factory):
    """Bearer auth on, a 1 s timeout, and the scripted model (failures on demand)."""
    log = tmp_path_factory.mktemp("guard-logs") / "fake.log"
    server = start_server(fake_checkpoint, log, "--timeout", "1",
                          env={"MHSAFETY_GUARD_TOKEN": TOKEN})
    yield server
    stop_server(server)
