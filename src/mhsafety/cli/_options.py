"""Options shared by train, predict and benchmark: seeds and KEY=VALUE classifier settings."""

from __future__ import annotations

import json
from typing import Any

import click

from ..errors import UsageError


class _GreedyIntsOption(click.Option):
    """An option that also takes the integer tokens after its value: ``--seeds 42 43 44``.

    Click options take one value each; seeds are commonly written space-separated (as in
    the paper's scripts), so the following integer-looking tokens are folded into the value.
    """

    def add_to_parser(self, parser: Any, ctx: click.Context) -> Any:
        result = super().add_to_parser(parser, ctx)
        for name in self.opts:
            option = parser._long_opt.get(name) or parser._short_opt.get(name)
            if option is None:
                continue
            original = option.process

            def process(value: Any, state: Any, original: Any = original) -> None:
                values = [value]
                while state.rargs and state.rargs[0].isdigit():
                    values.append(state.rargs.pop(0))
                original(",".join(values), state)

            option.process = process
        return result


def seeds_option(default: str):
    return click.option("--seeds", cls=_GreedyIntsOption, default=default, show_default=True,
                        help="Seeds, one run (or checkpoint) per seed: '42,43,44' or "
                             "'42 43 44'.")


config_option = click.option(
    "--config", multiple=True, metavar="KEY=VALUE",
    help="A classifier setting (repeatable); VALUE is read as JSON if it parses, else as text, "
         "e.g. --config C=2 or --config c_grid=[1,4]. In benchmark, SYSTEM.KEY=VALUE sets it "
         "for one system only (SYSTEM: its name or its kind, e.g. encoder.epochs=1).",
)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise UsageError(f"--seeds must be integers (e.g. 42,43 or 42 43), got {text!r}") from None
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
