"""Screening many shards of dialogue logs with Ray Data.

:class:`ScreenBatch` is a callable class for ``Dataset.map_batches``: each Ray actor loads
the checkpoint once (any kind: baseline, encoder, judge) in ``__init__`` and screens batches
in ``__call__`` through the guard (:class:`mhsafety.guard.Guard`), adding the columns

``label``       the guard's label id (null when unverified)
``label_name``  its name
``p_safe``      P(Safe Response) (null when unverified)
``decision``    ``safe`` / ``unsafe`` / ``unverified``
``node``        the node of the sequential framework that decides ``label``
``reason``      why a row is unverified (null otherwise)

to each batch, keeping every input column. A row the model could not judge, or whose text
is empty, is ``unverified`` with its reason: one bad row never fails its shard. ::

    import ray
    from mhsafety.integrations.ray import ScreenBatch

    ds = ray.data.read_parquet("logs/")
    ds = ds.map_batches(ScreenBatch, fn_constructor_kwargs={"checkpoint": "ckpt"},
                        batch_size=256, compute=ray.data.ActorPoolStrategy(size=4),
                        batch_format="pandas")
    ds.write_parquet("screened/")

:func:`screen_files` is that pipeline over files (what ``mhsafety predict --engine ray``
runs). Ray connects to the cluster in ``RAY_ADDRESS`` if set, else starts a local one.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import DataError, UsageError, missing_extra

OUTPUT_COLUMNS = ("label", "label_name", "p_safe", "decision", "node", "reason")
DEFAULT_BATCH_SIZE = 256
INPUT_FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}


class ScreenBatch:
    """Screen a batch (pandas DataFrame or dict of arrays) with one checkpoint per actor."""

    def __init__(self, checkpoint: str, threshold: float | None = None,
                 context_column: str = "context", response_column: str = "response",
                 id_column: str | None = "id") -> None:
        from ..guard import Guard

        self.guard = Guard.load(checkpoint, threshold)
        self.context_column, self.response_column = context_column, response_column
        self.id_column = id_column

    def _examples(self, contexts: Sequence[Any], responses: Sequence[Any],
                  ids: Sequence[Any]) -> tuple[list[Any], dict[int, str]]:
        from ..guard import make_example

        examples, bad = [], {}
        for i, (context, response, item_id) in enumerate(zip(contexts, responses, ids)):
            try:
                examples.append(make_example(context, response, None if item_id is None
                                             else str(item_id), f"row {i}"))
            except UsageError as exc:
                bad[i] = f"bad input: {exc}"
        return examples, bad

    def screen(self, contexts: Sequence[Any], responses: Sequence[Any],
               ids: Sequence[Any] | None = None) -> dict[str, list[Any]]:
        """The output columns for aligned context and response values."""
        from ..guard import unverified

        n = len(contexts)
        examples, bad = self._examples(contexts, responses, ids if ids is not None else [None] * n)
        checked = iter(self.guard.check_examples(examples, self.guard.threshold))
        columns: dict[str, list[Any]] = {name: [] for name in OUTPUT_COLUMNS}
        for i in range(n):
            result = unverified(bad[i], self.guard.threshold) if i in bad else next(checked)
            columns["label"].append(result.label)
            columns["label_name"].append(result.label_name)
            columns["p_safe"].append(result.p_safe)
            columns["decision"].append(result.decision)
            columns["node"].append(result.node)
            columns["reason"].append(result.reason)
        return columns

    def __call__(self, batch: Any) -> Any:
        for name in (self.context_column, self.response_column):
            if name not in batch:
                raise DataError(f"a batch has no column {name!r}; its columns are "
                                f"{', '.join(map(str, batch.keys()))}")
        ids = list(batch[self.id_column]) if self.id_column and self.id_column in batch else None
        columns = self.screen(list(batch[self.context_column]),
                              list(batch[self.response_column]), ids)
        if hasattr(batch, "assign"):  # pandas
            return batch.assign(**columns)
        import numpy as np

        out = dict(batch)
        for name, values in columns.items():
            out[name] = np.asarray(values, dtype=object)
        return out


def expand_inputs(pattern: str | Sequence[str]) -> list[str]:
    """Files named by glob patterns (``logs/*.parquet``) or folders, one format for all."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    files: list[str] = []
    for pat in patterns:
        p = Path(pat)
        if p.is_dir():
            matched = sorted(str(f) for f in p.iterdir() if f.suffix in INPUT_FORMATS)
        else:
            matched = sorted(glob.glob(pat))
        if not matched:
            raise DataError(f"{pat}: matches no file")
        files.extend(matched)
    kinds = {INPUT_FORMATS.get(Path(f).suffix) for f in files}
    if None in kinds:
        odd = next(f for f in files if Path(f).suffix not in INPUT_FORMATS)
        raise DataError(f"{odd}: expected .parquet, .jsonl or .json (one object per line) "
                        "shards")
    if len(kinds) > 1:
        raise DataError("the shards mix parquet and JSON files; screen each kind apart")
    return files


def screen_files(pattern: str | Sequence[str], checkpoint: str | os.PathLike[str],
                 out: str | os.PathLike[str], *, threshold: float | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, concurrency: int | None = None,
                 output_format: str = "parquet") -> int:
    """Screen every row of the shards with ``checkpoint``; write shards to ``out``.

    Returns the number of rows screened. ``concurrency``: Ray actors (each loads the
    checkpoint once); default: one per CPU of the cluster but one (left to the read and
    write tasks: with every CPU held by an actor the pipeline would wait forever), at most
    the number of shards.
    """
    try:
        import ray
        import ray.data
    except ModuleNotFoundError:
        raise missing_extra("ray", "ray") from None
    from ..classifiers.base import read_manifest

    read_manifest(checkpoint)  # a bad checkpoint is one sentence here, not an actor crash
    files = expand_inputs(pattern)
    reader = ray.data.read_parquet if files[0].endswith(".parquet") else ray.data.read_json
    ds = reader(files)
    rows = ds.count()
    if concurrency is None:
        cpus = int(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else \
            (os.cpu_count() or 1)
        concurrency = max(1, min(cpus - 1, len(files)))
    screened = ds.map_batches(
        ScreenBatch, fn_constructor_kwargs={"checkpoint": str(Path(checkpoint).resolve()),
                                            "threshold": threshold},
        batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=concurrency),
        batch_format="pandas")
    target = str(Path(out).resolve())
    if output_format == "parquet":
        screened.write_parquet(target)
    elif output_format == "json":
        screened.write_json(target)
    else:
        raise UsageError(f"output format must be parquet or json, got {output_format!r}")
    return rows
