"""One home per setting: the dataclass fields that hold each component's defaults.

A component (the judge, the encoder, the baseline, the guard service, the annotation server)
declares its settings once, as a dataclass whose fields are made by :func:`setting`::

    @dataclass(frozen=True)
    class ServiceConfig:
        port: int = setting(8000, "TCP port to listen on.", check=lambda v: ...)

Everything else is derived from that declaration: :func:`build` makes an instance from a
mapping (``--config KEY=VALUE`` strings included) with one-sentence errors;
:func:`click_options` adds one CLI option per field whose help shows the dataclass default
(never a copy of it) and whose own default is ``None`` ("not given"); :func:`given` keeps
only what the user set, to forward to :func:`build`; :func:`fields_doc` lists the fields
for help pages and docs.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .errors import UsageError

T = TypeVar("T")

# The seed every seeded piece (splits, classifiers, the first benchmark run) starts from.
DEFAULT_SEED = 42

# Keys of a field's metadata; everything below reads them, nothing else defines them.
_DOC, _CHOICES, _CHECK, _CLI, _METAVAR = "doc", "choices", "check", "cli", "metavar"
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def setting(default: Any, doc: str, *, choices: Sequence[Any] | None = None,
            check: Callable[[Any], str | None] | None = None, cli: str | None = None,
            metavar: str | None = None) -> Any:
    """A dataclass field holding one setting: its default, one-line doc and validation.

    ``choices`` limits the values; ``check(value)`` returns an error text (or None when the
    value is fine); ``cli`` overrides the option name (``--api-base``); ``metavar`` the
    placeholder in help. Mutable defaults (list, dict, set) are copied per instance.
    """
    metadata = {_DOC: doc, _CHOICES: tuple(choices) if choices is not None else None,
                _CHECK: check, _CLI: cli, _METAVAR: metavar}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default),
                                 metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# The field checks several components share (``setting(..., check=...)``).
def at_least(low: float) -> Callable[[Any], str | None]:
    """A check: the value must be at least ``low``."""
    return lambda value: None if value >= low else f"must be at least {low:g}, got {value}"


def positive(value: Any) -> str | None:
    """A check: the value must be above 0."""
    return None if value > 0 else f"must be positive, got {value}"


def tcp_port(value: Any) -> str | None:
    """A check: a TCP port, 0 (pick a free one) to 65535."""
    return None if 0 <= value <= 65535 else f"must be in 0..65535, got {value}"


def _init_fields(cls: type) -> list[dataclasses.Field]:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    return [f for f in dataclasses.fields(cls) if f.init]


def field_default(f: dataclasses.Field) -> Any:
    """A field's default value (calling its factory), or ``dataclasses.MISSING``."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def defaults(cls: type) -> dict[str, Any]:
    """Every field's default, by name (fields without a default are left out)."""
    out = {}
    for f in _init_fields(cls):
        value = field_default(f)
        if value is not dataclasses.MISSING:
            out[f.name] = value
    return out


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - unresolvable annotations: coerce by the default's type
        return {}


def _hint(cls: type, f: dataclasses.Field) -> Any:
    hint = _hints(cls).get(f.name)
    if hint is None:
        default = field_default(f)
        hint = type(default) if default not in (None, dataclasses.MISSING) else Any
    return hint


def _type_text(hint: Any) -> str:
    if hint is Any:
        return "a value"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_text(a) for a in typing.get_args(hint))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    name = getattr(origin or hint, "__name__", str(hint))
    return {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
            "list": "a list", "tuple": "a list", "dict": "an object"}.get(name, name)


class _Mismatch(Exception):
    pass


def _coerce(value: Any, hint: Any) -> Any:
    """``value`` as type ``hint``; strings (from the command line) are parsed."""
    if hint is Any or hint is object:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is typing.Literal:
        if value in args:
            return value
        for arg in args:
            if isinstance(value, str) and str(arg) == value:
                return arg
        raise _Mismatch
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise _Mismatch
    if hint is int:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if hint is float:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # --config model=123 parses as JSON 123; the field wants text
        raise _Mismatch
    if hint is Path or (isinstance(hint, type) and issubclass(hint, Path)):
        if isinstance(value, (str, Path)):
            return Path(value)
        raise _Mismatch
    container = origin or hint
    if container in (list, tuple, set, frozenset, Sequence):
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError:
                    raise _Mismatch from None
            else:
                value = [part.strip() for part in text.split(",") if part.strip()]
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise _Mismatch
        if container is tuple and len(args) == 2 and args[1] is Ellipsis:
            items = [_coerce(v, args[0]) for v in value]
        elif container is tuple and args:
            if len(args) != len(value):
                raise _Mismatch
            items = [_coerce(v, a) for v, a in zip(value, args)]
        else:
            items = [_coerce(v, args[0]) for v in value] if args else list(value)
        return tuple(items) if container is tuple else (
            container(items) if container in (set, frozenset) else items)
    if container is dict or container is Mapping:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise _Mismatch from None
        if not isinstance(value, dict):
            raise _Mismatch
        if len(args) == 2:
            return {_coerce(k, args[0]): _coerce(v, args[1]) for k, v in value.items()}
        return dict(value)
    if isinstance(hint, type):
        if isinstance(value, hint):
            return value
        raise _Mismatch
    return value


def check_value(cls: type, name: str, value: Any, where: str = "config") -> Any:
    """One field's value coerced and validated (choices, check), or a UsageError."""
    fields = {f.name: f for f in _init_fields(cls)}
    if name not in fields:
        raise UsageError(f"{where}: unknown setting {name!r}; expected one of "
                         f"{', '.join(sorted(fields))}")
    f = fields[name]
    hint = _hint(cls, f)
    try:
        value = _coerce(value, hint)
    except _Mismatch:
        raise UsageError(f"{where}: {name} must be {_type_text(hint)}, got {value!r}") from None
    choices = f.metadata.get(_CHOICES)
    if choices is not None and value not in choices:
        raise UsageError(f"{where}: {name} must be one of "
                         f"{', '.join(str(c) for c in choices)}, got {value!r}")
    check = f.metadata.get(_CHECK)
    if check is not None and value is not None:
        problem = check(value)
        if problem:
            raise UsageError(f"{where}: {name} {problem}")
    return value


def build(cls: type[T], values: Mapping[str, Any] | None = None, where: str = "config") -> T:
    """An instance of settings dataclass ``cls`` from ``values`` (missing keys: defaults).

    An unknown key is a UsageError naming it and the valid fields; strings are coerced to
    the field's type (so ``--config epochs=3`` works); every field's check runs, then the
    dataclass's own ``__post_init__`` (its ValueError becomes a UsageError too).
    """
    checked = {name: check_value(cls, name, value, where)
               for name, value in (values or {}).items()}
    try:
        return cls(**checked)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None


def replace(instance: T, values: Mapping[str, Any], where: str = "config") -> T:
    """A copy of settings ``instance`` with ``values`` checked and applied."""
    current = {f.name: getattr(instance, f.name) for f in _init_fields(type(instance))}
    return build(type(instance), {**current, **values}, where)  # type: ignore[return-value]


def fields_doc(cls: type) -> list[tuple[str, Any, str]]:
    """``(name, default, doc)`` for every settable field, in declaration order."""
    return [(f.name, field_default(f), f.metadata.get(_DOC, "")) for f in _init_fields(cls)]


def _default_text(value: Any) -> str:
    if value is dataclasses.MISSING:
        return "required"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "none"
    return str(value)


def _param_name(prefix: str, name: str) -> str:
    return f"{prefix.replace('-', '_')}{name}"


def click_options(cls: type, *names: str, exclude: Iterable[str] = (), prefix: str = ""):
    """A decorator adding one click option per field of ``cls`` (``names`` only, if given).

    Each option defaults to ``None`` ("not given"; see :func:`given`) and its help is the
    field's doc plus ``[default: X]`` read from the dataclass. Choices become
    ``click.Choice``, booleans ``--flag/--no-flag``. ``prefix`` (``"judge-"``) prefixes the
    flag and the parameter name alike, for commands combining two components.
    """
    import click

    excluded = set(exclude)
    fields = {f.name: f for f in _init_fields(cls)}
    unknown = [n for n in [*names, *excluded] if n not in fields]
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
    chosen = [fields[n] for n in names] if names else list(fields.values())
    chosen = [f for f in chosen if f.name not in excluded]
    hints = _hints(cls)

    def decorator(func):
        # click applies decorators bottom-up; reversed keeps --help in declaration order.
        for f in reversed(chosen):
            hint = hints.get(f.name, Any)
            flag = f.metadata.get(_CLI) or f"--{prefix}{f.name.replace('_', '-')}"
            param = _param_name(prefix, f.name)
            doc = f.metadata.get(_DOC, "")
            help_text = f"{doc} [default: {_default_text(field_default(f))}]"
            kwargs: dict[str, Any] = {"default": None, "help": help_text}
            if f.metadata.get(_METAVAR):
                kwargs["metavar"] = f.metadata[_METAVAR]
            base = hint
            if typing.get_origin(hint) in (typing.Union, types.UnionType):
                rest = [a for a in typing.get_args(hint) if a is not type(None)]
                base = rest[0] if len(rest) == 1 else str
            choices = f.metadata.get(_CHOICES)
            if base is bool and choices is None:
                decls = [f"{flag}/--no-{flag[2:]}", param]
                kwargs["default"] = None
                func = click.option(*decls, **kwargs)(func)
                continue
            if choices is not None:
                kwargs["type"] = click.Choice([str(c) for c in choices])
            elif base in (int, float):
                kwargs["type"] = base
            else:
                kwargs["type"] = str  # lists, paths, text: coerced by build
            func = click.option(flag, param, **kwargs)(func)
        return func

    return decorator


def given(kwargs: Mapping[str, Any], cls: type | None = None, prefix: str = "") -> dict[str, Any]:
    """The options the user actually set (not None), to forward to :func:`build`.

    With ``cls``, only keys naming its fields are kept (a command's other options are left
    out); with ``prefix``, only keys carrying it, with the prefix removed.
    """
    pre = prefix.replace("-", "_")
    names = {f.name for f in _init_fields(cls)} if cls is not None else None
    out = {}
    for key, value in kwargs.items():
        if value is None or not key.startswith(pre):
            continue
        name = key[len(pre):]
        if names is not None and name not in names:
            continue
        out[name] = value
    return out
