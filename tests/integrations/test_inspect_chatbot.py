"""The chatbot audit as an inspect_ai task: the model is the solver, a baseline checkpoint
trained here the scorer; its log reads back into the probe's summary and report with the
verdicts the checkpoint gives the same replies directly."""

from __future__ import annotations

import numpy as np
import pytest

from mhsafety.guard.items import EMPTY_REPLY
from mhsafety.taxonomy import LABEL_NAMES, SAFE_LABEL

from .conftest import need


@pytest.fixture(scope="module")
def grader_dir(test_examples, tmp_path_factory):
    from mhsafety import registry

    model = registry.create_classifier("baseline", seed=0, c_grid=[2.0], calibrate=False,
                                       ngram_max=2, max_iter=200)
    folder = tmp_path_factory.mktemp("grader") / "baseline"
    model.fit(test_examples[200:600]).save(folder)
    return folder


def _reply_for(prompt: str) -> str:
    """A scripted chatbot: an empty reply for some prompts (ungraded), a reasoning block
    before others (taken off before grading), a plain reply otherwise."""
    key = sum(map(ord, prompt))
    if key % 7 == 0:
        return "  "
    if key % 3 == 0:
        return "<think>她很难过。</think>你愿意多说一点发生了什么吗？"
    return ["别想太多了，睡一觉就好。", "我理解你的感受，我们一起想想办法。",
            "你应该去找专业人士。"][key % 3 - 1] + prompt[-4:]


def _mock_model():
    from inspect_ai.model import ModelOutput, ModelUsage, get_model

    def outputs(messages, tools, tool_choice, config):
        prompt = "".join(m.text for m in messages)
        out = ModelOutput.from_content(model="mockllm", content=_reply_for(prompt))
        out.usage = ModelUsage(input_tokens=10, output_tokens=5, total_tokens=15)
        return out

    return get_model("mockllm/model", custom_outputs=outputs)


@pytest.fixture(scope="module")
def audit_log(grader_dir, small_file, tmp_path_factory):
    need("inspect_ai", "inspect")
    from inspect_ai import eval as inspect_eval

    from mhsafety.integrations.inspect_chatbot import chatbot_safety

    logs = tmp_path_factory.mktemp("chatbot-logs")
    [log] = inspect_eval(chatbot_safety(grader=str(grader_dir), data=str(small_file),
                                        target="bot"),
                         model=_mock_model(), log_dir=str(logs), display="none", epochs=2)
    assert log.status == "success", log.error
    return log


@pytest.mark.slow
def test_log_reads_back_with_the_checkpoints_own_verdicts(audit_log, grader_dir, small_items):
    from mhsafety.data import Example
    from mhsafety.integrations.harness_logs import is_chatbot_log, read_chatbot_log
    from mhsafety.integrations.inspect_chatbot import context_prompts
    from mhsafety.judge.parse import split_reasoning
    from mhsafety.probe import build_summary
    from mhsafety.registry import load_classifier

    assert is_chatbot_log(audit_log.location)
    replies = read_chatbot_log(audit_log.location)
    prompts = context_prompts(small_items)
    assert len(replies) == 2 * len(prompts)  # every distinct context, two epochs
    assert {r.sample for r in replies} == {0, 1} and {r.target for r in replies} == {"bot"}
    assert all(r.prompt_tokens == 10 and r.completion_tokens == 5 for r in replies)

    # the same replies graded directly by the checkpoint
    grader = load_classifier(grader_dir)
    contexts = dict(prompts)
    expected = []
    for r in replies:
        assert r.context == contexts[r.prompt_id]
        _, answer = split_reasoning(_reply_for_context(r.context))
        if not answer.strip():
            expected.append(None)
            continue
        assert r.reply == answer and "<think>" not in r.reply
        [label] = grader.predict([Example(r.context, "[supporter]" + answer)])
        expected.append(int(label))
    assert [r.pred for r in replies] == expected
    assert {SAFE_LABEL} < {p for p in expected if p is not None}  # safe and unsafe verdicts
    empty = [r for r in replies if r.pred is None]
    assert empty and all(r.grader_error == EMPTY_REPLY for r in empty)
    assert any(r.reasoning == "她很难过。" for r in replies)

    summary = build_summary(replies, resamples=100)
    bot = summary["targets"]["bot"]
    graded = [p for p in expected if p is not None]
    assert bot["n"] == len(replies) and bot["ungraded"] == len(empty)
    assert bot["categories"] == {n: graded.count(k) for k, n in enumerate(LABEL_NAMES)}
    assert bot["unsafe_rate"]["observed"] == pytest.approx(
        np.mean([p != SAFE_LABEL for p in graded]))
    # inspect's own metrics say the same
    metrics = audit_log.results.scores[0].metrics
    assert metrics["unsafe_rate"].value == pytest.approx(bot["unsafe_rate"]["observed"])
    assert metrics["ungraded"].value == len(empty)
    assert all(metrics[n].value == c for n, c in bot["categories"].items())


def _reply_for_context(context: str) -> str:
    """What the scripted chatbot said to ``context`` (its prompt is the context's messages)."""
    from mhsafety.probe.personas import target_messages

    return _reply_for("".join(m["content"] for m in target_messages(context)))


@pytest.mark.slow
def test_the_log_makes_the_audit_report(audit_log, tmp_path):
    from mhsafety.probe.report import is_probe_results, write_probe_report

    assert is_probe_results(audit_log.location)
    result = write_probe_report(audit_log.location, tmp_path / "report", resamples=100)
    page = result.html.read_text(encoding="utf-8")
    assert "bot" in result.results.summary["targets"]
    assert EMPTY_REPLY in page  # why replies went ungraded
    assert "read from inspect log" in page


@pytest.mark.slow
def test_a_chatbot_log_is_refused_by_the_prediction_reader(audit_log):
    from mhsafety.errors import DataError
    from mhsafety.records import load_runs

    with pytest.raises(DataError, match="chatbot_safety task.*mhsafety report"):
        load_runs([audit_log.location])


def test_persona_openings_carry_persona_and_risk(grader_dir):
    need("inspect_ai", "inspect")
    from mhsafety.integrations.inspect_chatbot import chatbot_safety
    from mhsafety.probe import default_personas

    task = chatbot_safety(grader=str(grader_dir), personas="default")
    personas = default_personas()
    assert len(task.dataset) == len(personas)
    sample = task.dataset[0]
    assert sample.metadata["persona"] == personas[0].name
    assert sample.metadata["risk"] == personas[0].risk
    assert sample.input[-1].text == personas[0].opening.strip()


def test_bad_parameters_are_one_sentence(grader_dir, small_file, tmp_path):
    need("inspect_ai", "inspect")
    from mhsafety.errors import DataError, UsageError
    from mhsafety.integrations.inspect_chatbot import chatbot_safety

    with pytest.raises(UsageError, match="needs grader=CHECKPOINT"):
        chatbot_safety(data=str(small_file))
    with pytest.raises(UsageError, match="not both"):
        chatbot_safety(grader=str(grader_dir), data=str(small_file), personas="default")
    with pytest.raises(DataError, match="no such checkpoint folder"):
        chatbot_safety(grader=str(tmp_path / "nope"), data=str(small_file))
    with pytest.raises(DataError, match="system_prompt takes a file"):
        chatbot_safety(grader=str(grader_dir), data=str(small_file),
                       system_prompt=str(tmp_path / "none.txt"))


def test_the_entry_point_module_registers_the_chatbot_task():
    need("inspect_ai", "inspect")
    from inspect_ai._util.registry import registry_lookup

    import mhsafety.integrations.inspect_task  # noqa: F401 - the entry point's module

    assert registry_lookup("task", "mhsafety/chatbot_safety") is not None
