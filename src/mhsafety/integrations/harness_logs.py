"""Harness results read back as prediction records: inspect eval logs and lm-eval samples.

``mhsafety evaluate``, ``analyze`` and ``report`` take these files (or folders holding them)
wherever they take ``*.preds.jsonl``:

- an inspect log (``*.eval``, or inspect's ``.json`` log format) of the ``dialogue_safety``
  task: one record per sample and epoch, each epoch a run (so ``--epochs 5`` gives the
  paper's mean ± std over five rounds). The gold and parsed labels come from the task's
  scorer, so the log is scored as inspect scored it. A sample inspect could not finish (an
  error after its retries) is a record with ``pred`` null and the error, counted wrong.
- an lm-eval sample file (``samples_mhsafety_dialogue_safety_*.jsonl``, from
  ``--log_samples``): one record per document, the label taken from the task's filter
  output, the system named after the ``model_name`` of the ``results_*.json`` beside it.

Importing this module registers both readers with :mod:`mhsafety.records`, which imports it
the first time it meets such a file name (``records.READER_MODULES``), so the records layer
never imports a harness.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import DataError, missing_extra
from ..records import PredictionRecord, register_reader
from ..taxonomy import NUM_LABELS, label_id

INSPECT_SUFFIX = ".eval"
LMEVAL_PATTERN = re.compile(r"^samples_.*\.jsonl$")
SCORER = "safety_label"  # the inspect task's scorer name


def is_inspect_log(path: Path) -> bool:
    return path.suffix == INSPECT_SUFFIX


def is_lmeval_samples(path: Path) -> bool:
    return bool(LMEVAL_PATTERN.match(path.name))


def _label(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < NUM_LABELS:
        raise DataError(f"{where}: expected a label id 0..7 or null, got {value!r}")
    return value


def _shots_name(shots: Any) -> str:
    return "few-shot" if shots else "zero-shot"


# --------------------------------------------------------------------------- inspect


def read_inspect_log(path: str | Path) -> list[PredictionRecord]:
    """Records of an inspect log of the ``dialogue_safety`` task (one run per epoch)."""
    try:
        from inspect_ai.log import read_eval_log
    except ModuleNotFoundError:
        raise missing_extra("inspect_ai", "inspect") from None
    p = Path(path)
    try:
        log = read_eval_log(str(p))
    except Exception as exc:  # noqa: BLE001 - inspect raises many kinds; one sentence here
        raise DataError(f"{p}: not a readable inspect eval log ({type(exc).__name__}: {exc})"
                        ) from None
    settings = (log.eval.metadata or {}).get("mhsafety")
    if settings is None:
        raise DataError(f"{p}: an inspect log of task {log.eval.task!r}, not of mhsafety's "
                        "dialogue_safety task")
    if not log.samples:
        raise DataError(f"{p}: the log holds no samples (status {log.status})")
    protocol = settings.get("protocol", "flat")
    system = f"{log.eval.model} {_shots_name(settings.get('shots'))}"
    notes, setup = _run_labels(settings)
    if protocol != "flat":
        system += f" {protocol}"
    records = []
    for sample in log.samples:
        where = f"{p} sample {sample.id!r} epoch {sample.epoch}"
        score = (sample.scores or {}).get(SCORER)
        completion = sample.output.completion if sample.output is not None else None
        meta: dict[str, Any] = {"source": "inspect", "log": str(p), "setup": setup}
        if score is not None:
            values = score.metadata or {}
            gold, pred, error = values.get("gold"), values.get("pred"), values.get("error")
            if values.get("path"):
                meta["node_path"] = values["path"]
        else:  # the sample failed before scoring
            gold, pred = label_id(str(sample.target)), None
            error = f"inspect sample error: {sample.error.message}" if sample.error else \
                "not scored"
        records.append(PredictionRecord(
            id=str(sample.id), gold=_label(gold, where), pred=_label(pred, where),
            system=system, run=str(sample.epoch), raw=completion, error=error, meta=meta,
            notes=list(notes)))
    return records


def _run_labels(settings: dict[str, Any]) -> tuple[list[str], str]:
    """(notes every row of the run shows, its settings key) from the metadata a harness
    run recorded (:func:`mhsafety.integrations.common.run_metadata`)."""
    from .common import settings_key

    notes = [n for n in settings.get("notes") or [] if isinstance(n, str)]
    return notes, settings_key(settings)


# --------------------------------------------------------------------------- lm-eval


def _lmeval_run(samples: Path) -> tuple[str, list[str], str]:
    """(``MODEL zero-shot`` or ``MODEL 8-shot``, the run's notes, its settings key) from the
    results file lm-eval writes beside its samples (the task config's ``metadata``, which
    the exported YAML fills with :func:`mhsafety.integrations.common.run_metadata`)."""
    from .common import METADATA_KEY

    stamp = samples.stem.rsplit("_", 1)[-1]
    candidates = sorted(samples.parent.glob(f"results_{stamp}*.json")) or \
        sorted(samples.parent.glob("results_*.json"))
    model = samples.parent.name
    metadata: dict[str, Any] = {}
    for file in candidates[:1]:
        try:
            results = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            break
        model = results.get("model_name") or model
        settings = (results.get("configs", {}).get("mhsafety_dialogue_safety") or {})
        recorded = settings.get("metadata") or {}
        # Folders exported before issue 20 kept (at most) ``shots`` at the top level.
        metadata = recorded.get(METADATA_KEY) or \
            {k: recorded[k] for k in ("shots",) if k in recorded}
    notes, setup = _run_labels(metadata)
    system = f"{model} {_shots_name(metadata.get('shots', 0))}"
    if metadata.get("protocol", "flat") != "flat":
        system += f" {metadata['protocol']}"
    return system, notes, setup


def read_lmeval_samples(path: str | Path) -> list[PredictionRecord]:
    """Records of an lm-eval ``samples_*.jsonl`` file of the exported task."""
    # Imported here, not at the top: the CLI imports this module on every start.
    from .common import UNPARSED
    from .lmeval import INVALID

    p = Path(path)
    system, notes, setup = _lmeval_run(p)
    records = []
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: cannot read the lm-eval samples ({exc})") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{p} line {lineno}"
        try:
            sample = json.loads(line)
            doc = sample["doc"]
            answer = sample["filtered_resps"][0]
            while isinstance(answer, list):
                answer = answer[0] if answer else INVALID
        except (ValueError, KeyError, IndexError, TypeError):
            raise DataError(f"{where}: not an lm-eval sample of the mhsafety task "
                            "(expected doc and filtered_resps)") from None
        try:
            pred = None if answer == INVALID else label_id(str(answer))
        except ValueError:
            raise DataError(f"{where}: filtered answer {answer!r} is not a label name; was "
                            "the task exported by `mhsafety export-task lm-eval`?") from None
        raw = sample.get("resps", [[None]])[0]
        raw = raw[0] if isinstance(raw, list) and raw else raw
        records.append(PredictionRecord(
            id=str(doc.get("id", sample.get("doc_id"))), gold=_label(doc.get("label"), where),
            pred=pred, system=system, run="0", raw=raw if isinstance(raw, str) else None,
            error=UNPARSED if pred is None else None, notes=list(notes),
            meta={"source": "lm-eval", "samples": str(p), **({"setup": setup} if setup else {})}))
    if not records:
        raise DataError(f"{p}: no samples in the file")
    return records


register_reader(is_inspect_log, read_inspect_log)
register_reader(is_lmeval_samples, read_lmeval_samples)
