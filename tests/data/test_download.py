"""The download path against a real local HTTP server (this machine has no internet)."""

import hashlib
import http.server
import threading
from functools import partial

import pytest

from mhsafety import data
from mhsafety.data import download
from mhsafety.errors import DataError


@pytest.fixture()
def file_server(tmp_path, test_json):
    root = tmp_path / "www"
    root.mkdir()
    (root / "test.json").write_bytes(test_json.read_bytes())
    (root / "tampered.json").write_bytes(test_json.read_bytes() + b" ")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_verifies_and_caches(file_server, test_json):
    path = data.download_test_set(url=f"{file_server}/test.json")
    assert path == data.cached_test_set_path()
    assert str(path).startswith(str(data.cache_dir()))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == data.TEST_SET_SHA256
    # A verified cached copy is reused without the network.
    assert data.download_test_set(url="http://127.0.0.1:9/unreachable") == path
    assert data.resolve_data(None) == path


def test_checksum_mismatch_saves_nothing(file_server):
    with pytest.raises(DataError, match="expected ee8fbf50"):
        data.download_test_set(url=f"{file_server}/tampered.json")
    assert not data.cached_test_set_path().exists()
    cache = data.cache_dir()
    leftovers = [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []
    assert leftovers == []


def test_offline_gives_one_clear_sentence(monkeypatch):
    monkeypatch.setattr(download, "TEST_SET_URL", "http://127.0.0.1:9/test.json")
    with pytest.raises(DataError) as err:
        data.resolve_data(None)
    message = str(err.value)
    assert "pass --data PATH" in message and "\n" not in message


def test_cli_download_and_stats(file_server, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mhsafety.cli import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["data", "download", "--url", f"{file_server}/test.json"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["data", "stats"])  # uses the cache
    assert result.exit_code == 0
    assert "Safe Response" in result.output and "367" in result.output
