"""Fixtures for the guard: checkpoints (a scripted fake and a real baseline) and real
server processes on 127.0.0.1, port 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import fakeclf
from tests.helpers.guard_servers import TOKEN, Server, start_server, stop_server  # noqa: F401


@pytest.fixture
def fake_kind(monkeypatch):
    """Register the scripted "guardfake" kind in this process."""
    from mhsafety import registry

    monkeypatch.setitem(registry.KINDS, fakeclf.KIND, fakeclf.TARGET)
    return fakeclf


@pytest.fixture(scope="session")
def fake_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("guard") / "fake"
    fakeclf.FakeClassifier().save(path)
    return path


@pytest.fixture(scope="session")
def baseline_checkpoint(tmp_path_factory, test_examples) -> Path:
    """A real baseline trained on the public test set (small settings, to keep tests fast)."""
    from mhsafety.registry import create_classifier

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
