"""settings.py: one declaration per setting, everything else derived from it."""

from __future__ import annotations

from dataclasses import dataclass

import click
import pytest
from click.testing import CliRunner

from mhsafety.errors import UsageError
from mhsafety.settings import (
    Settings,
    SettingsError,
    build,
    build_from_options,
    click_options,
    defaults,
    fields_doc,
    given,
    setting,
)


def _positive(value):
    return None if value > 0 else "must be positive"


@dataclass(frozen=True)
class Demo(Settings):
    rounds: int = setting(5, "Answers per item.", check=_positive)
    temperature: float = setting(0.7, "Sampling temperature.")
    mode: str = setting("zero-shot", "Prompting mode.", choices=("zero-shot", "few-shot"))
    stream: bool = setting(False, "Stream tokens.")
    grid: list[float] = setting([1.0, 4.0], "Values of C to try.")
    model: str | None = setting(None, "Model name.", cli="--model-name")

    def check_together(self):
        if self.mode == "few-shot" and self.rounds > 9:
            raise SettingsError("{mode} few-shot allows at most 9 {rounds}", "mode", "rounds")


def test_build_uses_defaults_and_mutable_defaults_are_not_shared():
    a, b = build(Demo), build(Demo)
    assert a == Demo() and a.rounds == 5 and a.grid == [1.0, 4.0]
    assert a.grid is not b.grid


def test_build_coerces_command_line_strings():
    d = build(Demo, {"rounds": "3", "temperature": "0", "stream": "true", "grid": "1,2.5",
                     "model": 123})
    assert (d.rounds, d.temperature, d.stream, d.grid, d.model) == (3, 0.0, True, [1.0, 2.5], "123")
    assert build(Demo, {"grid": "[8]"}).grid == [8.0]
    assert build(Demo, {"model": "null"}).model is None


def test_unknown_key_names_it_and_the_valid_fields():
    with pytest.raises(UsageError) as err:
        build(Demo, {"round": 3}, where="--config")
    text = str(err.value)
    assert "'round'" in text and "rounds" in text and "temperature" in text
    assert text.startswith("--config")


@pytest.mark.parametrize("values, fragment", [
    ({"rounds": "many"}, "rounds must be an integer"),
    ({"rounds": True}, "rounds must be an integer"),
    ({"rounds": 0}, "rounds must be positive"),
    ({"mode": "one-shot"}, "mode must be one of zero-shot, few-shot"),
    ({"stream": "maybe"}, "stream must be true or false"),
    ({"mode": "few-shot", "rounds": 10}, "at most 9 rounds"),
])
def test_bad_values_are_one_sentence_usage_errors(values, fragment):
    with pytest.raises(UsageError, match=fragment):
        build(Demo, values)


def test_fields_doc_and_defaults():
    docs = fields_doc(Demo)
    assert docs[0] == ("rounds", 5, "Answers per item.")
    assert [name for name, _, _ in docs] == ["rounds", "temperature", "mode", "stream", "grid",
                                             "model"]
    assert defaults(Demo)["grid"] == [1.0, 4.0]


def _command():
    seen = {}

    @click.command()
    @click.option("--data")
    @click_options(Demo, exclude=("grid",))
    def cmd(**kwargs):
        seen["kwargs"] = kwargs
        seen["settings"] = build(Demo, given(kwargs, Demo))

    return cmd, seen


def test_click_options_default_to_not_given_and_forward_only_what_was_set():
    cmd, seen = _command()
    result = CliRunner().invoke(cmd, ["--rounds", "2", "--stream", "--data", "x"])
    assert result.exit_code == 0, result.output
    assert seen["kwargs"]["temperature"] is None and seen["kwargs"]["mode"] is None
    assert given(seen["kwargs"], Demo) == {"rounds": 2, "stream": True}
    assert seen["settings"] == Demo(rounds=2, stream=True)
    result = CliRunner().invoke(cmd, ["--no-stream", "--model-name", "m"])
    assert seen["settings"] == Demo(stream=False, model="m")


def test_click_help_shows_the_dataclass_default_and_choices():
    cmd, _ = _command()
    out = CliRunner().invoke(cmd, ["--help"]).output
    assert "Answers per item. [default: 5]" in out
    assert "zero-shot|few-shot" in out
    assert "--stream / --no-stream" in out
    assert "--grid" not in out
    bad = CliRunner().invoke(cmd, ["--mode", "x"])
    assert bad.exit_code == 2


def test_click_options_prefix_and_names():
    seen = {}

    @click.command()
    @click_options(Demo, "rounds", prefix="judge-")
    def cmd(**kwargs):
        seen.update(kwargs)

    CliRunner().invoke(cmd, ["--judge-rounds", "4"])
    assert seen == {"judge_rounds": 4}
    assert given(seen, Demo, prefix="judge-") == {"rounds": 4}
    with pytest.raises(TypeError):
        click_options(Demo, "nope")


def test_shared_checks_name_the_bound_and_the_value():
    from mhsafety.settings import at_least, positive, tcp_port

    assert at_least(1)(1) is None and at_least(1)(0) == "must be at least 1, got 0"
    assert positive(0.5) is None and positive(0) == "must be positive, got 0"
    assert tcp_port(0) is None and tcp_port(65535) is None
    assert tcp_port(65536) == "must be in 0..65535, got 65536"


def test_constructing_checks_once_without_build():
    # The one generic __post_init__: direct construction coerces and checks like build().
    d = Demo(rounds="3", grid=[1, 2])
    assert d.rounds == 3 and d.grid == [1.0, 2.0]
    with pytest.raises(SettingsError, match="^rounds must be positive") as err:
        Demo(rounds=0)
    assert err.value.params == ("rounds",)
    with pytest.raises(SettingsError, match="mode must be one of"):
        Demo(mode="x")
    with pytest.raises(SettingsError, match="few-shot allows at most 9 rounds"):
        Demo(mode="few-shot", rounds=10)


def test_replace_is_a_checked_copy_and_settings_are_frozen():
    d = Demo()
    e = d.replace(rounds="4")
    assert (d.rounds, e.rounds) == (5, 4)
    with pytest.raises(SettingsError):
        d.replace(rounds=-1)
    with pytest.raises(UsageError, match="unknown setting 'roundz'"):
        d.replace(roundz=1)
    with pytest.raises(AttributeError):
        d.rounds = 3  # type: ignore[misc]
    assert e.to_dict()["rounds"] == 4


def test_library_errors_name_parameters_and_the_cli_names_flags():
    with pytest.raises(UsageError) as lib:
        build(Demo, {"mode": "few-shot", "rounds": 10}, where="demo")
    assert str(lib.value) == "demo: mode few-shot allows at most 9 rounds"
    with pytest.raises(UsageError) as cli:
        build_from_options(Demo, {"mode": "few-shot", "rounds": 10}, "demo",
                           prefix="judge-", flags={"rounds": "--round-count"})
    assert str(cli.value) == "demo: --judge-mode few-shot allows at most 9 --round-count"
    with pytest.raises(UsageError, match="^x: --model-name must be a string"):
        build_from_options(Demo, {"model": [1]}, "x")  # a field's own cli= name


def test_a_problem_text_with_braces_is_kept_literally():
    err = SettingsError.about("grid", "must not be {}, got {1: 2}")
    assert str(err) == "grid must not be {}, got {1: 2}"


def test_every_component_settings_class_uses_the_base():
    from mhsafety.annotate.config import AnnotateServerConfig
    from mhsafety.classifiers.baseline import BaselineConfig
    from mhsafety.classifiers.encoder_config import EncoderConfig
    from mhsafety.judge.settings import JudgeSettings

    for cls in (AnnotateServerConfig, BaselineConfig, EncoderConfig, JudgeSettings):
        assert issubclass(cls, Settings), cls
        assert "__post_init__" not in vars(cls), f"{cls.__name__} checks outside the base"
        with pytest.raises(AttributeError):
            cls().x_never = 1  # frozen: no attribute can be set
