"""Options shared by train, predict and benchmark: seeds and KEY=VALUE classifier settings."""

from __future__ import annotations

import json
from typing import Any

import click

from ..errors import UsageError


def seeds_option(default: str):
    return click.option("--seeds", default=default, show_default=True,
                        help="Comma-separated seeds, one run (or checkpoint) per seed.")


config_option = click.option(
    "--config", multiple=True, metavar="KEY=VALUE",
    help="A classifier setting (repeatable); VALUE is read as JSON if it parses, else as text, "
         "e.g. --config C=2 or --config c_grid=[1,4].",
)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds:
        raise UsageError("--seeds is empty")
    return seeds


def parse_config(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--config expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out
