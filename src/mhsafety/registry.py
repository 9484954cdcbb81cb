"""Every classifier kind by name: the one place that knows them all (floor 5).

The baseline and the encoder (``classifiers/``) and the LLM judge (``judge/``) sit below
this module, so naming them here points down, never up. ``benchmark``, ``train``,
``predict`` and the guard build and load classifiers through these functions only.

To add a kind: implement :class:`~mhsafety.classifiers.base.Classifier` in its own module
(below this floor), then add one line to :data:`KINDS` (and its extra to ``_EXTRAS`` if it
needs optional packages).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .classifiers.base import Classifier, read_manifest
from .errors import DataError, UsageError, missing_extra
from .settings import DEFAULT_SEED, check_value, fields_doc

# kind -> "module:Class"; imported lazily so heavy dependencies load only when used.
KINDS: dict[str, str] = {
    "baseline": "mhsafety.classifiers.baseline:BaselineClassifier",
    "encoder": "mhsafety.classifiers.encoder:EncoderClassifier",
    "judge": "mhsafety.judge.classifier:JudgeClassifier",
    # Guard models over an OpenAI-compatible endpoint (mhsafety.guardmodels).
    "qwen3guard": "mhsafety.guardmodels.classifier:Qwen3GuardClassifier",
    "llamaguard": "mhsafety.guardmodels.classifier:LlamaGuardClassifier",
    "shieldgemma": "mhsafety.guardmodels.classifier:ShieldGemmaClassifier",
    "wildguard": "mhsafety.guardmodels.classifier:WildGuardClassifier",
    "policy": "mhsafety.guardmodels.classifier:PolicyClassifier",
    # Several saved classifiers voting (mhsafety.guardmodels.panel).
    "panel": "mhsafety.guardmodels.panel:PanelClassifier",
}
# The pip extra that installs what a kind needs, for the "not installed" message.
_EXTRAS = {"encoder": "train", "judge": "judge", "qwen3guard": "judge", "llamaguard": "judge",
           "shieldgemma": "judge", "wildguard": "judge", "policy": "judge", "panel": "analysis"}


def classifier_class(kind: str) -> type[Classifier]:
    """The class registered for ``kind``; a missing optional dependency is a UsageError."""
    if kind not in KINDS:
        raise UsageError(f"unknown classifier kind {kind!r}; expected one of {', '.join(KINDS)}")
    module_name, _, attr = KINDS[kind].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and not exc.name.startswith("mhsafety"):
            raise missing_extra(exc.name, _EXTRAS.get(kind, "all")) from None
        raise
    cls = getattr(module, attr)
    if hasattr(cls, "load_member"):  # a kind made of other checkpoints (the panel)
        cls.load_member = staticmethod(load_classifier)
    return cls


def checked_config(spec: str, config: Mapping[str, Any],
                   where: str = "--config") -> dict[str, Any]:
    """``config`` for the kind of ``spec``, each key checked against the kind's settings
    dataclass (``config_class``) and each value coerced to its field's type.

    An unknown key is one sentence naming it and the valid keys. Kinds without a settings
    dataclass take their config unchecked (their constructor checks it).
    """
    cls = classifier_class(spec.partition(":")[0])
    settings_cls = cls.config_class
    if settings_cls is None:
        return dict(config)
    names = {name for name, _, _ in fields_doc(settings_cls)}
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key in cls.extra_config:
            out[key] = value
        elif key in names:
            out[key] = check_value(settings_cls, key, value, where)
        else:
            valid = ", ".join(sorted(names | cls.extra_config))
            raise UsageError(f"{where}: {cls.kind} has no setting {key!r}; expected one of "
                             f"{valid}")
    return out


def create_classifier(spec: str, seed: int = DEFAULT_SEED, **config: Any) -> Classifier:
    """An untrained classifier from a system spec: ``baseline``, ``encoder:NAME_OR_PATH``,
    ``judge:...``; ``seed`` and ``config`` (checked by :func:`checked_config`) go to its
    constructor."""
    kind, _, argument = spec.partition(":")
    return classifier_class(kind).from_spec(argument, seed=seed,
                                            **checked_config(spec, config, "config"))


def load_classifier(directory: str | os.PathLike[str],
                    expected: type[Classifier] | None = None) -> Classifier:
    """Load any saved classifier; its manifest says which kind it is.

    With ``expected``, a checkpoint of another kind is a DataError.
    """
    manifest = read_manifest(directory)
    if manifest.get("kind") not in KINDS:
        raise DataError(f"{Path(directory) / 'manifest.json'}: unknown checkpoint kind "
                        f"{manifest.get('kind')!r}; expected one of {', '.join(KINDS)}")
    target = classifier_class(manifest["kind"])
    if expected is not None and not issubclass(target, expected):
        raise DataError(f"{directory}: is a {manifest['kind']!r} checkpoint, "
                        f"expected {expected.kind!r}")
    return target.load_from(directory, manifest)


def model_spec(model: str) -> str:
    """The spec for ``train --model``: ``baseline``, a ``kind:arg`` spec, or an encoder name.

    A Hugging Face name has no colon (``bert-base-chinese``, ``org/name``) and means an
    encoder, as does a local folder that exists; ``KIND:...`` with any other KIND is a
    UsageError naming the known kinds, never a model name to look up.
    """
    kind, colon, _ = model.partition(":")
    if model == "baseline" or kind in KINDS:
        return model
    if colon and not Path(model).exists():
        raise UsageError(f"unknown classifier kind {kind!r} in {model!r}; expected baseline, "
                         f"{', '.join(k + ':...' for k in KINDS if k != 'baseline')}, or a "
                         "Hugging Face encoder name or path without a colon")
    return f"encoder:{model}"  # a Hugging Face model name or a local path
