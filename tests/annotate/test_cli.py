"""The `mhsafety annotate` commands: bad input gives one sentence and exit 2."""

from __future__ import annotations

import json
import sqlite3

import pytest

from mhsafety.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_import_rejects_invalid_item_with_its_index(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"context": "[seeker]a", "response": "[supporter]b"}\n'
                   '{"context": "[seeker]a", "response": "[supporter]b", "label": 9}\n')
    code, _, err = run(capsys, "annotate", "import", "--db", str(tmp_path / "db.sqlite"),
                       "--data", str(bad))
    assert code == 2
    assert "line 2 (item 1): field 'label' must be in 0..7, got 9" in err
    assert "Traceback" not in err


def test_foreign_database_is_refused(tmp_path, capsys, small_data):
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE users (id INTEGER)")
    conn.commit()
    conn.close()
    for cmd in (["import", "--data", str(small_data)], ["agreement"]):
        code, _, err = run(capsys, "annotate", *cmd, "--db", str(db))
        assert code == 2 and "not an mhsafety annotation database" in err and "users" in err


def test_serve_needs_the_token_variable_set(tmp_path, capsys, small_data, monkeypatch):
    monkeypatch.delenv("ANNOTATE_TOKEN_FOR_TEST", raising=False)
    code, _, err = run(capsys, "annotate", "serve", "--db", str(tmp_path / "db.sqlite"),
                       "--data", str(small_data), "--token-env", "ANNOTATE_TOKEN_FOR_TEST")
    assert code == 2 and "ANNOTATE_TOKEN_FOR_TEST" in err


def test_errors_name_the_flags_while_the_library_names_parameters(tmp_path, capsys,
                                                                 small_data):
    from mhsafety.annotate.app import create_server
    from mhsafety.annotate.config import AnnotateServerConfig
    from mhsafety.annotate.store import open_store
    from mhsafety.errors import UsageError

    code, _, err = run(capsys, "annotate", "serve", "--db", str(tmp_path / "db.sqlite"),
                       "--data", str(small_data), "--host", "0.0.0.0")
    assert code == 2 and "give one with --token-env VAR, or bind 127.0.0.1" in err
    code, _, err = run(capsys, "annotate", "serve", "--db", str(tmp_path / "db.sqlite"),
                       "--break-every", "0")
    assert code == 2 and "--break-every must be at least 1, got 0" in err
    with pytest.raises(UsageError, match="give token, or bind 127.0.0.1"):
        create_server(open_store(tmp_path / "db.sqlite"), AnnotateServerConfig(host="0.0.0.0"))
    with pytest.raises(UsageError, match="^break_every must be at least 1"):
        AnnotateServerConfig(break_every=0)


def test_import_agreement_progress_export(tmp_path, capsys, small_data):
    from mhsafety.annotate.store import open_store
    from mhsafety.taxonomy import path_for_label

    db = tmp_path / "db.sqlite"
    code, out, _ = run(capsys, "annotate", "import", "--db", str(db), "--data", str(small_data))
    assert code == 0 and "4 items added" in out
    store = open_store(db)
    for name, labels in (("a", [0, 1, 2, 7]), ("b", [0, 2, 2, 7])):
        store.register(name)
        for item, label in enumerate(labels):
            store.record(name, str(item), path_for_label(label))
    code, out, _ = run(capsys, "annotate", "progress", "--db", str(db))
    assert code == 0 and "a: 4 / 4 labelled" in out
    code, out, _ = run(capsys, "annotate", "agreement", "--db", str(db), "--json")
    report = json.loads(out)
    assert code == 0 and report["pairs"][0]["observed"] == pytest.approx(0.75)
    code, out, _ = run(capsys, "annotate", "agreement", "--db", str(db))
    assert "Fleiss" in out and "agreement with gold labels" in out
    target = tmp_path / "adjudicated.json"
    code, out, err = run(capsys, "annotate", "export", "--db", str(db), "--out", str(target))
    assert code == 0 and "wrote 3 items" in out and "tied items left out (1): 1" in err
    assert [row["label"] for row in json.loads(target.read_text())] == [0, 2, 7]


def test_agreement_on_missing_db(tmp_path, capsys):
    code, _, err = run(capsys, "annotate", "agreement", "--db", str(tmp_path / "none.sqlite"))
    assert code == 2 and "no such annotation database" in err
    assert not (tmp_path / "none.sqlite").exists()


def test_serve_options_come_from_the_server_settings(capsys, tmp_path, small_data):
    from mhsafety.annotate.config import AnnotateServerConfig

    code, out, _ = run(capsys, "annotate", "serve", "--help")
    defaults = AnnotateServerConfig()
    assert code == 0
    out = " ".join(out.split())  # help text wraps
    for flag, value in (("--host", defaults.host), ("--port", defaults.port),
                        ("--break-every", defaults.break_every)):
        assert flag in out and f"default: {value}" in out
    code, _, err = run(capsys, "annotate", "serve", "--db", str(tmp_path / "db.sqlite"),
                       "--data", str(small_data), "--break-every", "0")
    assert code == 2 and "break" in err and "Traceback" not in err
