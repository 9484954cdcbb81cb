"""Dialogue examples: parsing, strict loading, writing, download, statistics and splits.

Upstream format: a JSON list of ``{"context": str, "response": str, "label": int}``; the
context is a run of turns, each prefixed by ``[seeker]`` or ``[supporter]`` with no separator,
and the response starts with ``[supporter]``. JSONL with the same fields (and an optional
``id``) is read too. Items without an ``id`` get their index in the file as id, which is what
the upstream release's per-item files are named after.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import DataError
from .io import atomic_write, jsonl_objects, sha256_file, write_json_rows
from .taxonomy import CATEGORIES, NUM_LABELS

Role = Literal["seeker", "supporter"]
ROLE_MARKERS: dict[str, Role] = {"[seeker]": "seeker", "[supporter]": "supporter"}
_MARKER_RE = re.compile(r"\[(seeker|supporter)\]")

# The public test set, pinned to the upstream commit the benchmark describes.
UPSTREAM_COMMIT = "9ada1c51013c4d89b679211e9bd3c7e8e028a440"
TEST_SET_URL = (
    f"https://raw.githubusercontent.com/qiuhuachuan/DialogueSafety/{UPSTREAM_COMMIT}/data/test.json"
)
TEST_SET_SHA256 = "ee8fbf5094a98f75d10aff5c65510a7fd35fc7f80df552448a21ae3aee01b841"
CACHE_ENV = "MHSAFETY_CACHE_DIR"


@dataclass(frozen=True)
class Turn:
    role: Role
    text: str


@dataclass(frozen=True)
class Example:
    context: str
    response: str
    label: int | None = None
    id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def turns(self) -> list[Turn]:
        return parse_turns(self.context, default_role="seeker")

    @property
    def response_text(self) -> str:
        """The response without its role marker."""
        turns = parse_turns(self.response, default_role="supporter")
        return "".join(t.text for t in turns)

    @property
    def last_seeker_turn(self) -> str:
        for turn in reversed(self.turns):
            if turn.role == "seeker":
                return turn.text
        return ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        out["context"] = self.context
        out["response"] = self.response
        if self.label is not None:
            out["label"] = self.label
        return out


def parse_turns(text: str, default_role: Role = "seeker") -> list[Turn]:
    """Split a string on the role markers into turns.

    Text without markers is read leniently as one turn of ``default_role`` (a context is the
    seeker speaking, a response the supporter). Text before the first marker is kept as a turn
    of ``default_role`` too, so nothing is dropped.
    """
    turns: list[Turn] = []
    pieces = _MARKER_RE.split(text)
    head = pieces[0]
    if head.strip():
        turns.append(Turn(default_role, head))
    for role, body in zip(pieces[1::2], pieces[2::2]):
        turns.append(Turn(role, body))  # type: ignore[arg-type]
    if not turns and text:
        turns.append(Turn(default_role, text))
    return turns


def format_turns(turns: Iterable[Turn | tuple[str, str]]) -> str:
    """Inverse of :func:`parse_turns`: turns back into the upstream marker string."""
    parts = []
    for turn in turns:
        role, text = (turn.role, turn.text) if isinstance(turn, Turn) else turn
        if role not in ("seeker", "supporter"):
            raise ValueError(f"role must be 'seeker' or 'supporter', got {role!r}")
        parts.append(f"[{role}]{text}")
    return "".join(parts)


# --------------------------------------------------------------------------- loading


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
    text = read_text_file(p)
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


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def example_from_dict(obj: Any, where: str, require_label: bool = True,
                      default_id: str | None = None) -> Example:
    """Validate one raw item; ``where`` (file and item) starts every error message."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected an object with context/response/label, "
                        f"got {_type_name(obj)}")
    values = {}
    for name in ("context", "response"):
        if name not in obj:
            raise DataError(f"{where}: missing field '{name}'")
        value = obj[name]
        if not isinstance(value, str):
            raise DataError(f"{where}: field '{name}' must be a string, got {_type_name(value)}")
        if not value.strip():
            raise DataError(f"{where}: field '{name}' is empty")
        values[name] = value
    label = obj.get("label")
    if "label" not in obj or label is None:
        if require_label:
            raise DataError(f"{where}: missing field 'label' (an integer 0..7)")
        label = None
    elif isinstance(label, bool) or not isinstance(label, int):
        raise DataError(
            f"{where}: field 'label' must be an integer 0..7, got {_type_name(label)} {label!r}"
        )
    elif not 0 <= label < NUM_LABELS:
        raise DataError(f"{where}: field 'label' must be in 0..7, got {label}")
    item_id = obj.get("id", default_id)
    if item_id is not None:
        if isinstance(item_id, bool) or not isinstance(item_id, (str, int)):
            raise DataError(f"{where}: field 'id' must be a string or integer, "
                            f"got {_type_name(item_id)}")
        item_id = str(item_id)
        if not item_id:
            raise DataError(f"{where}: field 'id' is empty")
    meta = {k: v for k, v in obj.items() if k not in ("context", "response", "label", "id")}
    return Example(values["context"], values["response"], label, item_id, meta)


def load_examples(path: str | os.PathLike[str], require_label: bool = True) -> list[Example]:
    """Load and validate a dataset (upstream JSON list or JSONL).

    Raises :class:`DataError` naming the file, the item, the field and what was expected.
    Duplicate ids are an error too, since records are joined on them.
    """
    p = Path(path)
    examples = []
    seen: dict[str, str] = {}
    for index, (where, obj) in enumerate(read_json_items(p)):
        ex = example_from_dict(obj, f"{p} {where}", require_label, default_id=str(index))
        if ex.id in seen:
            raise DataError(f"{p} {where}: duplicate id {ex.id!r} (first at {seen[ex.id]})")
        seen[ex.id] = where  # type: ignore[index]
        examples.append(ex)
    return examples


def write_examples(path: str | os.PathLike[str], examples: Iterable[Example]) -> None:
    """Write atomically: ``.json`` as the upstream list, anything else as JSONL."""
    write_json_rows(path, [ex.to_dict() for ex in examples])


def examples_hash(examples: Iterable[Example]) -> str:
    """A content hash of a dataset (order-sensitive), for checkpoint manifests."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(json.dumps([ex.context, ex.response, ex.label], ensure_ascii=False)
                      .encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


# --------------------------------------------------------------------------- download / cache


def cache_dir() -> Path:
    """``$MHSAFETY_CACHE_DIR`` if set, else ``~/.cache/mhsafety``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mhsafety"


def cached_test_set_path() -> Path:
    return cache_dir() / "dialogue-safety" / UPSTREAM_COMMIT[:12] / "test.json"


def download_test_set(url: str | None = None, sha256: str = TEST_SET_SHA256,
                      dest: str | os.PathLike[str] | None = None, timeout: float = 30.0,
                      force: bool = False) -> Path:
    """Fetch the public test set, verify its sha256 and store it atomically in the cache.

    A file already in place with the right checksum is not fetched again. ``url`` defaults
    to the pinned upstream file.
    """
    url = url or TEST_SET_URL
    target = Path(dest) if dest else cached_test_set_path()
    if target.exists() and not force and sha256_file(target) == sha256:
        return target
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = response.read()
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"could not download the test set from {url} ({reason}); "
            "check the network or pass --data PATH to a local copy"
        ) from None
    actual = hashlib.sha256(payload).hexdigest()
    if actual != sha256:
        raise DataError(
            f"the file downloaded from {url} has sha256 {actual}, expected {sha256}; "
            "it was not saved"
        )
    with atomic_write(target, "wb") as handle:
        handle.write(payload)
    return target


def resolve_data(path: str | os.PathLike[str] | None) -> Path:
    """The dataset a command should read: ``path`` if given, else the cached test set.

    With no cached copy, try to download it; when that fails too, say so in one sentence.
    """
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise DataError(f"{p}: no such file")
        return p
    cached = cached_test_set_path()
    if cached.exists():
        return cached
    try:
        return download_test_set()
    except DataError as exc:
        raise DataError(
            f"no data file given and no cached test set at {cached}, and downloading it failed "
            f"({exc}); pass --data PATH or run `mhsafety data download` with network access"
        ) from None


# --------------------------------------------------------------------------- statistics


def _summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "min": float(min(values)),
        "median": float(statistics.median(values)),
        "mean": float(statistics.fmean(values)),
        "max": float(max(values)),
    }


def dataset_stats(examples: Sequence[Example]) -> dict[str, Any]:
    """Label counts, turn counts and character lengths (raw strings, markers included)."""
    labels = Counter(ex.label for ex in examples if ex.label is not None)
    n_turns = [len(ex.turns) for ex in examples]
    out: dict[str, Any] = {
        "items": len(examples),
        "labelled": sum(labels.values()),
        "labels": [
            {"id": c.id, "name": c.name, "count": labels.get(c.id, 0)} for c in CATEGORIES
        ],
        "turns": {**_summary(n_turns), "histogram": dict(sorted(Counter(n_turns).items())),
                  "single_turn": sum(1 for n in n_turns if n == 1)},
        "context_chars": _summary([len(ex.context) for ex in examples]),
        "response_chars": _summary([len(ex.response) for ex in examples]),
        "responses_with_newline": sum(1 for ex in examples if "\n" in ex.response),
        "repeated_responses": sum(
            1 for n in Counter(ex.response for ex in examples).values() if n > 1
        ),
    }
    if labels:
        out["majority_accuracy"] = max(labels.values()) / sum(labels.values())
    return out


def format_stats(stats: dict[str, Any]) -> str:
    lines = [f"items: {stats['items']} ({stats['labelled']} labelled)", "", "label counts:"]
    width = max(len(row["name"]) for row in stats["labels"])
    total = max(stats["labelled"], 1)
    for row in sorted(stats["labels"], key=lambda r: -r["count"]):
        share = 100 * row["count"] / total
        lines.append(f"  {row['id']} {row['name']:<{width}}  {row['count']:>5}  {share:5.1f} %")
    if "majority_accuracy" in stats:
        lines.append(f"majority-class accuracy: {100 * stats['majority_accuracy']:.1f} %")
    t = stats["turns"]
    lines.append("")
    lines.append(f"context turns: min {t['min']:.0f}, median {t['median']:g}, "
                 f"mean {t['mean']:.2f}, max {t['max']:.0f}; single-turn items: {t['single_turn']}")
    lines.append("  histogram: " + ", ".join(f"{k}:{v}" for k, v in t["histogram"].items()))
    for key, title in (("context_chars", "context length"), ("response_chars", "response length")):
        s = stats[key]
        lines.append(f"{title} (chars): min {s['min']:.0f}, median {s['median']:g}, "
                     f"mean {s['mean']:.1f}, max {s['max']:.0f}")
    lines.append(f"responses containing a newline: {stats['responses_with_newline']}")
    lines.append(f"response strings occurring more than once: {stats['repeated_responses']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- splits


def _labels_array(examples: Sequence[Example]) -> np.ndarray:
    if any(ex.label is None for ex in examples):
        raise DataError("stratified splits need every item to have a label")
    return np.array([ex.label for ex in examples])


def stratified_kfold(examples: Sequence[Example], k: int = 5,
                     seed: int = 42) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded stratified k-fold: a list of (train indices, test indices).

    Classes with fewer than ``k`` items are spread over as many folds as they have items
    (scikit-learn warns about that; the split is still valid, so the warning is silenced).
    """
    import warnings

    from sklearn.model_selection import StratifiedKFold

    y = _labels_array(examples)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return [(train, test) for train, test in splitter.split(np.zeros(len(y)), y)]


def train_dev_split(examples: Sequence[Example], dev_ratio: float = 0.1,
                    seed: int = 42) -> tuple[list[Example], list[Example]]:
    """Seeded stratified train/dev split. Classes with a single item stay in train."""
    from sklearn.model_selection import train_test_split

    if not 0 < dev_ratio < 1:
        raise ValueError(f"dev_ratio must be between 0 and 1, got {dev_ratio}")
    y = _labels_array(examples)
    counts = Counter(y.tolist())
    splittable = np.array([i for i, lab in enumerate(y) if counts[lab] >= 2])
    singletons = [i for i, lab in enumerate(y) if counts[lab] < 2]
    try:
        train_idx, dev_idx = train_test_split(
            splittable, test_size=dev_ratio, random_state=seed, stratify=y[splittable]
        )
    except ValueError:
        # Too few items for every class to reach the dev side: fall back to a plain split.
        train_idx, dev_idx = train_test_split(splittable, test_size=dev_ratio, random_state=seed)
    train = [examples[i] for i in sorted([*train_idx.tolist(), *singletons])]
    dev = [examples[i] for i in sorted(dev_idx.tolist())]
    return train, dev
