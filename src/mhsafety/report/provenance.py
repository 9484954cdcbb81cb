"""What a report records about where its numbers come from: software, data, manifests, runs."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..io import OUTPUT_MARKER, output_writer, sha256_file
from ..records import PREDICTION_SUFFIX, Run, merge_notes, note_text

# Manifests beside prediction records that describe how they were made: only those mhsafety
# wrote, within these limits, so a folder of unrelated JSON never swells the page.
MANIFEST_MAX_BYTES = 1_000_000  # larger files are named, not read
MANIFEST_SHOWN_CHARS = 20_000  # per manifest
MANIFESTS_MAX_CHARS = 200_000  # all manifests of one report together
MANIFEST_NAMES_LISTED = 5  # left-out files named in the line that counts them
_META_VALUES_SHOWN = 3


def software_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("mhsafety", "numpy", "scikit-learn", "scipy", "statsmodels", "matplotlib",
                    "jinja2"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    commit = git_commit()
    if commit:
        versions["mhsafety git commit"] = commit
    return versions


def git_commit() -> str | None:
    """The commit of the mhsafety checkout, when it runs from one (editable install)."""
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=5, check=False)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "."],
                               cwd=here, capture_output=True, text=True, timeout=5,
                               check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    commit = done.stdout.strip()
    return commit + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


@dataclass
class DataFile:
    path: str
    sha256: str
    note: str = ""


def describe_data(path: str | os.PathLike[str]) -> DataFile:
    from ..data import TEST_SET_SHA256, UPSTREAM_COMMIT

    digest = sha256_file(path)
    note = (f"the public test set of the upstream release (commit {UPSTREAM_COMMIT[:7]})"
            if digest == TEST_SET_SHA256 else "not the released public test set")
    return DataFile(str(path), digest, note)


@dataclass
class Manifest:
    """A JSON file found beside the prediction records (benchmark or judge manifest)."""

    path: str
    text: str
    truncated: bool
    # top-level fields that describe the protocol, shown before the full text
    summary: dict[str, str] = field(default_factory=dict)


SUMMARY_KEYS = ("protocol", "data", "train", "config", "model", "base_url", "template",
                "seeds", "seed", "folds", "created", "seconds", "command", "version")


def _summary(obj: Any) -> dict[str, str]:
    if not isinstance(obj, dict):
        return {}
    return {key: _short(obj[key], 400) for key in SUMMARY_KEYS if key in obj}


def _is_ours(obj: Any, folder_marked: bool) -> bool:
    """A manifest mhsafety wrote: its folder carries the output marker, or the object says
    so itself (``kind`` / ``format`` starting with ``mhsafety``: judge runs, checkpoints)."""
    if folder_marked:
        return True
    return isinstance(obj, dict) and any(
        isinstance(obj.get(key), str) and obj[key].startswith("mhsafety")
        for key in ("kind", "format"))


def _record_folders(paths: Sequence[str | os.PathLike[str]], sources: Sequence[str]) -> list[Path]:
    """The folders beside the records: each record file's folder and the folders above it,
    up to the input path that held it (a file given directly: its own folder only)."""
    folders: dict[Path, None] = {}
    roots = [Path(r).resolve() for r in paths]
    for source in sources:
        folder = Path(source).resolve().parent
        root = next((r for r in roots if r.is_dir() and (folder == r or r in folder.parents)),
                    None)
        folders[folder] = None
        while root is not None and folder != root:
            folder = folder.parent
            folders[folder] = None
    return list(folders)


def find_manifests(paths: Sequence[str | os.PathLike[str]],
                   sources: Sequence[str] | None = None) -> tuple[list[Manifest], list[str]]:
    """The manifests mhsafety wrote beside the prediction records ``sources`` (the record
    files read from ``paths``), and lines saying what was left out: JSON files that are not
    mhsafety's, and whatever exceeds the :data:`MANIFESTS_MAX_CHARS` cap.

    Without ``sources`` every ``*.preds.jsonl`` under ``paths`` counts as a record file.
    """
    if sources is None:
        sources = [str(f) for root in paths for f in
                   ([Path(root)] if Path(root).is_file() else Path(root).rglob(f"*{PREDICTION_SUFFIX}"))]
    found: list[Manifest] = []
    foreign: list[Path] = []
    over_cap: list[Path] = []
    shown = 0
    for folder in _record_folders(paths, [s for s in sources if s]):
        marked = output_writer(folder) is not None
        for file in sorted(folder.glob("*.json")):
            if file.name == OUTPUT_MARKER or file.name.endswith(PREDICTION_SUFFIX) \
                    or not file.is_file():
                continue
            size = file.stat().st_size
            if size > MANIFEST_MAX_BYTES:
                if marked:
                    found.append(Manifest(str(file), f"(not shown: {size} bytes)", True))
                else:
                    foreign.append(file)
                continue
            obj = None
            try:
                obj = json.loads(file.read_text(encoding="utf-8"))
                text = json.dumps(obj, ensure_ascii=False, indent=2)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                text = f"(not valid JSON: {exc})"
            if not _is_ours(obj, marked):
                foreign.append(file)
                continue
            part = text[:MANIFEST_SHOWN_CHARS]
            if shown + len(part) > MANIFESTS_MAX_CHARS:
                over_cap.append(file)
                continue
            shown += len(part)
            found.append(Manifest(str(file), part, len(text) > MANIFEST_SHOWN_CHARS,
                                  _summary(obj)))
    left_out = []
    if foreign:
        left_out.append(f"{len(foreign)} JSON file{'s' if len(foreign) != 1 else ''} beside "
                        f"the records not written by mhsafety, not shown: {_names(foreign)}")
    if over_cap:
        left_out.append(f"{len(over_cap)} manifest{'s' if len(over_cap) != 1 else ''} left "
                        f"out, past the cap of {MANIFESTS_MAX_CHARS:,} characters of manifests "
                        f"per report: {_names(over_cap)}")
    return found, left_out


def _names(files: Sequence[Path]) -> str:
    names = ", ".join(str(f) for f in files[:MANIFEST_NAMES_LISTED])
    more = len(files) - MANIFEST_NAMES_LISTED
    return names + (f" and {more} more" if more > 0 else "")


@dataclass
class RunSource:
    system: str
    runs: list[str]
    n_items: int
    files: list[dict[str, str]]  # path and sha256 of each prediction file
    notes: list[str]
    meta: dict[str, list[str]]  # meta key -> up to 3 distinct values seen in the records
    errors: dict[str, int]  # error message -> how many records carry it


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           sort_keys=True)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def describe_runs(systems: Mapping[str, Sequence[Run]]) -> list[RunSource]:
    """What the records themselves say about each system's runs."""
    hashes: dict[str, str] = {}
    out = []
    for system, runs in systems.items():
        meta: dict[str, list[str]] = {}
        errors: dict[str, int] = {}
        notes = merge_notes(*(run.notes for run in runs))
        for run in runs:
            for rec in run.records:
                for key, value in rec.meta.items():
                    if key == "notes":
                        continue  # read as notes (records.py), shown with their texts
                    values = meta.setdefault(key, [])
                    shown = _short(value)
                    if shown not in values and len(values) < _META_VALUES_SHOWN:
                        values.append(shown)
                if rec.error:
                    errors[rec.error] = errors.get(rec.error, 0) + 1
        files = []
        for source in sorted({run.source for run in runs if run.source}):
            if source not in hashes:
                hashes[source] = sha256_file(source)
            files.append({"path": source, "sha256": hashes[source]})
        out.append(RunSource(system, [run.run for run in runs], len(runs[0].records), files,
                             [note_text(n) for n in notes], meta, errors))
    return out


@dataclass
class Provenance:
    generated: str
    command: str | None
    software: dict[str, str]
    inputs: list[str]
    data: DataFile | None
    runs: list[RunSource]
    manifests: list[Manifest]
    settings: dict[str, Any] = field(default_factory=dict)
    # What find_manifests left out (foreign JSON, past the size cap), one line each.
    manifests_left_out: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def collect_provenance(paths: Sequence[str | os.PathLike[str]],
                       systems: Mapping[str, Sequence[Run]],
                       data: str | os.PathLike[str] | None = None, command: str | None = None,
                       settings: Mapping[str, Any] | None = None) -> Provenance:
    sources = sorted({run.source for runs in systems.values() for run in runs if run.source})
    manifests, left_out = find_manifests(paths, sources)
    return Provenance(
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        command=command,
        software=software_versions(),
        inputs=[str(p) for p in paths],
        data=describe_data(data) if data is not None else None,
        runs=describe_runs(systems),
        manifests=manifests,
        settings=dict(settings or {}),
        manifests_left_out=left_out,
    )


def command_line(args: Sequence[str]) -> str:
    """The command line as given (``["mhsafety", "report", ...]``), shell-quoted.

    The caller passes the words (the CLI its own argv), so this module knows nothing of how
    they were parsed; the settings that ran, defaults included, are recorded separately.
    """
    import shlex

    words = list(args)
    if words and Path(words[0]).name in ("mhsafety", "__main__.py"):
        words[0] = "mhsafety"
    return " ".join(shlex.quote(w) for w in words)
