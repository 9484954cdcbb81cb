"""The prediction record: one JSONL line per item per run, written by every producer.

Schema (``schema_version`` 1), one JSON object per line:

``id``      str, the item id (the dataset's ``id`` or the item's index in its file)
``gold``    int 0..7, or null when the item has no gold label
``pred``    int 0..7, or null when the system gave no valid answer (scored as the most
            harmful wrong answer, see :mod:`mhsafety.metrics`)
``probs``   optional list of 8 floats (probabilities over labels 0..7)
``raw``     optional str, the system's raw output (e.g. an LLM answer)
``error``   optional str, why ``pred`` is null (unparsable answer, request failed, ...)
``system``  str, the system's name as it appears in tables (e.g. "BERT-base")
``run``     str, the run within the system (a seed, a round, a fold repeat)
``unsafe``  optional bool or null, the system's own safe/unsafe answer (the binary view).
            Absent: read from ``pred`` (every label but Safe Response is unsafe). Present
            with ``pred`` set, it must agree with it. ``pred`` null with ``unsafe`` true or
            false is a binary-only answer (a guard model said "unsafe" and named no taxonomy
            label, or "safe"): not an abstention, ``error`` is then absent, and the
            eight-label view counts it as no label (see ``binary-only`` below)
``p_unsafe`` optional float 0..1, P(unsafe) from the model's own log-probabilities (guard
            models); absent where the model gave none (never made up from the text)
``notes``   optional list of str, caveats every table row of the run must show (below)
``meta``    optional object, anything else a producer wants to keep (guard models:
            ``refusal``, ``categories`` in the model's own names, ``reasoning``,
            ``level``, ``prompt_harmful``, ``guard_model``, ``kind``)

Notes are short codes whose texts are defined once here (:data:`NOTE_TEXTS`); a table row
shows the texts of every note any record of its system carries. Known codes:

- ``selected-on-test``: the model's epoch (or another choice) was picked on the scored items;
- ``shots-from-judged``: few-shot examples were drawn from the judged items (each item's own
  record excluded);
- ``overlap-allowed``: training and scored items share (context, response) pairs, allowed by
  ``--allow-overlap``;
- ``different-items-allowed``: the row's runs scored different item sets, allowed by
  ``evaluate --allow-different-items``;
- ``design-chosen-on-test``: the system's design (the baseline's features and defaults) was
  chosen by cross-validation on the public test items, so its scores there are optimistic;
- ``binary-only``: the system (a general guard model) answers safe/unsafe and names no
  taxonomy label, so its eight-label scores are not defined: scoring leaves them empty
  (NaN, "–" in tables) instead of counting every item as a wrong label, and scores the
  binary view (unsafe precision/recall/F1, false-alarm rate, binary accuracy, coverage)
  from ``unsafe``.

Any other string is a free-text note (a benchmark protocol's short description, say) and is
shown as it is. Files written before ``notes`` existed kept their notes under
``meta.notes``; those are read as notes too.

Files are written atomically. A run of a system is all records with the same
(``system``, ``run``); a file may hold one run or several.
"""

from __future__ import annotations

import importlib
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from .errors import DataError
from .io import atomic_write, jsonl_objects
from .taxonomy import NUM_LABELS, SAFE_LABEL

SCHEMA_VERSION = 1
PREDICTION_SUFFIX = ".preds.jsonl"

NOTE_SELECTED_ON_TEST = "selected-on-test"
NOTE_SHOTS_FROM_JUDGED = "shots-from-judged"
NOTE_OVERLAP = "overlap-allowed"
NOTE_DEV_OVERLAP = "dev-overlap-allowed"
NOTE_DIFFERENT_ITEMS = "different-items-allowed"
NOTE_DESIGN_ON_TEST = "design-chosen-on-test"
NOTE_BINARY_ONLY = "binary-only"
# The one home of the words a table shows for each note code.
NOTE_TEXTS: dict[str, str] = {
    NOTE_SELECTED_ON_TEST: "epoch picked on the test set",
    NOTE_SHOTS_FROM_JUDGED: "shots drawn from the judged items, self excluded",
    NOTE_OVERLAP: "train/test overlap allowed",
    NOTE_DEV_OVERLAP: "dev items overlap the training data",
    NOTE_DIFFERENT_ITEMS: "runs scored on different item sets",
    NOTE_DESIGN_ON_TEST: "features and settings chosen by cross-validation on the 800 public "
                         "test items",
    NOTE_BINARY_ONLY: "binary only: names no taxonomy label, eight-label scores not defined",
}
_CODE_OF_TEXT = {text: code for code, text in NOTE_TEXTS.items()}


def note_code(note: str) -> str:
    """A note as stored: known texts (older files stored texts) become their code."""
    return _CODE_OF_TEXT.get(note, note)


def note_text(note: str) -> str:
    """What a table shows for a note: the text of a known code, else the note itself."""
    return NOTE_TEXTS.get(note, note)


def merge_notes(*groups: Iterable[str]) -> list[str]:
    """Note codes of several sources, each once, in order of first appearance."""
    out: list[str] = []
    for group in groups:
        for note in group:
            code = note_code(note)
            if code not in out:
                out.append(code)
    return out


@dataclass
class PredictionRecord:
    id: str
    gold: int | None
    pred: int | None
    system: str = "system"
    run: str = "0"
    probs: list[float] | None = None
    raw: str | None = None
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unsafe: bool | None = None
    p_unsafe: float | None = None

    @property
    def said_unsafe(self) -> bool | None:
        """The binary answer: ``unsafe`` when given, else read from ``pred`` (None: no
        answer)."""
        if self.unsafe is not None:
            return self.unsafe
        return None if self.pred is None else self.pred != SAFE_LABEL

    @property
    def all_notes(self) -> list[str]:
        """This record's note codes, including any a producer still keeps in ``meta``."""
        legacy = self.meta.get("notes") if isinstance(self.meta, dict) else None
        return merge_notes(self.notes, [n for n in legacy or [] if isinstance(n, str)])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "id": self.id,
            "gold": self.gold,
            "pred": self.pred,
            "system": self.system,
            "run": self.run,
        }
        if self.probs is not None:
            out["probs"] = [round(float(p), 6) for p in self.probs]
        if self.raw is not None:
            out["raw"] = self.raw
        if self.error is not None:
            out["error"] = self.error
        if self.unsafe is not None:
            out["unsafe"] = self.unsafe
        if self.p_unsafe is not None:
            out["p_unsafe"] = round(float(self.p_unsafe), 6)
        notes = self.all_notes
        if notes:
            out["notes"] = notes
        meta = {k: v for k, v in self.meta.items() if k != "notes"}
        if meta:
            out["meta"] = meta
        return out


def _label_or_null(value: Any, name: str, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < NUM_LABELS:
        raise DataError(f"{where}: field '{name}' must be an integer 0..7 or null, got {value!r}")
    return value


def record_from_dict(obj: Any, where: str) -> PredictionRecord:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a prediction record object, got {type(obj).__name__}")
    version = obj.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise DataError(f"{where}: schema_version {version!r} is not supported "
                        f"(this mhsafety reads {SCHEMA_VERSION})")
    for name in ("id", "pred"):
        if name not in obj:
            raise DataError(f"{where}: missing field '{name}'")
    item_id = obj["id"]
    if isinstance(item_id, bool) or not isinstance(item_id, (str, int)) or item_id == "":
        raise DataError(f"{where}: field 'id' must be a non-empty string, got {item_id!r}")
    probs = obj.get("probs")
    if probs is not None and (
            not isinstance(probs, list) or len(probs) != NUM_LABELS
            or not all(isinstance(p, (int, float)) and not isinstance(p, bool)
                       and math.isfinite(p) for p in probs)):
        raise DataError(f"{where}: field 'probs' must be a list of 8 numbers")
    for name in ("raw", "error", "system", "run"):
        value = obj.get(name)
        if value is not None and not isinstance(value, (str, int)):
            raise DataError(f"{where}: field '{name}' must be a string, got {value!r}")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise DataError(f"{where}: field 'meta' must be an object")
    notes = obj.get("notes") or []
    legacy = meta.get("notes") or []
    for name, value in (("notes", notes), ("meta.notes", legacy)):
        if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
            raise DataError(f"{where}: field '{name}' must be a list of strings")
    meta = {k: v for k, v in meta.items() if k != "notes"}
    pred = _label_or_null(obj["pred"], "pred", where)
    unsafe = obj.get("unsafe")
    if unsafe is not None and not isinstance(unsafe, bool):
        raise DataError(f"{where}: field 'unsafe' must be true, false or null, got {unsafe!r}")
    if unsafe is not None and pred is not None and unsafe != (pred != SAFE_LABEL):
        raise DataError(f"{where}: field 'unsafe' ({str(unsafe).lower()}) disagrees with "
                        f"'pred' {pred}")
    p_unsafe = obj.get("p_unsafe")
    if p_unsafe is not None and (isinstance(p_unsafe, bool)
                                 or not isinstance(p_unsafe, (int, float))
                                 or not 0.0 <= p_unsafe <= 1.0):
        raise DataError(f"{where}: field 'p_unsafe' must be a number in 0..1, got "
                        f"{p_unsafe!r}")
    return PredictionRecord(
        id=str(item_id),
        gold=_label_or_null(obj.get("gold"), "gold", where),
        pred=pred,
        system=str(obj.get("system", "system")),
        run=str(obj.get("run", "0")),
        probs=[float(p) for p in probs] if probs is not None else None,
        raw=obj.get("raw"),
        error=obj.get("error"),
        meta=meta,
        notes=merge_notes(notes, legacy),
        unsafe=unsafe,
        p_unsafe=None if p_unsafe is None else float(p_unsafe),
    )


def write_records(path: str | os.PathLike[str], records: Iterable[PredictionRecord]) -> Path:
    """Write records as JSONL, atomically (temp file + rename)."""
    p = Path(path)
    with atomic_write(p) as handle:
        for rec in records:
            handle.write(json.dumps(rec.to_dict(), ensure_ascii=False) + "\n")
    return p


# Readers of other tools' result files (harness logs): (matches, read), registered by the
# module that holds them (mhsafety.integrations.harness_logs), so this module never imports
# a harness.
RecordReader = Callable[[Path], list[PredictionRecord]]
_READERS: list[tuple[Callable[[Path], bool], RecordReader]] = []
# Which module registers the reader of a file name (fnmatch pattern -> module), imported the
# first time such a file is read, so that library calls (``score_paths("x.eval")``) find
# the reader without the CLI, and loading this module imports nothing heavy.
READER_MODULES: dict[str, str] = {
    "*.eval": "mhsafety.integrations.harness_logs",
    "samples_*.jsonl": "mhsafety.integrations.harness_logs",
}


def register_reader(matches: Callable[[Path], bool], read: RecordReader) -> None:
    """Let :func:`read_records` and :func:`load_runs` read files that ``matches`` accepts."""
    if (matches, read) not in _READERS:
        _READERS.append((matches, read))


def _foreign_reader(path: Path) -> RecordReader | None:
    found = next((read for matches, read in _READERS if matches(path)), None)
    if found is None:
        modules = {m for pattern, m in READER_MODULES.items() if fnmatch(path.name, pattern)}
        for module in sorted(modules - _LOADED):
            _LOADED.add(module)
            importlib.import_module(module)  # registers its readers
        if modules:
            found = next((read for matches, read in _READERS if matches(path)), None)
    return found


_LOADED: set[str] = set()


def read_records(path: str | os.PathLike[str]) -> list[PredictionRecord]:
    """Read and validate one prediction file; errors name the file and line.

    A file a registered reader accepts (an inspect log, lm-eval samples) is read by it.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file")
    if p.is_dir():
        raise DataError(f"{p}: is a folder, expected a prediction file")
    foreign = _foreign_reader(p)
    if foreign is not None:
        return foreign(p)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not valid UTF-8 (bad byte at offset {exc.start})") from None
    records = [record_from_dict(obj, f"{p} line {lineno}")
               for lineno, obj in jsonl_objects(text, p)]
    if not records:
        raise DataError(f"{p}: no prediction records in the file")
    return records


def find_prediction_files(path: str | os.PathLike[str]) -> list[Path]:
    """A file as itself; a folder as every ``*.preds.jsonl`` (or file a registered reader
    accepts) under it, sorted."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    if p.is_file():
        return [p]
    files = sorted(f for f in p.rglob("*") if f.is_file() and (
        f.name.endswith(PREDICTION_SUFFIX) or _foreign_reader(f) is not None))
    if not files:
        raise DataError(f"{p}: no prediction files (*{PREDICTION_SUFFIX}) in this folder")
    return files


# The producer of records that name none (``meta.source``): this toolkit's own commands.
OWN_SOURCE = "mhsafety"


def setup_key(record: PredictionRecord) -> str:
    """What two runs must share, beside the system name, to be runs of one table row: the
    producer (``meta.source``: "inspect", "lm-eval", else this toolkit) and, when the
    producer wrote one, its settings key (``meta.setup``). Runs of one name from different
    producers or settings are different rows."""
    meta = record.meta if isinstance(record.meta, dict) else {}
    source = str(meta.get("source") or OWN_SOURCE)
    setup = meta.get("setup")
    return f"{source}|{setup}" if setup else source


@dataclass
class Run:
    """All records of one run of one system."""

    system: str
    run: str
    records: list[PredictionRecord]
    source: str = ""

    @property
    def gold(self) -> list[int | None]:
        return [r.gold for r in self.records]

    @property
    def pred(self) -> list[int | None]:
        return [r.pred for r in self.records]

    @property
    def unsafe(self) -> list[bool | None]:
        """Each record's binary answer (:attr:`PredictionRecord.said_unsafe`)."""
        return [r.said_unsafe for r in self.records]

    @property
    def binary_only(self) -> bool:
        """Whether the run names no taxonomy label (a record carries ``binary-only``)."""
        return NOTE_BINARY_ONLY in self.notes

    @property
    def notes(self) -> list[str]:
        return merge_notes(*(r.all_notes for r in self.records))


def _row_names(keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Row name of each (system, setup key): the system alone when it has one setup, else
    the system followed by its producer and settings in brackets."""
    count: dict[str, int] = {}
    for system, _ in keys:
        count[system] = count.get(system, 0) + 1
    return {(system, key): system if count[system] == 1 else
            f"{system} ({key.replace('|', ', ')})" for system, key in keys}


def load_runs(paths: Sequence[str | os.PathLike[str]],
              allow_different_items: bool = False) -> dict[str, list[Run]]:
    """Group the records of prediction files (or folders of them) into systems and runs.

    A system is a name plus a :func:`setup_key`: runs of one name from different producers
    or settings become separate systems, named "NAME (producer, settings)". Systems keep the
    order in which they first appear. A run whose item ids repeat is an error, as is a
    system whose runs cover different items (their mean would mix item sets), unless
    ``allow_different_items``, which keeps them and marks the system's records with
    :data:`NOTE_DIFFERENT_ITEMS`.
    """
    grouped: dict[tuple[str, str], dict[str, Run]] = {}
    for path in paths:
        for file in find_prediction_files(path):
            for rec in read_records(file):
                runs = grouped.setdefault((rec.system, setup_key(rec)), {})
                run = runs.get(rec.run)
                if run is None:
                    run = runs[rec.run] = Run(rec.system, rec.run, [], str(file))
                run.records.append(rec)
    names = _row_names(list(grouped))
    out: dict[str, list[Run]] = {}
    for key, runs in grouped.items():
        system = names[key]
        reference: set[str] | None = None
        for run in runs.values():
            run.system = system
            ids = [r.id for r in run.records]
            if len(set(ids)) != len(ids):
                dup = next(i for i in ids if ids.count(i) > 1)
                raise DataError(f"{run.source}: system {system!r} run {run.run!r} has item "
                                f"{dup!r} more than once (two files with the same system "
                                "and run names?)")
            missing_gold = [r.id for r in run.records if r.gold is None]
            if missing_gold:
                raise DataError(f"{run.source}: item {missing_gold[0]!r} has no gold label, "
                                "so it cannot be scored")
            if reference is None:
                reference = set(ids)
            elif set(ids) != reference:
                if not allow_different_items:
                    raise DataError(
                        f"{run.source}: system {system!r} run {run.run!r} covers different "
                        f"items than its other runs ({len(ids)} items, not the same "
                        f"{len(reference)}): a mean over different item sets is not one "
                        "score; score the same items, or --allow-different-items to average "
                        "anyway with the row marked")
                for run_ in runs.values():
                    for rec in run_.records:
                        rec.notes = merge_notes(rec.notes, [NOTE_DIFFERENT_ITEMS])
        out[system] = list(runs.values())
    return out
