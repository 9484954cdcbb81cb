"""The judge's resume log: one append-only JSONL file per round, and the folder lock.

Every line carries ``key`` (a hash of what decides an answer: model, base URL, sampling,
template, shots, seed) and ``prompt_hash`` (a hash of the exact messages). A rerun reuses
only lines whose key and prompt hash match what it would send now; other lines stay in the
file, untouched, counted as ``stale``. Each line is written with one ``write`` call on an
``O_APPEND`` descriptor, so a killed process leaves at most one torn last line, which the
next run cuts off (and counts) before appending.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError

LOG_VERSION = 1


@dataclass
class RoundLog:
    """What one round's log holds for the current settings.

    Read with the expected prompt hashes, ``answers`` / ``failures`` hold the matching
    entries at once. Read without them (so that prompts can be built while requests are
    already in flight), key-matching entries wait in ``unsettled`` until :meth:`settle`
    says which prompt each item has now; :meth:`finish` counts the rest as stale.
    """

    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    stale: int = 0
    corrupt: int = 0
    torn: int = 0
    # (id, prompt_hash) -> [first answer or None, last failure or None, lines]
    unsettled: dict[tuple[str, str], list[Any]] = field(default_factory=dict)

    @property
    def answered_ids(self) -> set[str]:
        """Items with an answer for these settings (settled or not)."""
        return set(self.answers) | {i for (i, _h), slot in self.unsettled.items() if slot[0]}

    def settle(self, item_id: str, prompt_hash: str) -> bool:
        """Take the logged outcome of ``item_id`` asked with ``prompt_hash``; True when it
        holds an answer (nothing to ask)."""
        slot = self.unsettled.pop((item_id, prompt_hash), None)
        if slot is None:
            return False
        if slot[0] is not None:
            self.answers[item_id] = slot[0]
            return True
        self.failures[item_id] = slot[1]
        return False

    def finish(self) -> None:
        """Every item settled: what is left came from other prompts (stale)."""
        self.stale += sum(slot[2] for slot in self.unsettled.values())
        self.unsettled.clear()


def repair_torn_tail(path: Path) -> int:
    """Cut a torn (newline-less) last line off ``path``; returns the bytes removed."""
    if not path.exists():
        return 0
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        # Walk back to the last newline; everything after it is a line the writer never
        # finished (the process died inside the write).
        pos, block = size, 1 << 16
        while pos > 0:
            start = max(0, pos - block)
            handle.seek(start)
            chunk = handle.read(pos - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            pos = start
        else:
            keep = 0
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
        return size - keep


def read_round_log(path: Path, key: str, expected: dict[str, str] | None = None) -> RoundLog:
    """Entries of one round's log that match ``key`` and, when given, the expected prompt
    hash per item (else they wait in ``unsettled``, see :class:`RoundLog`)."""
    out = RoundLog()
    out.torn = repair_torn_tail(path)
    if not path.exists():
        return out
    with open(path, "rb") as handle:
        for raw in handle:
            try:
                entry = json.loads(raw)
                item_id = entry["id"]
            except (ValueError, KeyError, TypeError):
                out.corrupt += 1  # never fatal: the item is simply asked again
                continue
            if entry.get("key") != key or (expected is not None and
                                           expected.get(item_id) != entry.get("prompt_hash")):
                out.stale += 1
                continue
            if expected is None:
                slot = out.unsettled.setdefault((item_id, str(entry.get("prompt_hash"))),
                                                [None, None, 0])
                slot[2] += 1
                if "answer" in entry:
                    if slot[0] is None:
                        slot[0] = entry  # the first answer counts
                elif slot[0] is None:
                    slot[1] = entry
                continue
            if "answer" in entry:
                out.answers.setdefault(item_id, entry)  # the first answer counts
                out.failures.pop(item_id, None)
            elif item_id not in out.answers:
                out.failures[item_id] = entry
    return out


class Log:
    """Append-only JSONL files, one per round: one ``write`` per line, fsync in batches."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.fds: dict[int, int] = {}
        self.dirty: set[int] = set()

    def path(self, round_no: int) -> Path:
        return self.folder / f"round-{round_no}.jsonl"

    def append(self, round_no: int, entry: dict[str, Any]) -> None:
        fd = self.fds.get(round_no)
        if fd is None:
            fd = self.fds[round_no] = os.open(self.path(round_no),
                                               os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        # One write() on O_APPEND: the line reaches the kernel whole, surviving kill -9.
        os.write(fd, line)
        self.dirty.add(fd)

    def take_dirty(self) -> set[int]:
        dirty, self.dirty = self.dirty, set()
        return dirty

    def sync(self, fds: set[int] | None = None) -> None:
        for fd in self.take_dirty() if fds is None else fds:
            os.fsync(fd)

    def close(self) -> None:
        self.sync()
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


@contextlib.contextmanager
def exclusive(out: Path, command: str = "judge") -> Iterator[None]:
    """Hold an advisory lock on ``out`` so two runs never append to the same logs at once
    (the kernel drops it when the process dies, kill -9 included); ``command`` names the
    run that holds it (``mhsafety judge``, ``mhsafety probe``) in the refusal."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl
        except ImportError:  # no advisory locks on this platform: run unguarded
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"{out}: another `mhsafety {command}` is writing to this folder; "
                             "wait for it to finish or choose another --out") from None
        yield
    finally:
        os.close(fd)
