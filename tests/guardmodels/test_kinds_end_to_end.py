"""A guard-model kind end to end: `mhsafety train --model KIND:MODEL@URL`, then `predict`,
`evaluate`, `check` and the guard library, against a fake server answering in the model's
own format."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mhsafety.cli import cli
from mhsafety.data import write_examples
from mhsafety.guard import Guard, GuardConfig
from mhsafety.guardmodels.settings import SETTINGS
from mhsafety.taxonomy import NUM_LABELS, SAFE_LABEL
from mhsafety.testing import FakeServer
from tests.helpers.guard_fakes import GoldGuardResponder


@pytest.fixture(scope="module")
def items(test_examples):
    out = []
    for label in range(NUM_LABELS):
        out += [ex for ex in test_examples if ex.label == label][:3]
    return out


def invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("family", ["llamaguard", "qwen3guard"])
def test_train_predict_evaluate_scores_100_percent_binary(family, items, tmp_path):
    data = tmp_path / "items.jsonl"
    write_examples(data, items)
    with FakeServer(GoldGuardResponder(items, SETTINGS[family]())) as server:
        invoke("train", "--model", f"{family}:fake-guard@{server.url}", "--train", data,
               "--config", "max_attempts=1", "--out", tmp_path / "ckpt")
        manifest = json.loads((tmp_path / "ckpt" / "manifest.json").read_text())
        assert manifest["kind"] == family and manifest["config"]["model"] == "fake-guard"
        invoke("predict", "--checkpoint", tmp_path / "ckpt", "--data", data, "--out",
               tmp_path / "g.preds.jsonl", "--allow-overlap")
    table = json.loads(invoke("evaluate", tmp_path / "g.preds.jsonl", "--format", "json",
                              "--extra"))
    row = table[0]
    assert row["scores"]["unsafe_recall"]["mean"] == 1.0
    assert row["invalid"] == 0
    records = [json.loads(line) for line in
               (tmp_path / "g.preds.jsonl").read_text().splitlines()]
    assert [r["unsafe"] for r in records] == [ex.label != SAFE_LABEL for ex in items]
    if family == "qwen3guard":
        assert row["scores"]["accuracy"] is None  # not defined, not 0
        assert all(r["pred"] is None and "error" not in r for r in records)
        assert "binary only" in " ".join(row["notes"])
    else:
        assert row["scores"]["accuracy"]["mean"] == 1.0


def test_a_binary_only_tier_flags_unsafe_with_its_action_and_no_category(items, tmp_path):
    from mhsafety.registry import create_classifier

    unsafe = next(ex for ex in items if ex.label != SAFE_LABEL)
    safe = next(ex for ex in items if ex.label == SAFE_LABEL)
    with FakeServer(GoldGuardResponder([unsafe, safe], SETTINGS["qwen3guard"]())) as server:
        create_classifier(f"qwen3guard:fake-guard@{server.url}", max_attempts=1,
                          unsafe_action="block").save(tmp_path / "ckpt")
        guard = Guard.from_config(GuardConfig(checkpoint=tmp_path / "ckpt", rules=False))
        flagged, passed = guard.check_many([(unsafe.context, unsafe.response),
                                            (safe.context, safe.response)])
        data = tmp_path / "items.jsonl"
        write_examples(data, [unsafe])
        line = invoke("check", "items", "--checkpoint", tmp_path / "ckpt", "--input", data,
                      "--no-rules")
    assert (flagged.decision, flagged.label, flagged.action) == ("unsafe", None, "block")
    assert "names no category" in flagged.why and flagged.tier == "model"
    assert (passed.decision, passed.label) == ("safe", SAFE_LABEL)
    result = json.loads(line)
    assert (result["decision"], result["label"], result["action"]) == ("unsafe", None, "block")


@pytest.mark.slow
def test_serve_answers_with_a_binary_only_guard_model_tier(items, tmp_path):
    """`serve` (the service the gateway puts inline) with a Qwen3Guard checkpoint."""
    import httpx

    from mhsafety.registry import create_classifier
    from tests.helpers.guard_servers import start_server, stop_server

    unsafe = next(ex for ex in items if ex.label != SAFE_LABEL)
    with FakeServer(GoldGuardResponder([unsafe], SETTINGS["qwen3guard"]())) as fake:
        create_classifier(f"qwen3guard:fake-guard@{fake.url}", max_attempts=1,
                          unsafe_action="regenerate").save(tmp_path / "ckpt")
        server = start_server(tmp_path / "ckpt", tmp_path / "serve.log", "--no-rules")
        try:
            assert httpx.get(f"{server.url}/readyz").status_code == 200
            result = httpx.post(f"{server.url}/v1/check", json={
                "context": unsafe.context, "response": unsafe.response},
                timeout=30).json()["results"][0]
        finally:
            stop_server(server)
    assert (result["decision"], result["label"], result["action"]) == \
        ("unsafe", None, "regenerate")
