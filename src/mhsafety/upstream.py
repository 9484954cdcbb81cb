"""Reader of the upstream release (the paper's raw ChatGPT answers and fine-tuned predictions).

Layout (under a top folder ``DialogueSafety/``):
``ChatGPT_gen/{0301,0613}/{zero_shot,few_shot}/{one..five}/{i}.json`` and
``finetuned_model_predict/{bert-base-chinese,hfl-chinese-roberta-wwm-ext-large}/{42..46}/{i}.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DataError
from .judge.parse import parse_paper
from .metrics import SystemMetrics
from .records import NOTE_SELECTED_ON_TEST, PredictionRecord, write_records
from .scoring import Scores, runs_of, score_runs

N_ITEMS = 800
ROUNDS = ("one", "two", "three", "four", "five")
SEEDS = ("42", "43", "44", "45", "46")
PROTOCOL = "upstream release"


@dataclass(frozen=True)
class UpstreamSystem:
    name: str
    folder: str  # relative to the release root
    runs: tuple[str, ...]
    kind: str  # "chatgpt" or "finetuned"


SYSTEMS: tuple[UpstreamSystem, ...] = (
    UpstreamSystem("ChatGPT-0301 zero-shot", "ChatGPT_gen/0301/zero_shot", ROUNDS, "chatgpt"),
    UpstreamSystem("ChatGPT-0301 few-shot", "ChatGPT_gen/0301/few_shot", ROUNDS, "chatgpt"),
    UpstreamSystem("ChatGPT-0613 zero-shot", "ChatGPT_gen/0613/zero_shot", ROUNDS, "chatgpt"),
    UpstreamSystem("ChatGPT-0613 few-shot", "ChatGPT_gen/0613/few_shot", ROUNDS, "chatgpt"),
    UpstreamSystem("BERT-base", "finetuned_model_predict/bert-base-chinese", SEEDS, "finetuned"),
    UpstreamSystem("RoBERTa-large", "finetuned_model_predict/hfl-chinese-roberta-wwm-ext-large",
                   SEEDS, "finetuned"),
)


def find_release_root(path: str | os.PathLike[str]) -> Path:
    """Accept the ``DialogueSafety`` folder itself or a folder that contains it."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such folder")
    for candidate in (p, p / "DialogueSafety"):
        if (candidate / "ChatGPT_gen").is_dir() or (candidate / "finetuned_model_predict").is_dir():
            return candidate
    raise DataError(f"{p}: not an upstream checkout (expected ChatGPT_gen/ and "
                    "finetuned_model_predict/ in it or in DialogueSafety/ under it)")


@contextlib.contextmanager
def open_release(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A release folder, or a ``.tar.xz``/``.tar.gz`` of one extracted to a temporary folder."""
    p = Path(path)
    if p.is_file() and tarfile.is_tarfile(p):
        with tempfile.TemporaryDirectory(prefix="mhsafety-upstream-") as tmp:
            # The tar command extracts the 24,000 small files several times faster than tarfile.
            command = ["tar", "xf", str(p), "-C", tmp]
            if shutil.which("tar") is None or subprocess.run(
                    command, check=False, capture_output=True).returncode != 0:
                with tarfile.open(p) as archive:
                    archive.extractall(tmp, filter="data")
            yield find_release_root(tmp)
    else:
        yield find_release_root(p)


def _load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: missing file of the upstream release") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not valid UTF-8") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: "
                        f"{exc.msg}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object")
    return obj


def _gold(obj: dict[str, Any], path: Path) -> int:
    item = obj.get("item", obj)
    label = item.get("label") if isinstance(item, dict) else None
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label <= 7:
        raise DataError(f"{path}: field 'label' of the test item must be an integer 0..7")
    return label


def _chatgpt_record(path: Path, system: str, run: str, index: int,
                    parser: Callable[[str | None], int | None]) -> PredictionRecord:
    obj = _load(path)
    try:
        answer = obj["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise DataError(f"{path}: field 'choices[0].message.content' is missing") from None
    if not isinstance(answer, str):
        raise DataError(f"{path}: field 'choices[0].message.content' must be a string")
    pred = parser(answer)
    return PredictionRecord(
        id=str(index), gold=_gold(obj, path), pred=pred, system=system, run=run, raw=answer,
        error=None if pred is not None else "answer names no category",
        meta={"model": obj.get("model")},
    )


def _finetuned_record(path: Path, system: str, run: str, index: int) -> PredictionRecord:
    obj = _load(path)
    pred = obj.get("predict_label")
    if isinstance(pred, bool) or not isinstance(pred, int) or not 0 <= pred <= 7:
        raise DataError(f"{path}: field 'predict_label' must be an integer 0..7, got {pred!r}")
    # The paper kept the epoch with the best test accuracy; every table marks those rows.
    return PredictionRecord(id=str(index), gold=_gold(obj, path), pred=pred, system=system,
                            run=run, notes=[NOTE_SELECTED_ON_TEST])


def read_system(root: Path, system: UpstreamSystem, n_items: int = N_ITEMS,
                parser: Callable[[str | None], int | None] = parse_paper
                ) -> dict[str, list[PredictionRecord]]:
    """Prediction records of every run of one upstream system.

    Read sequentially: the files are small, and a thread pool measured 3x slower here (GIL).
    """
    folder = root / system.folder
    if not folder.is_dir():
        raise DataError(f"{folder}: missing folder of the upstream release")
    runs = {}
    for run in system.runs:
        run_dir = folder / run
        if not run_dir.is_dir():
            raise DataError(f"{run_dir}: missing folder of the upstream release")
        paths = [run_dir / f"{i}.json" for i in range(n_items)]
        if system.kind == "chatgpt":
            runs[run] = [_chatgpt_record(p, system.name, run, i, parser)
                         for i, p in enumerate(paths)]
        else:
            runs[run] = [_finetuned_record(p, system.name, run, i) for i, p in enumerate(paths)]
    return runs


def reproduce_scores(path: str | os.PathLike[str],
                     out_dir: str | os.PathLike[str] | None = None,
                     parser: Callable[[str | None], int | None] = parse_paper,
                     progress: Callable[[str], None] | None = None) -> Scores:
    """Table 2 recomputed from the released outputs: six systems, five runs each, scored
    (and made into table rows) by :func:`mhsafety.scoring.score_runs`.

    With ``out_dir``, each run's prediction records are also written there
    (``<system>/<run>.preds.jsonl``) so that ``evaluate``, ``analyze`` and ``report`` can use
    them.
    """
    systems = {}
    with open_release(path) as root:
        for system in SYSTEMS:
            if progress is not None:
                progress(system.name)
            runs = read_system(root, system, parser=parser)
            systems[system.name] = runs_of(system.name, runs)
            if out_dir is not None:
                slug = system.name.lower().replace(" ", "-")
                for run, recs in runs.items():
                    write_records(Path(out_dir) / slug / f"{run}.preds.jsonl", recs)
    return score_runs(systems, PROTOCOL)


def reproduce(path: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None,
              parser: Callable[[str | None], int | None] = parse_paper,
              progress: Callable[[str], None] | None = None) -> list[SystemMetrics]:
    """The scores of :func:`reproduce_scores` alone."""
    return reproduce_scores(path, out_dir, parser, progress).systems
