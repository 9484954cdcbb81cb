"""The probe's record: one graded reply of a target, one JSON line each.

A reply belongs to a *cluster*: the dataset context it answered (single-turn probe, set
``prompt_id``) or the conversation it is a turn of (multi-turn probe, set
``conversation_id``). ``(cluster, sample, turn)`` is its key; the same key across targets is
the same prompt slot, which is what paired comparisons pair on, so conversation ids must not
depend on the target (e.g. ``"<persona>#<repeat>"``).

``pred`` None means the grader could not grade the reply (``grader_error`` says why): such a
reply is counted apart, never as safe.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..io import atomic_write, jsonl_objects
from ..taxonomy import NUM_LABELS, SAFE_LABEL
from .personas import RISK_LEVELS

PROBE_SCHEMA_VERSION = 1
REPLIES_FILE = "replies.jsonl"


@dataclass
class GradedReply:
    target: str
    prompt_id: str | None = None  # single-turn: the dataset context's id
    conversation_id: str | None = None  # multi-turn: the conversation's id
    sample: int = 0  # which of the replies sampled for one prompt (0-based)
    turn: int = 1  # multi-turn: the target's turn in the conversation (1-based)
    persona: str | None = None
    risk: str | None = None
    context: str | None = None  # what the reply was graded against ([seeker]/[supporter] text)
    reply: str = ""  # the reply as graded (a leading reasoning block taken off)
    reasoning: str | None = None  # the reasoning block, kept but never graded
    pred: int | None = None  # the grader's label 0..7; None: no label (see binary)
    # A binary-only grader's answer (a general guard model: unsafe or safe, category unknown)
    # when pred is None; ungraded when both are None.
    binary: bool | None = None
    probs: list[float] | None = None
    grader: str = ""
    grader_error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None  # the target's reply latency
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.prompt_id is None) == (self.conversation_id is None):
            raise ValueError("a graded reply needs exactly one of prompt_id and "
                             "conversation_id")

    @property
    def cluster(self) -> str:
        """The resampling unit: ``prompt:<id>`` or ``conversation:<id>``."""
        if self.prompt_id is not None:
            return f"prompt:{self.prompt_id}"
        return f"conversation:{self.conversation_id}"

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.cluster, self.sample, self.turn)

    @property
    def graded(self) -> bool:
        return self.pred is not None or self.binary is not None

    @property
    def unsafe(self) -> bool | None:
        """The binary view: the grader's label, or a binary-only grader's answer (None when
        ungraded)."""
        return self.binary if self.pred is None else self.pred != SAFE_LABEL

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema_version": PROBE_SCHEMA_VERSION, "target": self.target}
        for name in ("prompt_id", "conversation_id"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        out["sample"], out["turn"] = self.sample, self.turn
        for name in ("persona", "risk", "context"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        out["reply"] = self.reply
        if self.reasoning is not None:
            out["reasoning"] = self.reasoning
        out["pred"] = self.pred
        if self.pred is None and self.binary is not None:
            out["unsafe"] = self.binary  # the record format's name for a binary-only answer
        if self.probs is not None:
            out["probs"] = [round(float(p), 6) for p in self.probs]
        out["grader"] = self.grader
        for name in ("grader_error", "prompt_tokens", "completion_tokens", "latency_s"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_dict(cls, obj: Any, where: str = "record") -> GradedReply:
        """Validate one record; ``where`` (file and line) starts every error message."""
        if not isinstance(obj, dict):
            raise DataError(f"{where}: expected a graded-reply object, got "
                            f"{type(obj).__name__}")
        version = obj.get("schema_version", PROBE_SCHEMA_VERSION)
        if version != PROBE_SCHEMA_VERSION:
            raise DataError(f"{where}: schema_version {version!r} is not supported (this "
                            f"mhsafety reads {PROBE_SCHEMA_VERSION})")
        known = (set(cls.__dataclass_fields__) - {"binary"}) | {"schema_version", "unsafe"}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise DataError(f"{where}: unknown field '{unknown[0]}'")

        def text(name: str, required: bool = False) -> str | None:
            value = obj.get(name)
            if value is None and not required:
                return None
            if not isinstance(value, str) or (required and not value):
                raise DataError(f"{where}: field '{name}' must be a "
                                f"{'non-empty ' if required else ''}string, got {value!r}")
            return value

        def integer(name: str, default: int | None, low: int | None = None) -> int | None:
            value = obj.get(name, default)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int) or (
                    low is not None and value < low):
                raise DataError(f"{where}: field '{name}' must be an integer"
                                f"{f' >= {low}' if low is not None else ''}, got {value!r}")
            return value

        ids = [n for n in ("prompt_id", "conversation_id") if obj.get(n) is not None]
        if len(ids) != 1:
            raise DataError(f"{where}: needs exactly one of 'prompt_id' and 'conversation_id'")
        pred = obj.get("pred")
        if pred is not None and (isinstance(pred, bool) or not isinstance(pred, int)
                                 or not 0 <= pred < NUM_LABELS):
            raise DataError(f"{where}: field 'pred' must be a label 0..{NUM_LABELS - 1} or "
                            f"null, got {pred!r}")
        binary = obj.get("unsafe")
        if binary is not None and (not isinstance(binary, bool) or pred is not None):
            raise DataError(f"{where}: field 'unsafe' must be true or false, and only with "
                            f"'pred' null (a binary-only grader), got {binary!r}")
        probs = obj.get("probs")
        if probs is not None and (
                not isinstance(probs, list) or len(probs) != NUM_LABELS
                or not all(isinstance(p, (int, float)) and not isinstance(p, bool)
                           and math.isfinite(p) for p in probs)):
            raise DataError(f"{where}: field 'probs' must be a list of {NUM_LABELS} numbers")
        risk = obj.get("risk")
        if risk is not None and risk not in RISK_LEVELS:
            raise DataError(f"{where}: field 'risk' must be one of {', '.join(RISK_LEVELS)}, "
                            f"got {risk!r}")
        latency = obj.get("latency_s")
        if latency is not None and (isinstance(latency, bool)
                                    or not isinstance(latency, (int, float))):
            raise DataError(f"{where}: field 'latency_s' must be a number, got {latency!r}")
        meta = obj.get("meta") or {}
        if not isinstance(meta, dict):
            raise DataError(f"{where}: field 'meta' must be an object")
        ident = {n: (str(obj[n]) if isinstance(obj[n], int) and not isinstance(obj[n], bool)
                     else text(n, required=True)) for n in ids}
        return cls(
            target=text("target", required=True), **ident,
            sample=integer("sample", 0, 0), turn=integer("turn", 1, 1),
            persona=text("persona"), risk=risk, context=text("context"),
            reply=text("reply") or "", reasoning=text("reasoning"), pred=pred, binary=binary,
            probs=None if probs is None else [float(p) for p in probs],
            grader=text("grader") or "", grader_error=text("grader_error"),
            prompt_tokens=integer("prompt_tokens", None, 0),
            completion_tokens=integer("completion_tokens", None, 0),
            latency_s=None if latency is None else float(latency), meta=meta)


def read_replies(path: str | os.PathLike[str]) -> list[GradedReply]:
    """Read and validate a JSONL file of graded replies; errors name the file and line."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not valid UTF-8 (bad byte at offset {exc.start})") from None
    return [GradedReply.from_dict(obj, f"{p} line {lineno}")
            for lineno, obj in jsonl_objects(text, p)]


def write_replies(path: str | os.PathLike[str], replies: list[GradedReply]) -> Path:
    """Write graded replies as JSONL, atomically (a run appends through its own writer)."""
    p = Path(path)
    with atomic_write(p) as handle:
        for reply in replies:
            handle.write(json.dumps(reply.to_dict(), ensure_ascii=False) + "\n")
    return p
