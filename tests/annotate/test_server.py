"""The real HTTP app: API errors, the token, two annotators at once, a killed server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from mhsafety.annotate.app import create_server, serve_in_thread
from mhsafety.annotate.config import AnnotateServerConfig
from mhsafety.annotate.store import open_store
from mhsafety.errors import UsageError
from mhsafety.taxonomy import path_for_label

LOCAL = AnnotateServerConfig(port=0)


def call(url: str, path: str, body: dict | None = None, token: str | None = None):
    """(status, json) of one request."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url.rstrip("/") + path, data=data,
                                 headers={"Content-Type": "application/json"})
    if token is not None:
        req.add_header("X-Annotate-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_page_config_and_api_errors(live_server):
    url = live_server.url
    with urllib.request.urlopen(url, timeout=10) as res:
        assert res.status == 200 and b"/static/app.js" in res.read()
        assert "default-src 'none'" in res.headers["Content-Security-Policy"]
    status, config = call(url, "/api/config")
    assert status == 200 and config["items"] == 4 and not config["token_required"]
    assert [n["number"] for n in config["taxonomy"]["nodes"]] == [1, 2, 3, 4]

    assert call(url, "/api/session", {"annotator": ""})[0] == 400
    status, info = call(url, "/api/session", {"annotator": "ann"})
    assert status == 200 and info["note_acknowledged"] is False
    assert call(url, "/api/note", {"annotator": "ann"})[0] == 200
    assert call(url, "/api/session", {"annotator": "ann"})[1]["note_acknowledged"] is True

    status, err = call(url, "/api/annotate", {"annotator": "ann", "item_id": "0",
                                              "answers": [True, True, True]})
    assert status == 400 and "goes on after" in err["error"]
    status, err = call(url, "/api/annotate", {"annotator": "ann", "item_id": "nope",
                                              "answers": [False]})
    assert status == 404 and "nope" in err["error"]
    assert call(url, "/api/nothing", {})[0] == 404
    req = urllib.request.Request(url + "api/next", data=b"{not json",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info_:
        urllib.request.urlopen(req, timeout=10)
    assert info_.value.code == 400


def test_token_is_required_when_set(store):
    server = create_server(store, LOCAL, token="s3cret")
    serve_in_thread(server)
    try:
        assert call(server.url, "/api/config")[1]["token_required"] is True
        status, err = call(server.url, "/api/session", {"annotator": "a"})
        assert status == 401 and "token" in err["error"]
        assert call(server.url, "/api/session", {"annotator": "a"}, token="wrong")[0] == 401
        assert call(server.url, "/api/session", {"annotator": "a"}, token="s3cret")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_non_loopback_without_token_is_refused(store):
    with pytest.raises(UsageError, match="without an access token"):
        create_server(store, AnnotateServerConfig(host="0.0.0.0", port=0))


def test_two_annotators_at_once_lose_nothing(tmp_path):
    items = [{"id": f"i{n}", "context": f"[seeker]problem {n}", "response": f"[supporter]r{n}"}
             for n in range(40)]
    data = tmp_path / "items.jsonl"
    data.write_text("\n".join(json.dumps(i) for i in items))
    from mhsafety.annotate.store import import_file

    store = open_store(tmp_path / "db.sqlite")
    import_file(store, data)
    server = create_server(store, LOCAL)
    serve_in_thread(server)
    acknowledged: dict[str, dict[str, int]] = {"ann-a": {}, "ann-b": {}}
    errors: list[str] = []
    barrier = threading.Barrier(2)

    def work(name: str, offset: int) -> None:
        try:
            call(server.url, "/api/session", {"annotator": name})
            barrier.wait()
            while True:
                status, nxt = call(server.url, "/api/next", {"annotator": name})
                if nxt["item"] is None:
                    return
                item = nxt["item"]["id"]
                label = (int(item[1:]) + offset) % 3  # labels 0, 1, 2: no leaf needed
                status, saved = call(server.url, "/api/annotate", {
                    "annotator": name, "item_id": item, "answers": path_for_label(label),
                    "seconds": 0.1})
                if status != 200:
                    errors.append(f"{name} {item}: {status} {saved}")
                    return
                acknowledged[name][item] = saved["saved"]["label"]
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(f"{name}: {exc!r}")

    threads = [threading.Thread(target=work, args=(n, k)) for k, n in enumerate(acknowledged)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    server.shutdown()
    server.server_close()
    assert not errors
    stored: dict[str, dict[str, int]] = {"ann-a": {}, "ann-b": {}}
    for row in open_store(tmp_path / "db.sqlite", create=False).annotations():
        stored[row["annotator"]][row["item_id"]] = row["label"]
    assert stored == acknowledged
    assert all(len(v) == 40 for v in stored.values())


def test_killed_server_keeps_every_acknowledged_answer(tmp_path, small_data):
    db = tmp_path / "db.sqlite"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mhsafety", "annotate", "serve", "--data", str(small_data),
         "--db", str(db), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()
        call(url, "/api/session", {"annotator": "k"})
        for item, label in (("0", 0), ("1", 1), ("2", 2)):
            assert call(url, "/api/annotate", {"annotator": "k", "item_id": item,
                                               "answers": path_for_label(label)})[0] == 200
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    rows = open_store(db, create=False).annotations()
    assert [(r["item_id"], r["label"]) for r in rows] == [("0", 0), ("1", 1), ("2", 2)]


def test_limits_methods_and_other_sites(live_server):
    url = live_server.url
    big = {"annotator": "a", "comment": "x" * (live_server_max_body() + 1)}
    status, err = call(url, "/api/session", big)
    assert status == 413 and "over" in err["error"]
    req = urllib.request.Request(url + "api/session", method="GET")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 405 and "not allowed" in json.loads(info.value.read())["error"]
    # A page of another site cannot drive the API from an annotator's browser.
    req = urllib.request.Request(url + "api/session", data=b'{"annotator": "a"}',
                                 headers={"Origin": "http://evil.example"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 403
    same = url.rstrip("/")
    req = urllib.request.Request(url + "api/session", data=b'{"annotator": "a"}',
                                 headers={"Origin": same})
    with urllib.request.urlopen(req, timeout=10) as res:
        assert res.status == 200
        assert res.headers["Cache-Control"] == "no-store"
        assert res.headers["Content-Type"] == "application/json; charset=utf-8"
    req = urllib.request.Request(url + "static/walk.js", method="HEAD")
    with urllib.request.urlopen(req, timeout=10) as res:
        assert res.status == 200 and res.read() == b""
        assert res.headers["Content-Type"].startswith("text/javascript")


def live_server_max_body() -> int:
    return AnnotateServerConfig().max_body


def test_server_settings_are_checked_where_they_are_built():
    from mhsafety.settings import build

    with pytest.raises(UsageError, match="port"):
        build(AnnotateServerConfig, {"port": "70000"})
    with pytest.raises(UsageError, match="break_every"):
        build(AnnotateServerConfig, {"break_every": 0})
    with pytest.raises(UsageError, match="nonsense"):
        build(AnnotateServerConfig, {"nonsense": 1})
    assert build(AnnotateServerConfig, {"port": "0"}).port == 0
