"""Stand-ins for the shared interfaces until `core` lands them (INTERFACES.md); delete then."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data import Example, example_from_dict


@dataclass(frozen=True)
class Predictions:
    probs: np.ndarray
    reasons: tuple[str | None, ...]

    @property
    def valid(self) -> np.ndarray:
        return np.all(np.isfinite(np.asarray(self.probs, dtype=float)), axis=1)

    @property
    def p_safe(self) -> np.ndarray:
        return np.asarray(self.probs, dtype=float)[:, 7]

    def __len__(self) -> int:
        return len(self.reasons)


def predictions(classifier: Any, examples: Sequence[Example]) -> Predictions:
    probs = np.asarray(classifier.predict_proba(list(examples)), dtype=float)
    ok = np.all(np.isfinite(probs), axis=1) if probs.ndim == 2 else []
    return Predictions(probs, tuple(None if v else "no answer" for v in ok))


def examples_from_items(items: Sequence[Any], source: str,
                        require_label: bool = False) -> list[Example]:
    from ..errors import DataError

    out, seen = [], set()
    for i, obj in enumerate(items):
        ex = example_from_dict(obj, f"{source} item {i}", require_label, default_id=str(i))
        if ex.id in seen:
            raise DataError(f"{source} item {i}: duplicate id {ex.id!r}")
        seen.add(ex.id)
        out.append(ex)
    return out


# ---- settings stand-ins (mhsafety.settings) ----
import dataclasses as _dc


def setting(default: Any, doc: str, *, choices: Any = None, check: Any = None, cli: Any = None,
            metavar: Any = None) -> Any:
    meta = {"doc": doc, "choices": choices, "check": check, "cli": cli, "metavar": metavar}
    if isinstance(default, (list, dict)):
        return _dc.field(default_factory=lambda: type(default)(default), metadata=meta)
    return _dc.field(default=default, metadata=meta)


def build(cls: Any, values: Any, where: str = "config") -> Any:
    from ..errors import UsageError

    names = {f.name: f for f in _dc.fields(cls)}
    for key in values:
        if key not in names:
            raise UsageError(f"{where}: unknown setting {key!r}; expected one of "
                             + ", ".join(names))
    for key, value in values.items():
        check = names[key].metadata.get("check")
        error = check(value) if check else None
        if error:
            raise UsageError(f"{where}: {key}: {error}")
    return cls(**values)


def click_options(cls: Any, *names: str, exclude: Any = (), prefix: str = "") -> Any:
    import click

    chosen = [f for f in _dc.fields(cls) if (not names or f.name in names)
              and f.name not in exclude]

    def decorate(func: Any) -> Any:
        for f in reversed(chosen):
            default = f.default if f.default is not _dc.MISSING else f.default_factory()
            opt = f.metadata.get("cli") or "--" + prefix + f.name.replace("_", "-")
            kind = f.metadata.get("choices")
            typ = click.Choice(kind) if kind else type(default) if default is not None else str
            func = click.option(opt, f.name, type=typ, default=None,
                                help=f"{f.metadata.get('doc', '')} [default: {default}]")(func)
        return func

    return decorate


def given(kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


def read_items_text(text: str, source: str) -> list[Example]:
    import json

    from ..errors import DataError

    if text.lstrip().startswith("["):
        items = json.loads(text)
    else:
        items = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{source}: invalid JSON at line {lineno}, column "
                                    f"{exc.colno}: {exc.msg}") from None
    return examples_from_items(items, source)
