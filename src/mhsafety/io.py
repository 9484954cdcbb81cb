"""Atomic file and folder writes: a crash never leaves a half-written result behind; and the
one rule for output folders: a command writes only into a folder that is new, empty, or one it
wrote itself (:func:`prepare_output_dir`, :data:`OUTPUT_MARKER`)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

# Every output folder a command writes holds this file, naming the command; it is how a rerun
# knows the folder is its own to replace or resume, and how a report tells its own manifests
# from other JSON lying about.
OUTPUT_MARKER = ".mhsafety-output.json"
OUTPUT_MARKER_FORMAT = "mhsafety-output"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _ordinary_mode(path: str | os.PathLike[str], base: int) -> None:
    # mkstemp/mkdtemp create private (0600/0700) entries; results should get the same
    # permissions as any other file the user creates.
    os.chmod(path, base & ~_umask())


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w",
                 encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path``, fsync it, then rename it over ``path``.

    If the block raises, the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        _ordinary_mode(tmp, 0o666)
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    with atomic_write(path) as handle:
        json.dump(obj, handle, ensure_ascii=False, indent=2)
        handle.write("\n")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_write(path) as handle:
        handle.write(text)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], command: str | None = None) -> Iterator[Path]:
    """Build a folder under a temporary name and swap it in only when the block succeeds.

    An existing folder at ``path`` is replaced (check it first with
    :func:`prepare_output_dir`); a failed block leaves it as it was. With ``command``, the
    new folder carries the :data:`OUTPUT_MARKER` of that command.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    _ordinary_mode(tmp, 0o777)
    try:
        yield tmp
        if command is not None:
            mark_output_dir(tmp, command, entries=os.listdir(tmp))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json_rows(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> None:
    """Write dataset rows atomically: ``.json`` as one JSON list, anything else as JSONL."""
    target = Path(path)
    with atomic_write(target) as handle:
        if target.suffix == ".json":
            json.dump(rows, handle, ensure_ascii=False, indent=1)
            handle.write("\n")
        else:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def jsonl_objects(text: str, source: object) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) for each non-blank line; a line that is not JSON raises
    DataError naming ``source``, the line and the column."""
    from .errors import DataError

    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}: invalid JSON at line {lineno}, column {exc.colno}: "
                            f"{exc.msg}") from None


def sha256_file(path: str | os.PathLike[str]) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- output folders


def output_writer(path: str | os.PathLike[str]) -> str | None:
    """The command named by the :data:`OUTPUT_MARKER` of folder ``path``, else None."""
    marker = _read_marker(Path(path))
    return marker["command"] if marker is not None else None


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((folder / OUTPUT_MARKER).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(marker, dict) and marker.get("format") == OUTPUT_MARKER_FORMAT \
            and isinstance(marker.get("command"), str):
        return marker
    return None


def mark_output_dir(path: str | os.PathLike[str], command: str,
                    entries: Sequence[str] | None = None) -> Path:
    """Write the :data:`OUTPUT_MARKER` saying ``mhsafety COMMAND`` wrote folder ``path``
    (kept as it is when it already says so). ``entries``: the names the command put in
    the folder, when it wrote the folder whole; a later replacement refuses to delete
    anything else found there."""
    from datetime import datetime, timezone

    from . import __version__

    folder = Path(path)
    marker = folder / OUTPUT_MARKER
    if output_writer(folder) != command or entries is not None:
        content: dict[str, Any] = {
            "format": OUTPUT_MARKER_FORMAT, "command": command,
            "mhsafety_version": __version__,
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "note": f"written by `mhsafety {command}`, which may replace this folder; other "
                    "commands refuse it unless given --force"}
        if entries is not None:
            content["entries"] = sorted(e for e in entries if e != OUTPUT_MARKER)
        write_json(marker, content)
    return marker


def _strangers(folder: Path) -> list[str]:
    """Entries of an output folder that its command did not put there (empty when the
    marker does not list what it wrote: folders written file by file, e.g. resumable runs)."""
    marker = _read_marker(folder) or {}
    listed = marker.get("entries")
    if not isinstance(listed, list):
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.name != OUTPUT_MARKER and p.name not in listed)


def _nearest_existing(path: Path) -> Path:
    current = path
    while not os.path.lexists(current) and current != current.parent:
        current = current.parent
    return current


def _probe_writable(folder: Path, target: Path, flag: str) -> None:
    """Create and remove a file in ``folder``: the only test that also holds for root (for
    whom permission bits mean nothing, while read-only mounts still refuse)."""
    from .errors import UsageError

    if not folder.is_dir():
        raise UsageError(f"{target}: {folder} is a file, not a folder; choose another {flag}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".mhsafety-probe-", dir=folder)
    except OSError as exc:
        raise UsageError(f"{target}: cannot write in {folder} ({exc.strerror or exc}); "
                         f"choose another {flag}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def prepare_output_dir(path: str | os.PathLike[str], *, command: str, force: bool = False,
                       create: bool = False, fresh: bool = False, flag: str = "--out",
                       force_flag: str | None = "--force",
                       recognise: Callable[[Path], bool] | None = None) -> Path:
    """Check, before any work starts, that ``mhsafety COMMAND`` may write folder ``path``.

    Allowed: a path that does not exist, an empty folder, or a folder whose
    :data:`OUTPUT_MARKER` names ``command`` (a rerun replaces or resumes its own output).
    A non-empty folder without it, or written by another command, is refused in one
    sentence (a :class:`~mhsafety.errors.UsageError`) unless ``force``; so is a folder of
    ``command``'s own that is to be replaced while it holds entries its marker does not
    list (someone added them; folders written whole list theirs); so is a file at
    ``path`` and a place that cannot be written (tested by creating a file there, which
    holds for root too). ``recognise(folder)`` accepts folders ``command`` wrote before it
    left markers. ``flag`` and ``force_flag`` name the options in the messages
    (``force_flag=None``: the command offers no way to force).

    Nothing is changed unless ``create``, for commands that write into the folder file by
    file: then the folder is made and marked, and emptied first when ``force`` is given or
    the command starts ``fresh`` (does not resume, so old files would mix with new ones).
    Commands that build their folder whole pass ``create=False`` and write it with
    ``atomic_directory(path, command)``, which replaces the old folder only once the new
    one is complete.
    """
    from .errors import UsageError

    target = Path(path)
    if os.path.lexists(target) and not target.is_dir():
        raise UsageError(f"{target}: exists and is not a folder; choose another {flag}")
    if target.is_dir() and any(target.iterdir()):
        writer = output_writer(target)
        if writer is None and recognise is not None and recognise(target):
            writer = command
        if writer != command and not force:
            how = (f"choose another {flag}" + (f", or pass {force_flag} to replace it"
                                               if force_flag else ""))
            whose = (f"was written by `mhsafety {writer}`" if writer is not None
                     else f"holds files `mhsafety {command}` did not write")
            raise UsageError(f"{target}: {whose}; {how} (nothing was changed)")
        strangers = [] if force or (create and not fresh) else _strangers(target)
        if strangers:  # replacing the folder would delete what someone added to it
            shown = ", ".join(strangers[:5]) + (" ..." if len(strangers) > 5 else "")
            how = (f"move them out, choose another {flag}"
                   + (f", or pass {force_flag} to replace it all" if force_flag else ""))
            raise UsageError(f"{target}: also holds {shown}, which `mhsafety {command}` did "
                             f"not write; {how} (nothing was changed)")
    _probe_writable(_nearest_existing(target.parent), target, flag)
    if target.is_dir():
        _probe_writable(target, target, flag)
    if create:
        if (force or fresh) and target.is_dir() and any(target.iterdir()):
            for child in target.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() \
                    else child.unlink()
        target.mkdir(parents=True, exist_ok=True)
        mark_output_dir(target, command)
    return target


def prepare_output_file(path: str | os.PathLike[str], *, flag: str = "--out") -> Path:
    """Check, before any work starts, that file ``path`` can be written: not a folder, and
    its folder (or the nearest one that exists) takes a new file."""
    from .errors import UsageError

    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{target}: is a folder; {flag} names the file to write")
    _probe_writable(_nearest_existing(target.parent), target, flag)
    return target
