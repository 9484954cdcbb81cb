"""Reading and writing datasets: JSON lists and JSONL, from files or text (stdin).

Items without an ``id`` get their 0-based index in the file as id, which is what the
upstream release's per-item files are named after. Every reader ends in
:func:`~mhsafety.data.examples.examples_from_items`' validation, so files, stdin and HTTP
bodies give the same ids and the same error messages.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..io import jsonl_objects, write_json_rows
from .examples import Example, _examples


def read_text_file(path: Path) -> str:
    """A data file's text, or a DataError: missing, a folder, empty, or not UTF-8."""
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a JSON or JSONL data file")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: the file is empty, expected a JSON list or JSONL items")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 (bad byte at offset {exc.start})") from None
    return text.removeprefix("\ufeff")


def _json_error(path: Path, exc: json.JSONDecodeError, line_offset: int = 0) -> DataError:
    return DataError(
        f"{path}: invalid JSON at line {exc.lineno + line_offset}, column {exc.colno}: {exc.msg}"
    )


def read_json_items(path: str | os.PathLike[str]) -> list[tuple[str, Any]]:
    """Raw items of a JSON-list or JSONL file, each with a location label for errors.

    The format is sniffed from the content: a file whose first non-blank character is ``[``
    is a JSON list; anything else is JSONL (one object per non-blank line).
    """
    p = Path(path)
    return json_items(read_text_file(p), p)


def json_items(text: str, p: Any) -> list[tuple[str, Any]]:
    """Raw items of JSON-list or JSONL ``text``; ``p`` names the source in errors."""
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _json_error(p, exc) from None
        if not isinstance(data, list):
            raise DataError(f"{p}: expected a JSON list of items, got {type(data).__name__}")
        if not data:
            raise DataError(f"{p}: the JSON list is empty, expected at least one item")
        return [(f"item {i}", item) for i, item in enumerate(data)]
    items = []
    for lineno, obj in jsonl_objects(text, p):
        items.append((f"line {lineno} (item {len(items)})", obj))
    if not items:
        raise DataError(f"{p}: the file is empty, expected a JSON list or JSONL items")
    return items


def read_items_text(text: str, source: str = "<stdin>",
                    require_label: bool = False) -> list[Example]:
    """Examples from JSON-list or JSONL text (stdin, an upload): same rules as files."""
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise DataError(f"{source}: no items, expected a JSON list or JSONL items")
    return _examples(json_items(text, source), source, require_label)


def load_examples(path: str | os.PathLike[str], require_label: bool = True) -> list[Example]:
    """Load and validate a dataset (upstream JSON list or JSONL).

    Raises :class:`DataError` naming the file, the item, the field and what was expected.
    Duplicate ids are an error too, since records are joined on them.
    """
    p = Path(path)
    return _examples(read_json_items(p), str(p), require_label)


def write_examples(path: str | os.PathLike[str], examples: Iterable[Example]) -> None:
    """Write atomically: ``.json`` as the upstream list, anything else as JSONL."""
    write_json_rows(path, [ex.to_dict() for ex in examples])
