"""cli/options.py: seeds written either way, KEY=VALUE settings."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from mhsafety.cli.options import SpacedListCommand, parse_config, seeds_option
from mhsafety.errors import UsageError


def _cmd():
    seen = {}

    @click.command(cls=SpacedListCommand)
    @seeds_option((42, 43))
    @click.option("--folds", type=int, default=5)
    def cmd(seeds, folds):
        seen.update(seeds=seeds, folds=folds)

    return cmd, seen


@pytest.mark.parametrize("args, seeds, folds", [
    ([], [42, 43], 5),
    (["--seeds", "1,2,3"], [1, 2, 3], 5),
    (["--seeds", "1", "2", "3", "--folds", "4"], [1, 2, 3], 4),
    (["--folds", "3", "--seeds=7", "8"], [7, 8], 3),
    (["--seeds", "9"], [9], 5),
])
def test_seeds_comma_or_space_separated(args, seeds, folds):
    cmd, seen = _cmd()
    result = CliRunner().invoke(cmd, args)
    assert result.exit_code == 0, result.output
    assert seen == {"seeds": seeds, "folds": folds}


def test_bad_seeds_are_a_usage_error():
    cmd, _ = _cmd()
    result = CliRunner().invoke(cmd, ["--seeds", "4x"])
    assert isinstance(result.exception, UsageError)
    assert "--seeds must be integers" in str(result.exception)
    result = CliRunner().invoke(cmd, ["--seeds", "1", "oops"])
    assert result.exit_code == 2  # a stray token is still refused


def test_help_shows_the_default_seeds():
    cmd, _ = _cmd()
    assert "42,43" in CliRunner().invoke(cmd, ["--help"]).output


def test_parse_config():
    assert parse_config(["C=2", "c_grid=[1,4]", "name=bert"]) == {
        "C": 2, "c_grid": [1, 4], "name": "bert"}
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_config(["oops"])
