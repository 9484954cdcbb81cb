"""Reading and writing datasets: JSON lists and JSONL, from files or text (stdin).

Items without an ``id`` get their 0-based index in the file as id, which is what the
upstream release's per-item files are named after. Every reader ends in
:func:`~mhsafety.data.examples.examples_from_items`' validation, so files, stdin and HTTP
bodies give the same ids and the same error messages.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import DataError, missing_extra
from ..io import jsonl_objects, write_json_rows
from ..taxonomy import LABEL_NAMES
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
    """Load and validate a dataset: upstream JSON list, JSONL, a parquet file, or a dataset
    folder (see :func:`read_dataset_folder`).

    Raises :class:`DataError` naming the file, the item, the field and what was expected.
    Duplicate ids are an error too, since records are joined on them.
    """
    p = Path(path)
    if p.is_dir():
        return read_dataset_folder(p, require_label)
    if p.suffix == ".parquet":
        return read_parquet(p, require_label)
    return _examples(read_json_items(p), str(p), require_label)


def write_examples(path: str | os.PathLike[str], examples: Iterable[Example]) -> None:
    """Write atomically: ``.json`` as the upstream list, anything else as JSONL."""
    write_json_rows(path, [ex.to_dict() for ex in examples])


# --------------------------------------------------------------------------- dataset folders

CARD = "README.md"  # the dataset card of a folder
DEFAULT_SPLIT = "test"


def _examples_of_rows(rows: Sequence[Mapping[str, Any]], source: str,
                      require_label: bool) -> list[Example]:
    # Columnar formats store a missing label as null; the item reader wants it absent.
    return _examples(((f"row {i}", {k: v for k, v in row.items() if v is not None or k != "label"})
                      for i, row in enumerate(rows)), source, require_label)


def read_parquet(path: Path, require_label: bool = True) -> list[Example]:
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise missing_extra("pyarrow", "hf") from None
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # noqa: BLE001 - pyarrow's errors vary; one sentence here
        raise DataError(f"{path}: not a readable parquet file ({exc})") from None
    return _examples_of_rows(rows, str(path), require_label)


def _pick(available: Sequence[str], path: Path) -> str:
    if DEFAULT_SPLIT in available:
        return DEFAULT_SPLIT
    if len(available) == 1:
        return available[0]
    raise DataError(f"{path}: holds the splits {', '.join(available)} and none is "
                    f"'{DEFAULT_SPLIT}'; name one as {path}/SPLIT")


def read_dataset_folder(path: str | os.PathLike[str],
                        require_label: bool = True) -> list[Example]:
    """The examples of one split of a dataset folder (``mhsafety data export`` writes them):
    ``datasets``' save_to_disk form, or ``data/<split>*.parquet|jsonl`` beside a card; the
    ``test`` split, or the only one."""
    p = Path(path)
    if (p / "dataset_dict.json").exists() or (p / "state.json").exists():
        try:
            import datasets
        except ModuleNotFoundError:
            raise missing_extra("datasets", "hf") from None
        loaded = datasets.load_from_disk(str(p))
        if isinstance(loaded, datasets.DatasetDict):
            split = _pick(list(loaded.keys()), p)
            loaded, where = loaded[split], f"{p} split {split}"
        else:
            where = str(p)
        names = loaded.features["label"].names if "label" in loaded.features and hasattr(
            loaded.features["label"], "names") else None
        if names is not None and list(names) != list(LABEL_NAMES):
            raise DataError(f"{where}: its label names differ from the taxonomy's")
        return _examples_of_rows(loaded.to_list(), where, require_label)
    data = p / "data"
    files = sorted(data.glob("*.parquet")) + sorted(data.glob("*.jsonl")) if data.is_dir() \
        else []
    if not files:
        raise DataError(f"{p}: a folder, but no dataset in it (expected dataset_dict.json, "
                        "or data/*.parquet or data/*.jsonl as `mhsafety data export` writes)")
    by_split: dict[str, list[Path]] = {}
    for f in files:
        by_split.setdefault(f.name.split("-")[0].split(".")[0], []).append(f)
    split = _pick(sorted(by_split), p)
    out: list[Example] = []
    for f in by_split[split]:
        if f.suffix == ".parquet":
            out.extend(read_parquet(f, require_label))
        else:
            out.extend(_examples(read_json_items(f), str(f), require_label))
    return out
