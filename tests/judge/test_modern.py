"""Today's judges on a real local server: reasoning models, token fields, structured output,
logprob probabilities, samples, system messages, provider fields and headers."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from mhsafety.errors import UsageError
from mhsafety.judge.parse import CUT_OFF
from mhsafety.judge.runner import run_judge
from mhsafety.judge.settings import REASONING_MAX_TOKENS
from mhsafety.taxonomy import LABEL_NAMES
from mhsafety.testing.fakeserver import REASONING_TEXT, FakeServer, constant

from .conftest import settings


def _log(out, round_no=1):
    return [json.loads(line) for line in
            (out / "log" / f"round-{round_no}.jsonl").read_text("utf-8").splitlines()]


def test_auto_token_param_switches_once_for_a_model_rejecting_max_tokens(small_examples,
                                                                         tmp_path):
    with FakeServer(reject_max_tokens=True) as server:
        result = run_judge(small_examples[:10], tmp_path, settings(server), show_progress=False)
        assert result.summary["answered"] == 10 and result.summary["failed"] == 0
        assert "max_completion_tokens" in server.last_body
        assert "max_tokens" not in server.last_body
        assert result.manifest["token_param_used"] == "max_completion_tokens"
        # At most the requests in flight before the switch were refused, each once.
        assert server.requests <= 10 + 8
        with pytest.raises(UsageError, match="Unsupported parameter: 'max_tokens'"):
            run_judge(small_examples[:2], tmp_path / "fixed", settings(
                server, token_param="max_tokens"), show_progress=False)


@pytest.mark.parametrize("style", ["inline", "field"])
def test_reasoning_is_kept_in_the_log_and_never_parsed(small_examples, tmp_path, style):
    with FakeServer(constant("Safe Response"), reasoning=style) as server:
        result = run_judge(small_examples[:4], tmp_path, settings(server, model="o3-mini"),
                           show_progress=False)
        assert server.last_body["max_tokens"] == REASONING_MAX_TOKENS  # a reasoning budget
    recs = result.records["1"]
    assert [r.pred for r in recs] == [7] * 4  # not Nonsense, named first in the reasoning
    assert all(r.raw == "Safe Response" for r in recs)
    assert result.summary["with_reasoning"] == 4
    entry = _log(tmp_path)[0]
    logged = entry["answer"] if style == "inline" else entry["reasoning"]
    assert REASONING_TEXT in logged


@pytest.mark.parametrize("style", ["inline", "field"])
def test_answer_cut_off_by_the_budget_is_invalid_with_that_reason(small_examples, tmp_path,
                                                                  style):
    with FakeServer(reasoning=style, reasoning_tokens=100) as server:
        result = run_judge(small_examples[:3], tmp_path, settings(
            server, model="deepseek-reasoner", max_tokens=20), show_progress=False)
    recs = result.records["1"]
    assert [r.pred for r in recs] == [None] * 3
    assert all(r.error == CUT_OFF for r in recs)
    assert result.summary["invalid"] == 3 and result.summary["failed"] == 0


def test_json_output_sends_the_schema_and_parses_the_object(small_examples, tmp_path):
    with FakeServer(constant("Toxic Language")) as server:
        result = run_judge(small_examples[:3], tmp_path, settings(server, output="json"),
                           show_progress=False)
        fmt = server.last_body["response_format"]
    assert fmt["type"] == "json_schema"
    schema = fmt["json_schema"]["schema"]
    assert schema["properties"]["label"]["enum"] == list(LABEL_NAMES)
    assert schema["required"] == ["label"]
    assert [r.pred for r in result.records["1"]] == [4] * 3
    assert _log(tmp_path)[0]["answer"] == '{"label": "Toxic Language"}'


def test_logprobs_give_a_distribution_into_records_and_predict_proba(small_examples, tmp_path):
    from mhsafety.registry import create_classifier

    with FakeServer(constant("8")) as server:
        result = run_judge(small_examples[:3], tmp_path / "run", settings(
            server, output="number", logprobs=True), show_progress=False)
        assert server.last_body["logprobs"] is True
        assert server.last_body["top_logprobs"] == 20
        rec = result.records["1"][0]
        assert rec.pred == 7 and rec.meta["probs_from"] == "logprobs"
        assert rec.probs[7] == pytest.approx(0.7) and rec.probs[0] == pytest.approx(0.3 / 7)
        assert "logprobs" in result.manifest["probabilities"]

        clf = create_classifier(f"judge:fake-judge@{server.url}", rounds=2, output="number",
                                logprobs=True, work_dir=str(tmp_path / "clf"))
        probs = clf.predict_proba(small_examples[:3])
        assert np.allclose(probs[:, 7], 0.7) and np.allclose(probs.sum(axis=1), 1)
        recs = clf.predict_records(small_examples[:3], system="judge")
        assert recs[0].meta["probs_from"] == "logprobs"


def test_logprobs_need_the_number_format():
    with pytest.raises(UsageError, match="needs output number"):
        settings(None, base_url="http://127.0.0.1:9/v1", logprobs=True)


def test_samples_give_vote_shares_labelled_as_such(small_examples, tmp_path):
    answers = itertools.cycle(["Safe Response", "Safe Response", "Toxic Language"])
    with FakeServer(lambda prompt, body: next(answers)) as server:
        result = run_judge(small_examples[:2], tmp_path, settings(server, samples=3,
                                                                  concurrency=1),
                           show_progress=False)
        assert server.last_body["n"] == 3
    rec = result.records["1"][0]
    assert rec.pred == 7 and rec.meta["probs_from"] == "vote shares"
    assert rec.probs[7] == pytest.approx(2 / 3) and rec.probs[4] == pytest.approx(1 / 3)
    assert result.manifest["probabilities"].startswith("vote shares of 3 answers")


def test_system_role_extra_body_and_headers_reach_the_server(small_examples, tmp_path):
    with FakeServer() as server:
        run_judge(small_examples[:1], tmp_path, settings(
            server, system_role=True, reasoning_effort="low",
            extra_body={"chat_template_kwargs": {"enable_thinking": False}},
            headers={"X-Team": "safety"}), show_progress=False)
        body, headers = server.last_body, server.last_headers
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "Safe Response:" in body["messages"][0]["content"]
    assert body["messages"][1]["content"].startswith("Context: ")
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["reasoning_effort"] == "low"
    assert body["max_tokens"] == REASONING_MAX_TOKENS  # --reasoning-effort marks a reasoner
    assert headers["x-team"] == "safety"


def test_system_prompt_file(small_examples, tmp_path):
    prompt = tmp_path / "system.txt"
    prompt.write_text("You label replies. $answer", "utf-8")
    with FakeServer() as server:
        run_judge(small_examples[:1], tmp_path / "o", settings(
            server, system_prompt=str(prompt)), show_progress=False)
        messages = server.last_body["messages"]
    assert messages[0] == {"role": "system", "content": "You label replies. Answer with the "
                           "category name only, exactly as written here: "
                           + ", ".join(LABEL_NAMES) + "."}
    assert messages[1]["role"] == "user"


def test_secret_headers_are_refused():
    with pytest.raises(UsageError, match="must not carry credentials"):
        settings(None, base_url="http://127.0.0.1:9/v1", headers={"Authorization": "Bearer x"})


def test_a_server_ignoring_n_is_said_so(small_examples, tmp_path):
    with FakeServer(ignore_n=True) as server:
        result = run_judge(small_examples[:2], tmp_path, settings(server, samples=4),
                           show_progress=False)
        assert server.last_body["n"] == 4
    assert result.summary["fewer_samples_than_asked"] == 2
    assert [r.pred for r in result.records["1"]] == [7, 7]
    assert all(r.probs is None for r in result.records["1"])
