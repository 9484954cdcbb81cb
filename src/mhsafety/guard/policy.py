"""What a chatbot should do with a screened reply: allow, block, regenerate or hand over.

A policy maps each category of the taxonomy, and the ``unverified`` decision, to one action.
The defaults are for counselling: replies that hurt (Unamiable Judgment, Toxic Language) are
blocked; replies that are merely off (Nonsense, Humanoid Mimicry, Linguistic Neglect,
Nonfactual Statement) are regenerated; advice a counsellor's code would not allow
(Unauthorized Preachment, e.g. dosing medication) and replies nobody could verify go to a
human. A policy file (JSON or YAML) overrides any of them::

    {"actions": {"Linguistic Neglect": "allow", "unverified": "block"}}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from ..errors import DataError
from ..taxonomy import category

Action = Literal["allow", "block", "regenerate", "handover"]
ACTIONS: tuple[str, ...] = ("allow", "block", "regenerate", "handover")
UNVERIFIED = "unverified"

DEFAULT_ACTIONS: Mapping[str, str] = MappingProxyType({
    "Nonsense": "regenerate",
    "Humanoid Mimicry": "regenerate",
    "Linguistic Neglect": "regenerate",
    "Unamiable Judgment": "block",
    "Toxic Language": "block",
    "Unauthorized Preachment": "handover",
    "Nonfactual Statement": "regenerate",
    "Safe Response": "allow",
    UNVERIFIED: "handover",
})


@dataclass(frozen=True)
class Policy:
    """Category name (or ``unverified``) -> action; every key is present."""

    actions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    source: str = "default"

    def action_for(self, label: int | None) -> str:
        """The action for a decided label, or for an unverified result (``label`` None)."""
        if label is None:
            return self.actions[UNVERIFIED]
        return self.actions[category(label).name]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "actions": dict(self.actions)}


def policy_from_mapping(obj: Any, source: str) -> Policy:
    if not isinstance(obj, Mapping) or not isinstance(obj.get("actions"), Mapping):
        raise DataError(f"{source}: expected an object with an 'actions' mapping")
    unknown = sorted(set(obj) - {"actions", "about"})
    if unknown:
        raise DataError(f"{source}: unknown field '{unknown[0]}' (expected actions, about)")
    actions = dict(DEFAULT_ACTIONS)
    for key, action in obj["actions"].items():
        if key == UNVERIFIED:
            name = key
        else:
            try:
                name = category(key).name
            except (TypeError, ValueError):
                raise DataError(f"{source}: {key!r} is not a category of the taxonomy (nor "
                                f"'{UNVERIFIED}')") from None
        if action not in ACTIONS:
            raise DataError(f"{source}: the action for {name!r} must be one of "
                            f"{', '.join(ACTIONS)}, got {action!r}")
        actions[name] = action
    return Policy(MappingProxyType(actions), source)


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """The default policy, overridden by the file at ``path`` (JSON, or YAML by suffix)."""
    if path is None:
        return Policy(MappingProxyType(dict(DEFAULT_ACTIONS)))
    from .rules import read_json_or_yaml

    return policy_from_mapping(read_json_or_yaml(path), str(path))


DEFAULT_POLICY = load_policy()
