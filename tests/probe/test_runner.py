"""The audit end to end against fake targets, seekers and graders: the Done-means."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mhsafety.errors import DataError, UsageError
from mhsafety.probe.grade import Grade, Grader
from mhsafety.probe.records import read_replies
from mhsafety.probe.runner import ASKED, run_probe
from mhsafety.probe.targets import ProbeSettings
from mhsafety.taxonomy import SAFE_LABEL
from mhsafety.testing import DatasetResponder, FakeServer, MockTransport, chat_response

REPO = Path(__file__).resolve().parents[2]


def _settings(**values):
    values.setdefault("resamples", 200)
    return ProbeSettings(**values)


def test_a_replaying_target_gets_the_verdicts_of_predict(probe_split, tmp_path):
    """The Done-means: a target that replays the dataset's own responses, graded by a
    checkpoint, gets the verdicts `mhsafety predict` gives the same (context, response)."""
    from mhsafety.data import load_examples
    from mhsafety.records import read_records
    from mhsafety.training import predict_file

    _, ckpt, audit_file, audit, _ = probe_split
    predict_file(ckpt, audit_file, tmp_path / "preds.jsonl")
    by_pair = {(ex.context, ex.response_text): rec.pred for ex, rec in
               zip(load_examples(audit_file), read_records(tmp_path / "preds.jsonl"))}
    with FakeServer(DatasetResponder(audit)) as server:
        result = run_probe(_settings(targets=[f"bot=m@{server.url}"], data=audit_file,
                                     grader=str(ckpt), limit=150), tmp_path / "out")
        assert server.requests == 150
    replies = read_replies(tmp_path / "out" / "replies.jsonl")
    assert len(replies) == 150
    matched = [(r.pred, by_pair[(r.context, r.reply)]) for r in replies]
    assert all(a == b for a, b in matched)
    assert len({p for p, _ in matched}) > 1  # not a grader that says one thing
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    bot = summary["targets"]["bot"]
    assert bot["n"] == 150 and bot["ungraded"] == 0
    unsafe = sum(p != SAFE_LABEL for p, _ in matched)
    assert bot["unsafe_rate"]["observed"] == pytest.approx(unsafe / 150)
    lo, hi = bot["unsafe_rate"]["ci"]
    assert lo <= unsafe / 150 <= hi
    assert sum(bot["categories"].values()) == 150
    assert bot["tokens"]["completion_tokens"] > 0
    assert result.summary == summary


class _Picky(Grader):
    """Abstains on replies holding 'maybe'; flags 'hate' as Toxic Language (4)."""

    name, batch_size, parallel = "picky", 8, 2

    def grade(self, examples):
        return [Grade(None, None, "not sure") if "maybe" in ex.response else
                Grade(4 if "hate" in ex.response else SAFE_LABEL) for ex in examples]


def _handler(replies):
    """A MockTransport handler answering per model: ``replies[model](request) -> text``."""
    def handle(request):
        body = request.json()
        return chat_response(replies[body["model"]](body), model=body["model"])
    return handle


def test_ungraded_replies_are_counted_apart_never_safe(probe_split, tmp_path):
    _, _, audit_file, _, _ = probe_split
    thinking = "<think>they seem sad; maybe Nonsense</think>That sounds hard."
    answers = iter(["I hate you", "maybe", "", thinking] * 100)
    transport = MockTransport(_handler({"m": lambda body: next(answers)}))
    result = run_probe(_settings(targets=["bot=m@http://fake/v1"], data=audit_file,
                                 grader="unused", limit=40, concurrency=1), tmp_path / "out",
                       transport=transport, grader=_Picky())
    bot = result.summary["targets"]["bot"]
    assert bot["n"] == 40 and bot["ungraded"] == 20  # "maybe" and the empty reply
    assert bot["unsafe_rate"]["observed"] == pytest.approx(0.5)  # of the 20 graded
    replies = read_replies(tmp_path / "out" / "replies.jsonl")
    empty = [r for r in replies if r.reply == ""]
    assert empty and all(r.pred is None and "empty" in r.grader_error for r in empty)
    thought = [r for r in replies if r.reasoning]
    # The reasoning is kept but never graded: "maybe" in it did not make the grader abstain.
    assert thought and all(r.reply == "That sounds hard." and r.pred == SAFE_LABEL
                           for r in thought)
    assert all("<think>" not in r.reply for r in replies)


def test_two_targets_are_compared_on_the_same_prompts(probe_split, tmp_path):
    _, _, audit_file, _, _ = probe_split
    counter = iter(range(10**6))
    transport = MockTransport(_handler({
        "good": lambda body: "I am here with you.",
        "bad": lambda body: "I hate this" if next(counter) % 2 else "ok"}))
    result = run_probe(_settings(targets=["a=good@http://f/v1", "b=bad@http://f/v1"],
                                 data=audit_file, grader="unused", limit=30, samples=2),
                       tmp_path / "out", transport=transport, grader=_Picky())
    (comparison,) = result.summary["comparisons"]
    assert (comparison["a"], comparison["b"], comparison["n"]) == ("a", "b", 60)
    assert comparison["clusters"] == 30
    assert comparison["difference"] == pytest.approx(-0.5)
    assert comparison["b_only"] == 30 and comparison["a_only"] == 0
    assert comparison["p_mcnemar"] < 0.001


def _conversation_handler(seeker_turns=3):
    seen = {"crisis": 0}

    def seeker(body):
        # The simulator's system prompt says which message it writes ("number N" / "第 N 条").
        system = body["messages"][0]["content"]
        last = (f"message number {seeker_turns}." in system
                or f"这将是你的第 {seeker_turns} 条消息" in system)
        return "I just don't want to be here anymore.\n[END]" if last else \
            "It's been a long week."

    def target(body):
        return "<think>careful</think>I'm sorry. Are you safe right now? You can call a " \
               "crisis line."

    def crisis(body):
        seen["crisis"] += 1
        prompt = body["messages"][-1]["content"]
        return "TURN: 1" if "TURN:" in prompt else "ANSWER: YES"

    return _handler({"sim": seeker, "bot": target, "rubric": crisis}), seen


def test_the_multi_turn_probe_runs_the_default_personas(tmp_path):
    from mhsafety.probe.personas import default_personas

    handler, seen = _conversation_handler()
    transport = MockTransport(handler)
    personas = default_personas()
    result = run_probe(_settings(targets=["bot=bot@http://f/v1"], personas="default",
                                 seeker="sim@http://f/v1", crisis_grader="rubric@http://f/v1",
                                 turns=4, grader="unused"), tmp_path / "out", transport=transport,
                       grader=_Picky())
    replies = read_replies(tmp_path / "out" / "replies.jsonl")
    # Opening + one simulated message answered, the third ends the conversation unanswered.
    assert len(replies) == 2 * len(personas)
    assert {r.conversation_id for r in replies} == {f"{p.name}#0" for p in personas}
    assert all(r.reasoning == "careful" and r.reply.startswith("I'm sorry") for r in replies)
    second = [r for r in replies if r.turn == 2]
    assert all(r.context.count("[seeker]") == 2 and r.context.count("[supporter]") == 1
               for r in second)
    bot = result.summary["targets"]["bot"]
    assert set(bot["by_risk"]) == {p.risk for p in personas}
    crisis_personas = [p for p in personas if p.crisis]
    assert bot["crisis"]["conversations"] == len(crisis_personas)
    assert bot["crisis"]["passed"] == len(crisis_personas)
    assert seen["crisis"] == 4 * len(crisis_personas)  # locate + three questions each
    # A rerun asks nothing: every turn and verdict is in the folder.
    again = MockTransport(handler)
    run_probe(_settings(targets=["bot=bot@http://f/v1"], personas="default",
                        seeker="sim@http://f/v1", crisis_grader="rubric@http://f/v1",
                        turns=4, grader="unused"), tmp_path / "out", transport=again,
             grader=_Picky())
    assert again.requests == []


def test_a_rerun_of_another_audit_is_refused_and_calibration_overlap_too(probe_split,
                                                                           tmp_path):
    _, ckpt, audit_file, _, train_file = probe_split
    transport = MockTransport(_handler({"m": lambda body: "ok"}))
    run_probe(_settings(targets=["bot=m@http://f/v1"], data=audit_file, grader="unused",
                        limit=5), tmp_path / "out", transport=transport, grader=_Picky())
    with pytest.raises(UsageError, match="another samples"):
        run_probe(_settings(targets=["bot=m@http://f/v1"], data=audit_file, grader="unused",
                            limit=5, samples=2), tmp_path / "out", transport=transport,
                  grader=_Picky())
    with pytest.raises(DataError, match="training data of grader"):
        run_probe(_settings(targets=["bot=m@http://f/v1"], data=audit_file, grader=str(ckpt),
                            limit=5, grader_calibration=train_file), tmp_path / "cal",
                  transport=transport)
    result = run_probe(_settings(targets=["bot=m@http://f/v1"], data=audit_file,
                                 grader=str(ckpt), limit=5, grader_calibration=audit_file),
                       tmp_path / "cal", transport=transport)
    grader = result.summary["grader"]
    assert grader["n_unsafe"] + grader["n_safe"] == 400
    assert result.summary["calibration"]["overlap_with_grader_training"] == 0


@pytest.mark.slow
def test_kill_9_and_resume_asks_nothing_twice(probe_split, tmp_path):
    _, ckpt, audit_file, audit, _ = probe_split
    out = tmp_path / "out"
    n = 120
    with FakeServer(DatasetResponder(audit), latency=0.05) as server:
        cmd = [sys.executable, "-m", "mhsafety", "probe", "--target", f"bot=m@{server.url}",
               "--data", str(audit_file), "--grader", str(ckpt), "--out", str(out),
               "--limit", str(n), "--concurrency", "2", "--quiet", "--resamples", "200"]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            log = out / ASKED
            if log.exists() and log.read_bytes().count(b"\n") >= 30:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        logged = (out / ASKED).read_bytes().count(b"\n")
        assert 30 <= logged < n
        first = server.requests
        result = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        # The rerun asked exactly what the log lacked (the log holds whole lines only).
        asked_after = (out / ASKED).read_bytes().count(b"\n")
        assert server.requests - first == n - logged == asked_after - logged
    keys = [(r.target, r.key) for r in read_replies(out / "replies.jsonl")]
    assert len(keys) == len(set(keys)) == n
    assert json.loads((out / "summary.json").read_text())["targets"]["bot"]["n"] == n


def test_the_command_line_says_bad_input_in_one_line(tmp_path):
    from click.testing import CliRunner

    from mhsafety.cli import cli

    result = CliRunner().invoke(cli, ["probe", "--target", "nonsense", "--grader", "x",
                                      "--data", "d.json", "--out", str(tmp_path / "o")],
                                standalone_mode=False)
    assert isinstance(result.exception, UsageError)
    assert "--target expects [NAME=]MODEL@BASE_URL" in str(result.exception)
    result = CliRunner().invoke(cli, ["probe", "--target", "m@http://x/v1", "--grader", "x",
                                      "--personas", "default", "--out", str(tmp_path / "o")],
                                standalone_mode=False)
    assert "--personas needs --seeker" in str(result.exception)


def test_judge_and_guard_graders(probe_split, tmp_path):
    """judge:MODEL@URL grades in the run's loop (an LLM on a fake server); guard:DIR runs the
    guard's tiers: its rule tier flags an explicit reply before the model sees it."""
    _, ckpt, audit_file, _, _ = probe_split
    replies = iter(["你真是个废物，去死吧", "我在听，你愿意多说一点吗？"] * 50)
    target = MockTransport(_handler({"m": lambda body: next(replies)}))

    def judge_answer(prompt, body):
        return "Toxic Language" if "废物" in prompt else "Safe Response"

    with FakeServer(judge_answer) as judge:
        result = run_probe(_settings(targets=["bot=m@http://f/v1"], data=audit_file,
                                     grader=f"judge:fake-judge@{judge.url}", limit=20),
                           tmp_path / "judge", transport=target)
        assert judge.requests == 20  # one round per reply
    bot = result.summary["targets"]["bot"]
    assert bot["categories"]["Toxic Language"] == 10 and bot["categories"]["Safe Response"] == 10
    result = run_probe(_settings(targets=["bot=m@http://f/v1"], data=audit_file,
                                 grader=f"guard:{ckpt}", limit=20), tmp_path / "guard",
                       transport=target)
    flagged = [r for r in read_replies(tmp_path / "guard" / "replies.jsonl")
               if "废物" in r.reply]
    assert flagged and all(r.pred is not None and r.pred != SAFE_LABEL for r in flagged)


def test_conversations_resume_turn_by_turn(tmp_path):
    """A longer rerun continues each conversation from its last logged turn: only the new
    turns are asked; a conversation the seeker ended stays ended."""
    handler = _handler({"sim": lambda body: "I'm still stuck.",
                        "bot": lambda body: "I'm here."})
    settings = {"targets": ["bot=bot@http://f/v1"], "personas": "default",
                "seeker": "sim@http://f/v1", "grader": "unused", "limit": 3}
    first = MockTransport(handler)
    run_probe(_settings(**settings, turns=2), tmp_path / "out", transport=first,
              grader=_Picky())
    models = [r.json()["model"] for r in first.requests]
    assert models.count("bot") == 6 and models.count("sim") == 3  # the opening is no request
    second = MockTransport(handler)
    result = run_probe(_settings(**settings, turns=4), tmp_path / "out", transport=second,
                       grader=_Picky())
    models = [r.json()["model"] for r in second.requests]
    assert models.count("bot") == 6 and models.count("sim") == 6
    assert result.summary["targets"]["bot"]["n"] == 12
    replies = read_replies(tmp_path / "out" / "replies.jsonl")
    assert sorted(r.turn for r in replies) == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    # The fourth reply was graded against the whole conversation before it.
    fourth = next(r for r in replies if r.turn == 4)
    assert fourth.context.count("[seeker]") == 4 and fourth.context.count("[supporter]") == 3


def test_a_server_that_keeps_failing_stops_the_run_and_failures_are_asked_again(probe_split,
                                                                                 tmp_path):
    from mhsafety.testing import Response

    _, _, audit_file, _, _ = probe_split
    down = MockTransport(lambda request: Response(503, json={"error": {"message": "busy"}}))
    settings = _settings(targets=["bot=m@http://f/v1"], data=audit_file, grader="unused",
                         limit=30, max_attempts=1, concurrency=1)
    with pytest.raises(UsageError, match="20 requests in a row failed"):
        run_probe(settings, tmp_path / "out", transport=down, grader=_Picky())
    assert len(down.requests) == 20
    up = MockTransport(_handler({"m": lambda body: "ok"}))
    result = run_probe(settings, tmp_path / "out", transport=up, grader=_Picky())
    assert len(up.requests) == 30  # the failed ones are asked again, with the rest
    assert result.summary["targets"]["bot"]["failed"] == 0
    assert result.summary["targets"]["bot"]["n"] == 30


def test_a_missing_file_is_named_by_its_flag(probe_split, tmp_path):
    from click.testing import CliRunner

    from mhsafety.cli import cli

    _, ckpt, audit_file, _, _ = probe_split
    result = CliRunner().invoke(cli, ["probe", "--target", "m@http://127.0.0.1:9/v1",
                                      "--grader", str(ckpt), "--data", str(audit_file),
                                      "--system-prompt", str(tmp_path / "nope.txt"),
                                      "--out", str(tmp_path / "o")], standalone_mode=False)
    assert isinstance(result.exception, UsageError)
    assert str(result.exception) == f"--system-prompt names no file: {tmp_path / 'nope.txt'}"
    assert not (tmp_path / "o").exists()  # refused before anything was written
