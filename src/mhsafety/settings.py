"""One home per setting: the dataclass fields that hold each component's defaults.

A component (the judge, the encoder, the baseline, the guard service, the annotation server)
declares its settings once, as a :class:`Settings` dataclass whose fields are made by
:func:`setting`::

    @dataclass(frozen=True)
    class ServiceConfig(Settings):
        port: int = setting(8000, "TCP port to listen on.", check=tcp_port)

        def check_together(self) -> None:  # optional: rules across fields
            ...

Constructing one checks it, once, in :meth:`Settings.__post_init__`: each field's value is
coerced to its type (``"3"`` -> 3 for an int), then its ``choices`` and ``check`` run, then
the class's :meth:`~Settings.check_together`. A bad value is a :class:`SettingsError` that
names the parameter (the field), never a command-line flag.

Everything else is derived from the declaration: :func:`build` makes an instance from an
untyped mapping (``--config KEY=VALUE`` strings, JSON) and refuses unknown keys;
:func:`click_options` adds one CLI option per field whose help shows the dataclass default
(never a copy of it) and whose own default is ``None`` ("not given"); :func:`given` keeps
only what the user set, and :func:`build_from_options` builds from it with errors naming the
flags; :func:`fields_doc` lists the fields for help pages and docs.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import UsageError

if TYPE_CHECKING:
    from typing_extensions import Self

T = TypeVar("T")

# The seed every seeded piece (splits, classifiers, statistics, the first benchmark run)
# starts from.
DEFAULT_SEED = 42

# Keys of a field's metadata; everything below reads them, nothing else defines them.
_DOC, _CHOICES, _CHECK, _CLI, _METAVAR = "doc", "choices", "check", "cli", "metavar"
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class SettingsError(UsageError):
    """A bad setting, in one sentence that names parameters (field names).

    ``template`` holds ``{param}`` placeholders, one per name in ``params``; ``str(error)``
    fills them with the names themselves, :meth:`render` with anything else (a command line
    fills them with its flags, see :func:`build_from_options`).
    """

    def __init__(self, template: str, *params: str, where: str = "") -> None:
        self.template, self.params, self.where = template, params, where
        super().__init__(self.render())

    @classmethod
    def about(cls, param: str, problem: str, where: str = "") -> SettingsError:
        """``"<param> <problem>"``, the problem text taken literally."""
        literal = problem.replace("{", "{{").replace("}", "}}")
        return cls(f"{{{param}}} {literal}", param, where=where)

    def render(self, name: Callable[[str], str] = str) -> str:
        text = self.template.format(**{p: name(p) for p in self.params})
        return f"{self.where}: {text}" if self.where else text

    def at(self, where: str) -> SettingsError:
        """The same error, said to come from ``where`` (``"--config"``, ``"judge config"``)."""
        return SettingsError(self.template, *self.params, where=where)


def setting(default: Any, doc: str, *, choices: Sequence[Any] | None = None,
            check: Callable[[Any], str | None] | None = None, cli: str | None = None,
            metavar: str | None = None) -> Any:
    """A dataclass field holding one setting: its default, one-line doc and validation.

    ``choices`` limits the values; ``check(value)`` returns an error text (or None when the
    value is fine); ``cli`` overrides the option name (``--api-base``); ``metavar`` the
    placeholder in help. Mutable defaults (list, dict) are copied per instance.
    """
    metadata = {_DOC: doc, _CHOICES: tuple(choices) if choices is not None else None,
                _CHECK: check, _CLI: cli, _METAVAR: metavar}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default),
                                 metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class Settings:
    """Base of every settings dataclass: subclass it and declare fields with :func:`setting`.

    The one generic ``__post_init__`` coerces and checks every field from its metadata, then
    calls :meth:`check_together`. Declare the subclass ``@dataclass(frozen=True)`` so a
    component's settings change only through :meth:`replace` (a checked copy).
    """

    def __post_init__(self) -> None:
        cls = type(self)
        for f in _init_fields(cls):
            value = getattr(self, f.name)
            checked = _checked(cls, f, value)
            if checked is not value:
                object.__setattr__(self, f.name, checked)  # frozen subclasses too
        self.check_together()

    def check_together(self) -> None:
        """Rules across fields; raise :class:`SettingsError` naming the parameters."""

    def check(self) -> None:
        """Check again (an instance whose fields were set by hand, say)."""
        Settings.__post_init__(self)

    def replace(self, **changes: Any) -> Self:
        """A checked copy with ``changes`` applied (unknown names: a SettingsError)."""
        unknown = sorted(set(changes) - {f.name for f in _init_fields(type(self))})
        if unknown:
            raise _unknown(type(self), unknown[0], "settings")
        return dataclasses.replace(self, **changes)  # type: ignore[type-var,return-value]

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (JSON-able when the values are)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]


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


@functools.cache
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
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_text(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    name = getattr(typing.get_origin(hint) or hint, "__name__", str(hint))
    return {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
            "list": "a list", "tuple": "a list", "dict": "a JSON object", "Path": "a path"}.get(name, "a value")


class _Mismatch(Exception):
    pass


def _coerce(value: Any, hint: Any) -> Any:
    """``value`` as type ``hint``; strings (from the command line) are parsed.

    The types settings fields use: bool, int, float, str, a path, ``X | None``, ``list[X]``
    / ``tuple[X, ...]`` (JSON or comma-separated) and ``dict`` (a JSON object).
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str)
                                                     and value.lower() in ("none", "null"))):
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return _coerce(value, arg)
                except _Mismatch:
                    continue
        raise _Mismatch
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise _Mismatch
    if hint in (int, float):
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, str):
            try:
                value = float(value.strip()) if hint is float else int(value.strip())
            except ValueError:
                raise _Mismatch from None
        if hint is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if hint is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, hint):
            raise _Mismatch
        return value
    if hint is Path:
        if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
            raise _Mismatch
        return Path(value)
    if hint is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # --config model=123 parses as JSON 123; the field wants text
        if not isinstance(value, str):
            raise _Mismatch
        return value
    if (origin or hint) in (list, tuple):
        if isinstance(value, str):
            text = value.strip()
            try:
                value = (json.loads(text) if text.startswith("[") else
                         [part.strip() for part in text.split(",") if part.strip()])
            except json.JSONDecodeError:
                raise _Mismatch from None
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        items = [_coerce(v, args[0]) for v in value] if args else list(value)
        return tuple(items) if (origin or hint) is tuple else items
    if (origin or hint) is dict:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise _Mismatch from None
        if not isinstance(value, dict):
            raise _Mismatch
        return dict(value)
    if hint is Any or isinstance(value, hint):
        return value
    raise _Mismatch


def _checked(cls: type, f: dataclasses.Field, value: Any) -> Any:
    """``value`` for field ``f`` coerced to its type, its choices and check applied."""
    hint = _hint(cls, f)
    try:
        value = _coerce(value, hint)
    except _Mismatch:
        raise SettingsError.about(f.name, f"must be {_type_text(hint)}, got {value!r}") from None
    choices = f.metadata.get(_CHOICES)
    if choices is not None and value is not None and value not in choices:
        # None got past _coerce only where the field's type admits it ("not set").
        raise SettingsError.about(f.name, f"must be one of {', '.join(str(c) for c in choices)}"
                                          f", got {value!r}")
    check = f.metadata.get(_CHECK)
    if check is not None and value is not None:
        problem = check(value)
        if problem:
            raise SettingsError.about(f.name, problem)
    return value


def _unknown(cls: type, name: str, where: str) -> UsageError:
    valid = ", ".join(sorted(f.name for f in _init_fields(cls)))
    return UsageError(f"{where}: unknown setting {name!r}; expected one of {valid}")


def check_value(cls: type, name: str, value: Any, where: str = "config") -> Any:
    """One field's value coerced and validated (choices, check), or a UsageError."""
    fields = {f.name: f for f in _init_fields(cls)}
    if name not in fields:
        raise _unknown(cls, name, where)
    try:
        return _checked(cls, fields[name], value)
    except SettingsError as exc:
        raise exc.at(where) from None


def build(cls: type[T], values: Mapping[str, Any] | None = None, where: str = "config") -> T:
    """An instance of settings dataclass ``cls`` from untyped ``values`` (missing: defaults).

    An unknown key is a UsageError naming it and the valid fields; strings are coerced to
    the field's type (so ``--config epochs=3`` works) and every check runs; errors start
    with ``where``. Plain dataclasses (not :class:`Settings`) get their fields checked here
    and a ValueError of their own ``__post_init__`` becomes a UsageError.
    """
    values = dict(values or {})
    if issubclass(cls, Settings):
        fields = {f.name for f in _init_fields(cls)}
        unknown = [name for name in values if name not in fields]
        if unknown:
            raise _unknown(cls, unknown[0], where)
    else:
        values = {name: check_value(cls, name, value, where) for name, value in values.items()}
    try:
        return cls(**values)
    except SettingsError as exc:
        raise exc.at(where) from None
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None


def replace(instance: T, values: Mapping[str, Any], where: str = "config") -> T:
    """A copy of settings ``instance`` with ``values`` checked and applied."""
    current = {f.name: getattr(instance, f.name) for f in _init_fields(type(instance))}
    return build(type(instance), {**current, **values}, where)  # type: ignore[return-value]


def fields_doc(cls: type) -> list[tuple[str, Any, str]]:
    """``(name, default, doc)`` for every settable field, in declaration order."""
    return [(f.name, field_default(f), f.metadata.get(_DOC, "")) for f in _init_fields(cls)]


def default_text(value: Any) -> str:
    """A default as help pages and docs show it (``[default: X]``)."""
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


def flag(cls: type, name: str, prefix: str = "") -> str:
    """The command-line flag :func:`click_options` gives field ``name`` of ``cls``."""
    fields = {f.name: f for f in _init_fields(cls)}
    f = fields.get(name)
    custom = f.metadata.get(_CLI) if f is not None else None
    return custom or f"--{prefix}{name.replace('_', '-')}"


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
            name = flag(cls, f.name, prefix)
            param = _param_name(prefix, f.name)
            doc = f.metadata.get(_DOC, "")
            help_text = f"{doc} [default: {default_text(field_default(f))}]"
            kwargs: dict[str, Any] = {"default": None, "help": help_text}
            if f.metadata.get(_METAVAR):
                kwargs["metavar"] = f.metadata[_METAVAR]
            base = hint
            if typing.get_origin(hint) in (typing.Union, types.UnionType):
                rest = [a for a in typing.get_args(hint) if a is not type(None)]
                base = rest[0] if len(rest) == 1 else str
            choices = f.metadata.get(_CHOICES)
            if base is bool and choices is None:
                func = click.option(f"{name}/--no-{name[2:]}", param, **kwargs)(func)
                continue
            if choices is not None:
                kwargs["type"] = click.Choice([str(c) for c in choices])
            elif base in (int, float):
                kwargs["type"] = base
            else:
                kwargs["type"] = str  # lists, objects, text: coerced by build
            func = click.option(name, param, **kwargs)(func)
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


def build_from_options(cls: type[T], values: Mapping[str, Any], where: str,
                       prefix: str = "", flags: Mapping[str, str] | None = None) -> T:
    """:func:`build` for a command line: errors name the flags of :func:`click_options`
    (or ``flags[name]`` for options written by hand) instead of the parameters."""
    try:
        return build(cls, values, where)
    except SettingsError as exc:
        raise in_flags(exc, cls, prefix, flags) from None


def in_flags(error: SettingsError, cls: type | None = None, prefix: str = "",
             flags: Mapping[str, str] | None = None) -> UsageError:
    """``error`` said the command line's way: each parameter as its flag (``flags[name]``,
    else the flag :func:`click_options` gives a field of ``cls``, else ``--name``)."""
    named = dict(flags or {})

    def name(param: str) -> str:
        if param in named:
            return named[param]
        if cls is not None and any(f.name == param for f in _init_fields(cls)):
            return flag(cls, param, prefix)
        return f"--{prefix}{param.replace('_', '-')}"

    return UsageError(error.render(name))
