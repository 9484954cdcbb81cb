"""Fixtures for the annotation tests: a small dataset and a live server on port 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ITEMS = [
    {"context": "[seeker]I can't sleep since my exam results came out.",
     "response": "[supporter]Sleep sleep sleep, results results.", "label": 0},
    {"context": "[seeker]Nobody understands me.[supporter]I'm here to listen.[seeker]Really?",
     "response": "[supporter]Yes, I went through the same thing in college.", "label": 1},
    {"context": "[seeker]My parents keep fighting and I feel it's my fault.",
     "response": "[supporter]You are overreacting, honestly.", "label": 3},
    {"context": "[seeker]I lost my job today.",
     "response": "[supporter]That sounds really hard. How are you feeling right now?",
     "label": 7},
]


@pytest.fixture()
def small_data(tmp_path) -> Path:
    path = tmp_path / "items.json"
    path.write_text(json.dumps(ITEMS), encoding="utf-8")
    return path


@pytest.fixture()
def store(tmp_path, small_data):
    from mhsafety.annotate.store import import_file, open_store

    s = open_store(tmp_path / "ann.sqlite")
    import_file(s, small_data)
    return s


@pytest.fixture()
def live_server(store):
    """The real app on 127.0.0.1:<free port>, served from a thread."""
    from mhsafety.annotate.app import create_server, serve_in_thread
    from mhsafety.annotate.config import AnnotateServerConfig

    server = create_server(store, AnnotateServerConfig(port=0, break_every=3))
    serve_in_thread(server)
    yield server
    server.shutdown()
    server.server_close()
