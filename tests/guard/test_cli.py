"""`mhsafety check` (reply, items from stdin or a file, calibrate) and `serve` usage."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from mhsafety.cli import cli


def run(args, input=None):
    return CliRunner().invoke(cli, args, input=input, catch_exceptions=True)


def test_check_one_item(fake_kind, fake_checkpoint):
    result = run(["check", "reply", "--checkpoint", str(fake_checkpoint), "--context",
                  "[seeker]hi", "--response", "this is unsafe"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["decision"] == "unsafe" and body["label_name"] == "Toxic Language"


def test_check_jsonl_from_stdin_in_order(fake_kind, fake_checkpoint):
    lines = [{"id": "a", "context": "c", "response": "fine"},
             {"context": "[seeker]c", "response": "unsafe"},
             {"id": "c", "context": "c", "response": "RAISE"}]
    stdin = "\n".join(json.dumps(line) for line in lines) + "\n"
    result = run(["check", "items", "--checkpoint", str(fake_checkpoint), "--exit-code"],
                 input=stdin)
    out = [json.loads(line) for line in result.output.splitlines()]
    # One model call for the whole input: RAISE makes every item unverified (fail closed).
    assert [r["id"] for r in out] == ["a", "1", "c"]  # 0-based index, as `predict`
    assert all(r["decision"] == "unverified" for r in out)
    assert result.exit_code == 1
    good = run(["check", "items", "--checkpoint", str(fake_checkpoint), "--exit-code"],
               input=json.dumps(lines[0]) + "\n")
    assert good.exit_code == 0 and json.loads(good.output)["decision"] == "safe"


def test_check_bad_stdin_names_the_line(fake_kind, fake_checkpoint):
    from mhsafety.errors import DataError

    result = run(["check", "items", "--checkpoint", str(fake_checkpoint)],
                 input='{"context": "a", "response": "b"}\n{"context": "a"}\n')
    assert isinstance(result.exception, DataError)
    assert "<stdin>" in str(result.exception)
    assert "missing field 'response'" in str(result.exception)
    assert result.output == ""  # nothing screened before the input is valid


def test_check_usage_errors(fake_kind, fake_checkpoint, tmp_path):
    from mhsafety.errors import UsageError

    one = ["check", "reply", "--context", "a", "--response", "b"]
    ckpt = ["--checkpoint", str(fake_checkpoint)]
    for args, message in (
            (one, "missing setting 'checkpoint'"),
            (one + ckpt + ["--no-rules", "--rules-file", str(tmp_path / "r.json")],
             "rules_file"),
            (one + ckpt + ["--escalate-to", str(fake_checkpoint)], "both"),
            (one + ckpt + ["--band", "0.3,0.6"], "both"),
            (one + ckpt + ["--threshold", "nan"], "threshold"),
            (one + ckpt + ["--escalate-threshold", "0.3"], "escalate_threshold")):
        result = run(args)
        assert isinstance(result.exception, UsageError), args
        assert message in str(result.exception), (args, str(result.exception))
    # Options of one job are not options of another: click refuses them (exit 2).
    for args in (["check", "reply", *ckpt, "--context", "a"],
                 ["check", "items", *ckpt, "--write"],
                 ["check", "calibrate", "x.jsonl", *ckpt, "--escalate-to", "d"]):
        assert run(args).exit_code == 2, args


def test_calibrate_and_write(fake_kind, fake_checkpoint, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(fake_checkpoint, ckpt)
    data = tmp_path / "dev.jsonl"
    rows = [("unsafe", 4), ("border", 2), ("fine", 7), ("fine", 7)]
    data.write_text("".join(json.dumps({"context": f"c{i}", "response": r, "label": lab})
                            + "\n" for i, (r, lab) in enumerate(rows)))
    result = run(["check", "calibrate", str(data), "--checkpoint", str(ckpt),
                  "--target-recall", "1.0", "--folds", "2", "--write", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["in_sample_unsafe_recall"] == 1.0 and body["in_sample_false_alarm_rate"] == 0.0
    assert body["oos_unsafe_recall"]["n"] == 2 and body["folds"] == 2
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert manifest["extra"]["guard_threshold"] == pytest.approx(body["threshold"])
    # The stored threshold is the new default.
    border = run(["check", "reply", "--checkpoint", str(ckpt), "--context", "c", "--response",
                  "border"])
    assert json.loads(border.output)["decision"] == "unsafe"


def test_serve_refuses_an_empty_token(fake_kind, fake_checkpoint, monkeypatch):
    from mhsafety.errors import UsageError

    monkeypatch.setenv("MHSAFETY_GUARD_TOKEN", " ")
    result = run(["serve", "--checkpoint", str(fake_checkpoint), "--port", "0"])
    assert isinstance(result.exception, UsageError)
    assert "MHSAFETY_GUARD_TOKEN is set but empty" in str(result.exception)


def test_serve_missing_checkpoint_is_one_sentence(tmp_path):
    from mhsafety.errors import DataError

    result = run(["serve", "--checkpoint", str(tmp_path / "nope")])
    assert isinstance(result.exception, DataError)
    assert "no such checkpoint folder" in str(result.exception)


def test_serve_options_come_from_service_config():
    """One home for the service's defaults: every ServiceConfig field but the token (and
    the gateway, whose own fields are options) is an option of `serve`, its help showing the
    dataclass default; nothing given means defaults."""
    from mhsafety.guard.gateway import GatewayConfig
    from mhsafety.guard.service import ServiceConfig
    from mhsafety.settings import fields_doc

    help_text = " ".join(run(["serve", "--help"]).output.split())
    for name, default, doc in fields_doc(GatewayConfig):
        assert "--" + name.replace("_", "-") in help_text, name
    for name, default, doc in fields_doc(ServiceConfig):
        if name == "token":
            assert "--token " not in help_text  # secrets come from the environment only
            continue
        if name == "gateway":
            assert "--gateway " not in help_text
            continue
        flag = "--timeout" if name == "timeout_s" else "--" + name.replace("_", "-")
        assert flag in help_text, name
        assert f"[default: {default}]" in help_text, name
