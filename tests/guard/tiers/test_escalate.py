"""The cascade (a fast first tier, an LLM judge for the uncertain band) and the LLM backend,
against the bundled OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mhsafety.cli import cli
from mhsafety.guard import NO_RULES, Guard, ModelTier
from mhsafety.testing.fakeserver import FakeServer


@pytest.fixture
def judge_server():
    server = FakeServer(latency=0.0, hang_s=5.0).start()
    server.responder = lambda prompt, body: "Toxic Language"
    yield server
    server.stop()


def make_judge(server, path, **config):
    from mhsafety.registry import create_classifier

    settings = {"work_dir": str(path.parent / f"{path.name}-work"), "timeout": 1.0,
                "max_attempts": 1, "concurrency": 4, "backoff_base": 0.01, "rounds": 1}
    settings.update(config)
    create_classifier(f"judge:fake-judge@{server.url}", seed=0, **settings).save(path)
    return path


# The scripted first tier (tests/helpers/fakeclf.py): "fine" P(safe) 0.91, "border" 0.46,
# "unsafe" 0.21.
ITEMS = [("[seeker]c", "fine"), ("[seeker]c", "border"), ("[seeker]c", "unsafe")]


def test_first_tier_decides_outside_the_band_and_the_judge_inside(
        fake_kind, fake_checkpoint, judge_server, tmp_path):
    judge = make_judge(judge_server, tmp_path / "judge")
    guard = Guard.load(fake_checkpoint, escalate_to=judge, band="0.3,0.6", rules=NO_RULES)
    fine, border, unsafe = guard.check_many(ITEMS)
    assert (fine.tier, fine.decision) == ("model", "safe")
    assert "outside the escalation band [0.3, 0.6]" in fine.why
    assert (unsafe.tier, unsafe.label_name) == ("model", "Toxic Language")
    assert border.tier == "escalation" and border.label_name == "Toxic Language"
    assert border.why.startswith("escalated: first-tier P(safe) 0.4")
    assert judge_server.requests == 1  # only the uncertain item reached the judge
    assert guard.describe()["escalation"]["band"] == [0.3, 0.6]


def test_llm_backend_probabilities_come_from_logprobs_and_nothing_stays_on_disk(
        judge_server, tmp_path):
    judge_server.responder = lambda prompt, body: "8"  # Safe Response, as a number
    judge = make_judge(judge_server, tmp_path / "judge", output="number", logprobs=True)
    result = Guard.load(judge, rules=NO_RULES).check("[seeker]最近总是失眠", "[supporter]能说说吗？")
    # The fake server puts 0.7 on the answer's token and shares 0.3 among the others.
    assert result.decision == "safe" and result.p_safe == pytest.approx(0.7, abs=1e-6)
    assert min(result.probabilities.values()) == pytest.approx(0.3 / 7, abs=1e-6)
    # A guard keeps no answer log of the dialogues it screened.
    assert not (tmp_path / "judge-work").exists()


def test_judge_that_cannot_tell_gives_unverified_with_the_reason(
        fake_kind, fake_checkpoint, judge_server, tmp_path):
    judge_server.responder = lambda prompt, body: "I cannot tell"
    judge = make_judge(judge_server, tmp_path / "judge")
    # The judge alone (the LLM backend) and as the cascade's second tier.
    alone = Guard.load(judge, rules=NO_RULES).check("[seeker]c", "border")
    assert alone.decision == "unverified" and not alone.safe
    assert "unparseable answer" in alone.reason and "cannot tell" in alone.reason
    assert alone.label is None and alone.action == "handover"
    guard = Guard.load(fake_checkpoint, escalate_to=judge, band="0.3,0.6", rules=NO_RULES)
    border = guard.check("[seeker]c", "border")
    assert border.decision == "unverified" and border.tier == "escalation"
    assert border.reason.startswith("escalation tier:")


def test_judge_server_down_fails_closed_and_is_not_ready(
        fake_kind, fake_checkpoint, judge_server, tmp_path):
    judge = make_judge(judge_server, tmp_path / "judge")
    judge_server.stop()
    tier = ModelTier.load(judge)
    ready, detail = tier.readiness()
    assert not ready and "unreachable" in detail
    result = Guard.load(judge, rules=NO_RULES, timeout=10).check("[seeker]c", "fine")
    assert result.decision == "unverified" and result.reason


def test_cascade_needs_both_halves(fake_kind, fake_checkpoint):
    from mhsafety.errors import UsageError

    with pytest.raises(UsageError, match="both"):
        Guard.load(fake_checkpoint, band="0.3,0.6")
    for band in ("0.6,0.3", "0.3", "a,b", "0.2,1.5"):
        with pytest.raises(UsageError, match="band"):
            Guard.load(fake_checkpoint, escalate_to=fake_checkpoint, band=band)


def test_cascade_calibration_reports_each_band(fake_kind, fake_checkpoint, judge_server,
                                               tmp_path):
    judge = make_judge(judge_server, tmp_path / "judge")
    data = tmp_path / "dev.jsonl"
    rows = [("fine", 7), ("fine", 7), ("border", 2), ("border", 7), ("unsafe", 4)]
    data.write_text("".join(json.dumps({"context": f"c{i}", "response": r, "label": lab})
                            + "\n" for i, (r, lab) in enumerate(rows)))
    result = CliRunner().invoke(cli, ["check", "bands", str(data), "--checkpoint",
                                      str(fake_checkpoint), "--escalate-to", str(judge),
                                      "--bands", "0.3,0.6 0.5,0.6", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    wide, narrow = body["rows"]
    # Band 0.3-0.6 sends both "border" items to the judge (which flags them): 2 of 5.
    assert wide["escalated"]["count"] == 2 and wide["unsafe_recall"]["value"] == 1.0
    assert wide["false_alarm_rate"]["count"] == 1  # the safe "border" item
    assert narrow["escalated"]["count"] == 0
    assert body["n_items"] == 5 and "mean_latency_ms" in wide


def test_check_and_predict_on_a_judge_that_cannot_tell(judge_server, tmp_path):
    """Issue 11's case end to end: `check` says unverified with the reason, `predict`'s
    record says pred null with the same reason."""
    judge_server.responder = lambda prompt, body: "I cannot tell"
    data = tmp_path / "items.jsonl"
    data.write_text(json.dumps({"context": "[seeker]最近总是失眠", "response": "[supporter]嗯",
                                "label": 7}, ensure_ascii=False) + "\n", encoding="utf-8")
    ckpt = tmp_path / "judge"
    trained = CliRunner().invoke(cli, ["train", "--model", f"judge:fake-judge@{judge_server.url}",
                                       "--train", str(data), "--config", "rounds=1",
                                       "--config", "max_attempts=1", "--out", str(ckpt)])
    assert trained.exit_code == 0, trained.output
    checked = CliRunner().invoke(cli, ["check", "items", "--checkpoint", str(ckpt), "--input",
                                       str(data), "--no-rules"])
    assert checked.exit_code == 0, checked.output
    result = json.loads(checked.output)
    assert result["decision"] == "unverified" and "unparseable answer" in result["reason"]
    out = tmp_path / "pred.jsonl"
    # The judge's shots come from this same file: predict refuses that unless asked.
    predicted = CliRunner().invoke(cli, ["predict", "--checkpoint", str(ckpt), "--data",
                                         str(data), "--out", str(out), "--allow-overlap"])
    assert predicted.exit_code == 0, predicted.output
    record = json.loads(out.read_text().splitlines()[0])
    assert record["pred"] is None and "unparseable answer" in record["error"]


def test_the_judge_tier_writes_nothing_with_a_read_only_tmpdir(tmp_path):
    """The guard's judge asks in memory: no work folder, no temporary file (every file event
    of the check audited in a child whose TMPDIR, HOME and cwd are read-only and empty)."""
    from tests.helpers.nofiles import run_auditing_files

    ckpt = str(tmp_path / "judge")
    touched = run_auditing_files(f"""
        from mhsafety.guard import NO_RULES, Guard
        from mhsafety.registry import create_classifier
        from mhsafety.testing import FakeServer, constant
        with FakeServer(constant("Safe Response")) as server:
            create_classifier(f"judge:fake-judge@{{server.url}}", rounds=1).save({ckpt!r})
            guard = Guard.load({ckpt!r}, rules=NO_RULES)
            with audited():
                result = guard.check("[seeker]最近总是失眠", "[supporter]能说说吗？")
            assert result.decision == "safe" and server.requests == 1, result
    """, tmp_path)
    assert touched == []
