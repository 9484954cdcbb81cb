"""SQLite storage for annotation: items, annotators, one row per (item, annotator), an event log.

Every write is one ``BEGIN IMMEDIATE`` transaction committed before the caller hears back, on a
database in WAL mode with ``synchronous=FULL``: whatever the web app acknowledged survives a
killed server. Each operation opens its own short-lived connection, so concurrent request
threads (or several processes) never share a connection; SQLite serialises the writers and
the busy timeout makes a second writer wait instead of failing.

The file carries ``PRAGMA application_id`` = :data:`APPLICATION_ID` and a schema version in
``PRAGMA user_version``, so a database written by another tool is refused instead of being
altered.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..data import Example
from ..errors import DataError, UsageError
from ..taxonomy import NODES, UNSAFE_LEAVES, label_from_path, path_for_label

APPLICATION_ID = 0x4D485341  # "MHSA"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
MAX_COMMENT = 4000
MAX_NAME = 64

_SCHEMA = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE items (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order items are served in
    item_id    TEXT NOT NULL UNIQUE,
    context    TEXT NOT NULL,
    response   TEXT NOT NULL,
    gold_label INTEGER CHECK (gold_label BETWEEN 0 AND 7),
    meta       TEXT NOT NULL DEFAULT '{}',
    source     TEXT NOT NULL,
    added_at   TEXT NOT NULL
);
CREATE TABLE annotators (
    name        TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL,
    note_ack_at TEXT            -- when the content note was acknowledged
);
CREATE TABLE annotations (
    item_id     TEXT NOT NULL REFERENCES items (item_id),
    annotator   TEXT NOT NULL REFERENCES annotators (name),
    status      TEXT NOT NULL CHECK (status IN ('labelled', 'skipped')),
    path        TEXT,           -- JSON list of the yes/no answers, node 1 first
    leaf        INTEGER,        -- the unsafe leaf chosen at node 4, if any
    label       INTEGER CHECK (label BETWEEN 0 AND 7),
    comment     TEXT NOT NULL DEFAULT '',
    seconds     REAL NOT NULL DEFAULT 0,
    started_at  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    updated_seq INTEGER NOT NULL,  -- global write order, for undo and skip rotation
    revision    INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (item_id, annotator)
);
CREATE INDEX annotations_by_annotator ON annotations (annotator, updated_seq);
CREATE TABLE events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    annotator TEXT,
    item_id   TEXT,
    action    TEXT NOT NULL,
    payload   TEXT NOT NULL DEFAULT '{}'
);
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def validate_annotator(name: Any) -> str:
    """A display name: 1..64 printable characters after trimming."""
    if not isinstance(name, str) or not name.strip():
        raise UsageError("the annotator name is empty; enter a name")
    name = unicodedata.normalize("NFC", name.strip())
    if len(name) > MAX_NAME:
        raise UsageError(f"the annotator name is longer than {MAX_NAME} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise UsageError("the annotator name contains control characters")
    return name


def validate_path(answers: Any, leaf: Any) -> int:
    """The label of a node path, checking the path stops exactly where a node fires."""
    if not isinstance(answers, list) or not all(isinstance(a, bool) for a in answers):
        raise UsageError("'answers' must be a list of true/false answers, node 1 first")
    if not 1 <= len(answers) <= len(NODES):
        raise UsageError(f"'answers' must hold 1 to {len(NODES)} answers, got {len(answers)}")
    if leaf is not None and (isinstance(leaf, bool) or not isinstance(leaf, int)):
        raise UsageError(f"'leaf' must be one of {list(UNSAFE_LEAVES)} or null")
    try:
        label = label_from_path(answers, leaf)
    except ValueError as exc:
        raise UsageError(f"invalid node path {json.dumps(answers)}: {exc}") from None
    if path_for_label(label) != answers:
        raise UsageError(f"invalid node path {json.dumps(answers)}: it goes on after a node that decided "
                         f"the label")
    if leaf is not None and label not in UNSAFE_LEAVES:
        raise UsageError(f"'leaf' {leaf} is only allowed when node 4 is answered unsafe")
    return label


@dataclass(frozen=True)
class Progress:
    annotator: str
    total: int
    labelled: int
    skipped: int

    @property
    def remaining(self) -> int:
        return self.total - self.labelled

    def to_dict(self) -> dict[str, Any]:
        return {"annotator": self.annotator, "total": self.total, "labelled": self.labelled,
                "skipped": self.skipped, "remaining": self.remaining}


@dataclass(frozen=True)
class ImportResult:
    added: int
    unchanged: int
    gold_added: int

    def __str__(self) -> str:
        return (f"{self.added} items added, {self.unchanged} already present"
                + (f", gold labels added to {self.gold_added}" if self.gold_added else ""))


class AnnotationStore:
    """One annotation database file. Cheap to create; holds no open connection."""

    def __init__(self, path: str | os.PathLike[str], create: bool = True) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise DataError(f"{self.path}: is a folder, expected an annotation database file")
        if not self.path.exists():
            if not create:
                raise DataError(f"{self.path}: no such annotation database")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._check_or_init()

    # ------------------------------------------------------------------ connections

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                               isolation_level=None, check_same_thread=True)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        # FULL: a committed transaction is on disk before we acknowledge it.
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._open()
        try:
            conn.execute("BEGIN")  # one consistent snapshot for multi-query reads
            yield conn
            conn.execute("COMMIT")
        finally:
            conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._open()
        try:
            # IMMEDIATE takes the write lock up front, so read-then-write never deadlocks.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _check_or_init(self) -> None:
        try:
            conn = self._open()
        except sqlite3.DatabaseError:
            raise DataError(f"{self.path}: not an SQLite database; give a new file name "
                            "for the annotation database") from None
        except sqlite3.Error as exc:
            raise DataError(f"{self.path}: cannot open as SQLite ({exc})") from None
        try:
            try:
                app_id = conn.execute("PRAGMA application_id").fetchone()[0]
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                tables = [r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%'")]
            except sqlite3.DatabaseError:
                raise DataError(f"{self.path}: not an SQLite database; give a new file name "
                                "for the annotation database") from None
            if app_id == APPLICATION_ID:
                if version > SCHEMA_VERSION:
                    raise DataError(f"{self.path}: annotation database schema {version} is newer "
                                    f"than this mhsafety understands ({SCHEMA_VERSION}); "
                                    "upgrade mhsafety")
                return
            if app_id != 0 or tables:
                shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
                raise DataError(f"{self.path}: not an mhsafety annotation database (an SQLite "
                                f"file of another tool, tables: {shown or 'none'}); it was left "
                                "untouched: give a new file name")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO meta VALUES ('created_at', ?), ('tool', 'mhsafety')",
                         (_now(),))
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        finally:
            conn.close()

    # ------------------------------------------------------------------ items

    def add_examples(self, examples: Iterable[Example], source: str) -> ImportResult:
        """Add items (all or nothing). An id already present must have the same text.

        Gold labels are stored but never shown to annotators; an item present without a gold
        label gets the one given here.
        """
        added = unchanged = gold_added = 0
        now = _now()
        with self._write() as conn:
            for ex in examples:
                if ex.id is None:
                    raise DataError(f"{source}: an item has no id")
                row = conn.execute("SELECT context, response, gold_label, source FROM items "
                                   "WHERE item_id = ?", (ex.id,)).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO items (item_id, context, response, gold_label, meta, source,"
                        " added_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (ex.id, ex.context, ex.response, ex.label,
                         json.dumps(ex.meta, ensure_ascii=False), source, now))
                    added += 1
                    continue
                if (row["context"], row["response"]) != (ex.context, ex.response):
                    raise DataError(
                        f"{source}: item id {ex.id!r} is already in {self.path} (from "
                        f"{row['source']}) with a different context or response; give the "
                        "items distinct ids (e.g. with an id prefix); nothing was imported")
                if ex.label is not None and row["gold_label"] is None:
                    conn.execute("UPDATE items SET gold_label = ? WHERE item_id = ?",
                                 (ex.label, ex.id))
                    gold_added += 1
                elif (ex.label is not None and row["gold_label"] != ex.label):
                    raise DataError(
                        f"{source}: item id {ex.id!r} has gold label {ex.label} but "
                        f"{self.path} holds {row['gold_label']} for it; nothing was imported")
                unchanged += 1
            conn.execute("INSERT INTO events (at, action, payload) VALUES (?, 'import', ?)",
                         (now, json.dumps({"source": source, "added": added})))
        return ImportResult(added, unchanged, gold_added)

    def examples(self) -> list[Example]:
        """All items in serving order, with their gold label (if any) as ``label``."""
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM items ORDER BY seq").fetchall()
        return [Example(r["context"], r["response"], r["gold_label"], r["item_id"],
                        json.loads(r["meta"])) for r in rows]

    def item_count(self) -> int:
        with self._read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def get_item(self, item_id: str) -> Example:
        with self._read() as conn:
            row = conn.execute("SELECT * FROM items WHERE item_id = ?", (item_id,)).fetchone()
        if row is None:
            raise DataError(f"no item with id {item_id!r} in {self.path}")
        return Example(row["context"], row["response"], row["gold_label"], row["item_id"])

    # ------------------------------------------------------------------ annotators

    def register(self, annotator: str) -> dict[str, Any]:
        """Create the annotator if new; returns whether the content note was acknowledged."""
        name = validate_annotator(annotator)
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO annotators (name, created_at) VALUES (?, ?)",
                         (name, _now()))
            row = conn.execute("SELECT note_ack_at FROM annotators WHERE name = ?",
                               (name,)).fetchone()
        return {"annotator": name, "note_acknowledged": row["note_ack_at"] is not None}

    def acknowledge_note(self, annotator: str) -> None:
        name = validate_annotator(annotator)
        with self._write() as conn:
            self._require_annotator(conn, name)
            conn.execute("UPDATE annotators SET note_ack_at = COALESCE(note_ack_at, ?) "
                         "WHERE name = ?", (_now(), name))

    def annotators(self) -> list[str]:
        with self._read() as conn:
            return [r[0] for r in conn.execute("SELECT name FROM annotators ORDER BY created_at")]

    @staticmethod
    def _require_annotator(conn: sqlite3.Connection, name: str) -> None:
        if conn.execute("SELECT 1 FROM annotators WHERE name = ?", (name,)).fetchone() is None:
            raise UsageError(f"unknown annotator {name!r}; sign in first")

    # ------------------------------------------------------------------ annotating

    def next_item(self, annotator: str) -> tuple[Example, bool] | None:
        """The annotator's next item and whether they skipped it before; None when done.

        Unseen items come first, in import order; then skipped ones, the longest-skipped
        first, so skipping rotates through them.
        """
        name = validate_annotator(annotator)
        with self._read() as conn:
            row = conn.execute(
                "SELECT i.* FROM items i LEFT JOIN annotations a "
                "ON a.item_id = i.item_id AND a.annotator = ? "
                "WHERE a.item_id IS NULL ORDER BY i.seq LIMIT 1", (name,)).fetchone()
            skipped = False
            if row is None:
                row = conn.execute(
                    "SELECT i.* FROM items i JOIN annotations a ON a.item_id = i.item_id "
                    "WHERE a.annotator = ? AND a.status = 'skipped' "
                    "ORDER BY a.updated_seq LIMIT 1", (name,)).fetchone()
                skipped = True
        if row is None:
            return None
        return Example(row["context"], row["response"], None, row["item_id"]), skipped

    def _upsert(self, conn: sqlite3.Connection, name: str, item_id: str, status: str,
                answers: list[bool] | None, leaf: int | None, label: int | None, comment: str,
                seconds: float) -> dict[str, Any]:
        self._require_annotator(conn, name)
        if conn.execute("SELECT 1 FROM items WHERE item_id = ?", (item_id,)).fetchone() is None:
            raise DataError(f"no item with id {item_id!r} in {self.path}")
        now = _now()
        started = datetime.now(timezone.utc).timestamp() - seconds
        started_at = datetime.fromtimestamp(started, timezone.utc).isoformat(
            timespec="milliseconds")
        seq = conn.execute("SELECT COALESCE(MAX(updated_seq), 0) + 1 FROM annotations"
                           ).fetchone()[0]
        path_json = None if answers is None else json.dumps(answers)
        conn.execute(
            "INSERT INTO annotations (item_id, annotator, status, path, leaf, label, comment, "
            "seconds, started_at, created_at, updated_at, updated_seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (item_id, annotator) DO UPDATE SET status = excluded.status, "
            "path = excluded.path, leaf = excluded.leaf, label = excluded.label, "
            "comment = excluded.comment, seconds = annotations.seconds + excluded.seconds, "
            "started_at = excluded.started_at, updated_at = excluded.updated_at, "
            "updated_seq = excluded.updated_seq, revision = annotations.revision + 1",
            (item_id, name, status, path_json, leaf, label, comment, seconds, started_at, now,
             now, seq))
        record = {"item_id": item_id, "annotator": name, "status": status, "answers": answers,
                  "leaf": leaf, "label": label, "comment": comment, "seconds": seconds}
        conn.execute("INSERT INTO events (at, annotator, item_id, action, payload) "
                     "VALUES (?, ?, ?, ?, ?)",
                     (now, name, item_id, "label" if status == "labelled" else "skip",
                      json.dumps(record, ensure_ascii=False)))
        return record

    @staticmethod
    def _check_common(comment: Any, seconds: Any) -> tuple[str, float]:
        if comment is None:
            comment = ""
        if not isinstance(comment, str):
            raise UsageError("'comment' must be a string")
        if len(comment) > MAX_COMMENT:
            raise UsageError(f"'comment' is longer than {MAX_COMMENT} characters")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise UsageError("'seconds' must be a non-negative number")
        # A tab left open overnight is not time spent annotating: cap one visit at an hour.
        return comment.strip(), float(min(seconds, 3600.0))

    def record(self, annotator: str, item_id: str, answers: Any, leaf: Any = None,
               comment: Any = "", seconds: Any = 0.0) -> dict[str, Any]:
        """Store one annotation (replacing an earlier one by the same annotator)."""
        name = validate_annotator(annotator)
        label = validate_path(answers, leaf)
        comment, seconds = self._check_common(comment, seconds)
        with self._write() as conn:
            return self._upsert(conn, name, str(item_id), "labelled", answers, leaf, label,
                                comment, seconds)

    def record_labels(self, annotator: str, labels: Iterable[tuple[str, int]],
                      comment: str = "") -> int:
        """Store labels made elsewhere (another tool, an earlier round) as one annotator's
        answers, in one transaction; each label becomes the node path that leads to it."""
        from ..taxonomy import UNSAFE_LEAVES, path_for_label

        name = validate_annotator(annotator)
        self.register(name)
        count = 0
        with self._write() as conn:
            for item_id, label in labels:
                answers = path_for_label(label)
                leaf = label if label in UNSAFE_LEAVES else None
                self._upsert(conn, name, str(item_id), "labelled", answers, leaf,
                             validate_path(answers, leaf), comment, 0.0)
                count += 1
        return count

    def skip(self, annotator: str, item_id: str, comment: Any = "",
             seconds: Any = 0.0) -> dict[str, Any]:
        """Postpone an item: it comes back after every unseen item."""
        name = validate_annotator(annotator)
        comment, seconds = self._check_common(comment, seconds)
        with self._write() as conn:
            row = conn.execute("SELECT status FROM annotations WHERE item_id = ? AND "
                               "annotator = ?", (str(item_id), name)).fetchone()
            if row is not None and row["status"] == "labelled":
                raise UsageError(f"item {item_id!r} is already labelled by {name}; undo first")
            return self._upsert(conn, name, str(item_id), "skipped", None, None, None, comment,
                                seconds)

    def undo(self, annotator: str) -> dict[str, Any] | None:
        """Reopen the annotator's most recent annotation or skip; None if there is none.

        The row is removed so the item is served again; the event log keeps what was undone.
        """
        name = validate_annotator(annotator)
        with self._write() as conn:
            row = conn.execute("SELECT * FROM annotations WHERE annotator = ? "
                               "ORDER BY updated_seq DESC LIMIT 1", (name,)).fetchone()
            if row is None:
                return None
            undone = _annotation_dict(row)
            conn.execute("DELETE FROM annotations WHERE item_id = ? AND annotator = ?",
                         (row["item_id"], name))
            conn.execute("INSERT INTO events (at, annotator, item_id, action, payload) "
                         "VALUES (?, ?, ?, 'undo', ?)",
                         (_now(), name, row["item_id"], json.dumps(undone, ensure_ascii=False)))
        return undone

    def progress(self, annotator: str | None = None) -> list[Progress]:
        """Per-annotator counts (all annotators, or just one)."""
        with self._read() as conn:
            total = int(conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])
            query = ("SELECT n.name, SUM(a.status = 'labelled'), SUM(a.status = 'skipped') "
                     "FROM annotators n LEFT JOIN annotations a ON a.annotator = n.name ")
            args: tuple[Any, ...] = ()
            if annotator is not None:
                query += "WHERE n.name = ? "
                args = (validate_annotator(annotator),)
            rows = conn.execute(query + "GROUP BY n.name ORDER BY n.created_at", args).fetchall()
        return [Progress(r[0], total, int(r[1] or 0), int(r[2] or 0)) for r in rows]

    def annotations(self, include_skipped: bool = False) -> list[dict[str, Any]]:
        """Every annotation row, in write order."""
        where = "" if include_skipped else "WHERE status = 'labelled' "
        with self._read() as conn:
            rows = conn.execute(f"SELECT * FROM annotations {where}ORDER BY updated_seq"
                                ).fetchall()
        return [_annotation_dict(r) for r in rows]

    def events(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM events ORDER BY id").fetchall()
        return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]


def _annotation_dict(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    out["answers"] = None if out.pop("path") is None else json.loads(row["path"])
    return out


def open_store(path: str | os.PathLike[str], create: bool = True) -> AnnotationStore:
    """Open (or, with ``create``, start) an annotation database, refusing foreign files."""
    return AnnotationStore(path, create=create)


def import_annotations(store: AnnotationStore, path: str | os.PathLike[str], annotator: str,
                       id_prefix: str = "") -> tuple[ImportResult, int]:
    """Record a labelled file's labels as ``annotator``'s answers (labels made in another tool
    or an earlier round). Items not yet in the store are added, without a gold label."""
    from dataclasses import replace

    from ..data import load_examples

    examples = load_examples(path, require_label=True)
    if id_prefix:
        examples = [replace(ex, id=f"{id_prefix}{ex.id}") for ex in examples]
    added = store.add_examples([replace(ex, label=None) for ex in examples], source=str(path))
    count = store.record_labels(annotator, [(ex.id, ex.label) for ex in examples],  # type: ignore[misc]
                                comment=f"imported from {Path(path).name}")
    return added, count


def import_file(store: AnnotationStore, path: str | os.PathLike[str],
                id_prefix: str = "") -> ImportResult:
    """Validate a dataset file (labels optional) and add its items to the store."""
    from dataclasses import replace

    from ..data import load_examples

    examples = load_examples(path, require_label=False)
    if id_prefix:
        examples = [replace(ex, id=f"{id_prefix}{ex.id}") for ex in examples]
    return store.add_examples(examples, source=str(path))
