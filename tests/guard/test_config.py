"""GuardConfig: one home for a guard's settings; `check` and `serve` options come from it,
and workers receive it as the object."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner

from mhsafety.cli import cli
from mhsafety.errors import UsageError
from mhsafety.guard import GuardConfig, guard_config
from mhsafety.settings import fields_doc

COMMANDS = (["check", "reply"], ["check", "items"], ["check", "dialogues"], ["serve"])


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_field_is_an_option_with_the_dataclass_default(command):
    help_text = " ".join(CliRunner().invoke(cli, [*command, "--help"]).output.split())
    for name, default, doc in fields_doc(GuardConfig):
        assert flag(name) in help_text, (command, name)
        assert " ".join(doc.split()[:3]) in help_text, (command, name)


def test_calibration_commands_take_the_fields_that_apply():
    calibrate = CliRunner().invoke(cli, ["check", "calibrate", "--help"]).output
    assert "--threshold" in calibrate and "--escalate-to" not in calibrate
    bands = CliRunner().invoke(cli, ["check", "bands", "--help"]).output
    assert "--escalate-to" in bands and "--band " not in bands


def test_untyped_values_are_coerced_and_checked_once():
    config = guard_config({"checkpoint": "ckpt", "band": "0.3,0.6", "escalate_to": "j",
                           "threshold": "0.4", "rules": "false"})
    assert config.band == (0.3, 0.6) and config.threshold == 0.4 and config.rules is False
    assert isinstance(config.checkpoint, Path)
    for values, parameter in (({"threshold": 2}, "threshold"),
                              ({"band": (0.6, 0.3), "escalate_to": "j"}, "band"),
                              ({"band": (0.3, 0.6)}, "escalate_to"),
                              ({"runtime": "gpu"}, "runtime"),
                              ({"rules": False, "rules_file": "r.json"}, "rules_file")):
        with pytest.raises(UsageError, match=parameter) as info:
            GuardConfig(checkpoint=Path("ckpt"), **values)
        assert "--" not in str(info.value)  # library errors name parameters, not flags
    with pytest.raises(UsageError, match="checkpoint"):
        guard_config({})


def test_workers_receive_the_object():
    config = guard_config({"checkpoint": "ckpt", "band": "0.2,0.8", "escalate_to": "j"})
    assert pickle.loads(pickle.dumps(config)) == config


def test_from_config_builds_the_described_tiers(fake_kind, fake_checkpoint):
    from mhsafety.guard import Guard

    guard = Guard.from_config(GuardConfig(checkpoint=fake_checkpoint, threshold=0.3,
                                          escalate_to=fake_checkpoint, band=(0.2, 0.6)))
    assert [t.name for t in guard.tiers] == ["rules", "model", "escalation"]
    assert guard.threshold == 0.3 and guard.model.band == (0.2, 0.6)
    no_rules = Guard.from_config(GuardConfig(checkpoint=fake_checkpoint, rules=False))
    assert [t.name for t in no_rules.tiers] == ["model"]
