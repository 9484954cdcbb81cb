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

from ..io import sha256_file
from ..records import PREDICTION_SUFFIX, Run, merge_notes, note_text

# JSON files beside prediction records that describe how they were made.
MANIFEST_MAX_BYTES = 1_000_000
MANIFEST_SHOWN_CHARS = 20_000
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


def find_manifests(paths: Sequence[str | os.PathLike[str]]) -> list[Manifest]:
    """JSON files (not prediction records) in the given folders, shown as they are."""
    found: list[Manifest] = []
    seen: set[Path] = set()
    for root in paths:
        p = Path(root)
        if not p.is_dir():
            continue
        for file in sorted(p.rglob("*.json")):
            if file.name.endswith(PREDICTION_SUFFIX) or file.resolve() in seen:
                continue
            seen.add(file.resolve())
            if file.stat().st_size > MANIFEST_MAX_BYTES:
                found.append(Manifest(str(file), f"(not shown: {file.stat().st_size} bytes)",
                                      True))
                continue
            obj = None
            try:
                obj = json.loads(file.read_text(encoding="utf-8"))
                text = json.dumps(obj, ensure_ascii=False, indent=2)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                text = f"(not valid JSON: {exc})"
            truncated = len(text) > MANIFEST_SHOWN_CHARS
            found.append(Manifest(str(file), text[:MANIFEST_SHOWN_CHARS], truncated,
                                  _summary(obj)))
    return found


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def collect_provenance(paths: Sequence[str | os.PathLike[str]],
                       systems: Mapping[str, Sequence[Run]],
                       data: str | os.PathLike[str] | None = None, command: str | None = None,
                       settings: Mapping[str, Any] | None = None) -> Provenance:
    return Provenance(
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        command=command,
        software=software_versions(),
        inputs=[str(p) for p in paths],
        data=describe_data(data) if data is not None else None,
        runs=describe_runs(systems),
        manifests=find_manifests(paths),
        settings=dict(settings or {}),
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
