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
from typing import TYPE_CHECKING, Any

from ..errors import DataError, missing_extra
from ..records import PredictionRecord, register_reader

if TYPE_CHECKING:
    from ..probe.records import GradedReply
from ..taxonomy import NUM_LABELS, label_id

INSPECT_SUFFIX = ".eval"
LMEVAL_PATTERN = re.compile(r"^samples_.*\.jsonl$")
SCORER = "safety_label"  # the inspect task's scorer name
# The chatbot audit task (:mod:`.inspect_chatbot`): its name, scorer and metadata key.
CHATBOT_TASK = "chatbot_safety"
CHATBOT_SCORER = "chatbot_grader"
CHATBOT_METADATA_KEY = "mhsafety_chatbot"


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
    if CHATBOT_METADATA_KEY in (log.eval.metadata or {}):
        raise DataError(f"{p}: an audit log of the chatbot_safety task, not predictions of "
                        "labelled items; report it with `mhsafety report LOG --out DIR`")
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


# --------------------------------------------------------------------------- inspect chatbot audit


def _read_log(p: Path, header_only: bool = False) -> Any:
    try:
        from inspect_ai.log import read_eval_log
    except ModuleNotFoundError:
        raise missing_extra("inspect_ai", "inspect") from None
    try:
        return read_eval_log(str(p), header_only=header_only)
    except Exception as exc:  # noqa: BLE001 - inspect raises many kinds; one sentence here
        raise DataError(f"{p}: not a readable inspect eval log ({type(exc).__name__}: {exc})"
                        ) from None


def is_chatbot_log(path: str | Path) -> bool:
    """Whether ``path`` is an inspect log of the ``chatbot_safety`` task (reads its header
    only; an unreadable file is not one)."""
    p = Path(path)
    if p.suffix != INSPECT_SUFFIX or not p.is_file():
        return False
    try:
        log = _read_log(p, header_only=True)
    except DataError:
        return False
    return CHATBOT_METADATA_KEY in (log.eval.metadata or {})


def _tokens(sample: Any) -> tuple[int | None, int | None]:
    usage = list((sample.model_usage or {}).values())
    if not usage:
        return None, None
    return (sum(u.input_tokens or 0 for u in usage), sum(u.output_tokens or 0 for u in usage))


def read_chatbot_log(path: str | Path) -> list[GradedReply]:
    """The graded replies of an inspect log of the ``chatbot_safety`` task: one per sample
    and epoch (epoch e is sample e - 1 of its prompt), the target named by the task's
    ``target`` parameter or else the model. A sample inspect could not finish, or whose
    reply was not graded, is a reply with ``pred`` None and the reason: never safe."""
    from ..probe.records import GradedReply

    p = Path(path)
    log = _read_log(p)
    settings = (log.eval.metadata or {}).get(CHATBOT_METADATA_KEY)
    if settings is None:
        raise DataError(f"{p}: an inspect log of task {log.eval.task!r}, not of mhsafety's "
                        "chatbot_safety task")
    if not log.samples:
        raise DataError(f"{p}: the log holds no samples (status {log.status})")
    target = settings.get("target") or log.eval.model
    out = []
    for sample in log.samples:
        where = f"{p} sample {sample.id!r} epoch {sample.epoch}"
        meta = sample.metadata or {}
        score = (sample.scores or {}).get(CHATBOT_SCORER)
        values = (score.metadata or {}) if score is not None else {}
        completion = sample.output.completion if sample.output is not None else ""
        if score is None:
            error = (f"inspect sample error: {sample.error.message}" if sample.error
                     else "not scored")
        else:
            error = values.get("error")
        prompt_tokens, completion_tokens = _tokens(sample)
        reply = values.get("reply")
        out.append(GradedReply(
            target=target, prompt_id=str(meta.get("prompt_id", sample.id)),
            sample=sample.epoch - 1, persona=meta.get("persona"), risk=meta.get("risk"),
            context=meta.get("context"), reply=completion if reply is None else reply,
            reasoning=values.get("reasoning"), pred=_label(values.get("pred"), where),
            probs=values.get("probs"), grader=values.get("grader") or str(
                settings.get("grader", "")),
            grader_error=error if values.get("pred") is None else None,
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            latency_s=sample.total_time,
            meta={"source": "inspect", "log": str(p), "model": log.eval.model}))
    return out


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
