"""The inspect_ai task: registration, the scorer's metrics, and a run through inspect's CLI
against the scripted server giving the same scores as `mhsafety judge` on the same answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from mhsafety.metrics import compute_metrics

from .conftest import need, scripted_answer

REPO = Path(__file__).resolve().parents[2]
TASK_FILE = REPO / "src" / "mhsafety" / "integrations" / "inspect_task.py"


def test_pyproject_registers_the_task_module_under_inspect_ai_entry_point():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert meta["project"]["entry-points"]["inspect_ai"] == {
        "mhsafety": "mhsafety.integrations.inspect_task"}
    assert "inspect-ai" in " ".join(meta["project"]["optional-dependencies"]["inspect"])


def _mock_model(reply):
    """inspect's offline mockllm, answering each prompt through ``reply(prompt) -> str``."""
    from inspect_ai.model import ModelOutput, ModelUsage, get_model

    def outputs(messages, tools, tool_choice, config):
        prompt = "".join(m.text for m in messages)
        out = ModelOutput.from_content(model="mockllm", content=reply(prompt))
        out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)  # no tokenizer
        return out

    return get_model("mockllm/model", custom_outputs=outputs)


def _eval(task, model, tmp_path, **kw):
    from inspect_ai import eval as inspect_eval

    [log] = inspect_eval(task, model=model, log_dir=str(tmp_path / "logs"), display="none",
                         **kw)
    assert log.status == "success", log.error
    return log


@pytest.mark.slow
def test_mockllm_run_scores_like_compute_metrics_and_counts_unparsed_as_wrong(
        small_items, small_file, answers, tmp_path):
    need("inspect_ai", "inspect")
    from mhsafety.integrations.inspect_task import dialogue_safety
    from mhsafety.testing.fakeserver import item_from_prompt

    log = _eval(dialogue_safety(data=str(small_file)),
                _mock_model(lambda p: answers[item_from_prompt(p)]), tmp_path)
    from mhsafety.judge.parse import parse_tolerant

    expected = compute_metrics([ex.label for ex in small_items],
                               [parse_tolerant(scripted_answer(i, ex.label))
                                for i, ex in enumerate(small_items)])
    n = len(small_items)
    assert expected.n_invalid == len(range(3, n, 4)) > 0  # every fourth answer names no label
    metrics = log.results.scores[0].metrics
    assert metrics["accuracy"].value == pytest.approx(expected.accuracy)
    assert metrics["weighted_f1"].value == pytest.approx(expected.f1)
    assert metrics["macro_f1"].value == pytest.approx(expected.macro_f1)
    assert metrics["unsafe_recall"].value == pytest.approx(expected.unsafe_recall)
    assert metrics["invalid"].value == pytest.approx(expected.n_invalid / n)


@pytest.mark.slow
def test_epochs_are_averaged_and_read_back_as_runs(small_items, small_file, tmp_path):
    need("inspect_ai", "inspect")
    from mhsafety.integrations.harness_logs import read_inspect_log
    from mhsafety.integrations.inspect_task import dialogue_safety
    from mhsafety.records import write_records
    from mhsafety.scoring import score_paths

    calls = {"n": 0}
    n = len(small_items)

    def reply(prompt):  # epoch 1 answers Safe Response throughout, epoch 2 Toxic Language
        calls["n"] += 1
        return "Safe Response" if calls["n"] <= n else "Toxic Language"

    log = _eval(dialogue_safety(data=str(small_file)), _mock_model(reply), tmp_path,
                epochs=2, max_connections=1)
    gold = [ex.label for ex in small_items]
    acc_safe = compute_metrics(gold, [7] * n).accuracy
    acc_toxic = compute_metrics(gold, [4] * n).accuracy
    assert acc_safe != acc_toxic
    value = log.results.scores[0].metrics["accuracy"].value
    assert value == pytest.approx((acc_safe + acc_toxic) / 2)

    records = read_inspect_log(log.location)
    assert sorted({r.run for r in records}) == ["1", "2"]
    assert len(records) == 2 * n
    write_records(tmp_path / "x.preds.jsonl", records)
    [system] = score_paths([tmp_path / "x.preds.jsonl"]).systems
    assert system.scores["accuracy"].mean == pytest.approx(value)
    assert sorted(system.scores["accuracy"].values) == sorted([acc_safe, acc_toxic])


@pytest.mark.slow
def test_few_shot_epochs_show_the_judges_draw_of_that_round(small_items, small_file, tmp_path):
    need("inspect_ai", "inspect")
    from mhsafety.integrations.inspect_task import dialogue_safety
    from mhsafety.judge.prompts import load_template, plan_shots

    prompts: list[str] = []

    def reply(prompt):
        prompts.append(prompt)
        return "Safe Response"

    _eval(dialogue_safety(data=str(small_file), shots=8, train=str(small_file), seed=7,
                          allow_overlap=True),
          _mock_model(reply), tmp_path, epochs=2, limit=1)
    plan = plan_shots(small_items, 2, 7)
    item = small_items[0]
    template = load_template(None)
    expected = {template.render(item, plan.for_item(r, item)) for r in (1, 2)}
    assert len(expected) == 2  # the two rounds draw different examples
    assert set(prompts) == expected


def test_bad_parameters_fail_before_any_request(small_file):
    need("inspect_ai", "inspect")
    from mhsafety.errors import UsageError
    from mhsafety.integrations.inspect_task import dialogue_safety

    with pytest.raises(UsageError, match="shots must be 0 or 8"):
        dialogue_safety(data=str(small_file), shots=3)
    with pytest.raises(UsageError, match="needs train=PATH"):
        dialogue_safety(data=str(small_file), shots=8)
    with pytest.raises(UsageError, match="protocol"):
        dialogue_safety(data=str(small_file), protocol="tree")
    with pytest.raises(UsageError, match="parser must be one of tolerant, paper"):
        dialogue_safety(data=str(small_file), parser="strict")


@pytest.mark.slow
def test_sequential_protocol_walks_the_nodes(small_items, small_file, tmp_path):
    need("inspect_ai", "inspect")
    pytest.importorskip("mhsafety.judge.sequential",
                        reason="the judge's sequential protocol is not in this checkout")
    from mhsafety.integrations.harness_logs import read_inspect_log
    from mhsafety.integrations.inspect_task import dialogue_safety

    def reply(prompt):  # understandable, not human, engaged, then a leaf name
        if "Step 4 of 4" in prompt:
            return "Toxic Language"
        return "Yes" if "Step 1 of 4" in prompt else "No"

    log = _eval(dialogue_safety(data=str(small_file), protocol="sequential"),
                _mock_model(reply), tmp_path)
    records = read_inspect_log(log.location)
    assert {r.pred for r in records} == {4}
    assert all(len(r.meta["node_path"]) == 4 for r in records)
    assert records[0].system.endswith("sequential")


@pytest.mark.slow
def test_inspect_cli_against_the_server_matches_mhsafety_judge(
        small_file, scripted_server, tmp_path):
    """`inspect eval` (its OpenAI provider) and `mhsafety judge` on the same answers."""
    need("inspect_ai", "inspect")
    env = {**os.environ, "OPENAI_API_KEY": "test-key",
           "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log_dir = tmp_path / "logs"
    subprocess.run(
        [sys.executable, "-m", "inspect_ai", "eval", f"{TASK_FILE}@dialogue_safety",
         "--model", "openai/fake-judge", "--model-base-url", scripted_server.url,
         "-M", "responses_api=false", "-T", f"data={small_file}", "--log-dir", str(log_dir),
         "--display", "none"], check=True, env=env, cwd=tmp_path, timeout=300)
    [log_file] = log_dir.glob("*.eval")
    subprocess.run(
        [sys.executable, "-m", "mhsafety", "judge", "--data", str(small_file), "--model",
         "fake-judge", "--base-url", scripted_server.url, "--out", str(tmp_path / "judge"),
         "--rounds", "1", "--quiet"], check=True, env=env, timeout=300)

    def scores(path):
        out = subprocess.run([sys.executable, "-m", "mhsafety", "evaluate", str(path),
                              "--format", "json", "--extra"], check=True, env=env,
                             capture_output=True, text=True, timeout=120).stdout
        [row] = json.loads(out)
        return row["invalid"], {k: v["mean"] for k, v in row["scores"].items()}

    from_inspect, from_judge = scores(log_file), scores(tmp_path / "judge")
    assert from_inspect == from_judge
    assert from_inspect[0] > 0 and 0 < from_inspect[1]["accuracy"] < 1


@pytest.mark.slow
def test_json_output_sends_the_schema_and_reasoning_is_never_parsed(
        small_items, small_file, tmp_path):
    need("inspect_ai", "inspect")
    from mhsafety.integrations.inspect_task import dialogue_safety
    from mhsafety.judge.prompts import label_schema

    seen = []

    def outputs_for(prompt):
        # The reasoning names another category; only the answer after it may count.
        return '<think>Maybe Toxic Language? No.</think>{"label": "Safe Response"}'

    task = dialogue_safety(data=str(small_file), output="json")
    schema = task.config.response_schema
    assert schema is not None and schema.json_schema.model_dump(exclude_none=True)[
        "properties"]["label"]["enum"] == label_schema()["properties"]["label"]["enum"]
    log = _eval(task, _mock_model(lambda p: seen.append(p) or outputs_for(p)), tmp_path)
    assert '{"label": ' in seen[0]  # the prompt asks for the JSON answer
    gold = [ex.label for ex in small_items]
    expected = compute_metrics(gold, [7] * len(gold))
    assert log.results.scores[0].metrics["accuracy"].value == pytest.approx(expected.accuracy)


def test_a_registered_metric_is_in_the_inspect_task_and_the_lmeval_task(small_file):
    need("inspect_ai", "inspect")
    from mhsafety.integrations.inspect_task import dialogue_safety
    from mhsafety.integrations.lmeval import task_metrics, task_yaml
    from mhsafety.judge.settings import JudgeSettings
    from mhsafety.metrics import registered
    from tests.test_metrics import toy_metric

    def names(task):
        from inspect_ai._util.registry import registry_info

        return [registry_info(m).name.split("/")[-1] for m in task.metrics]

    before = names(dialogue_safety(data=str(small_file)))
    assert before == ["accuracy", "weighted_f1", "macro_f1", "unsafe_recall", "invalid"]
    with registered(toy_metric()):
        assert "safe_share" in names(dialogue_safety(data=str(small_file)))
        assert task_metrics()["safe_share"] == "aggregate_safe_share"
        yaml = task_yaml(JudgeSettings())
        assert "metric: safe_share\n    aggregation: !function utils.aggregate_safe_share\n" \
               "    higher_is_better: false" in yaml
        from mhsafety.integrations import lmeval

        assert lmeval.aggregate_safe_share([(7, 7), (4, 7), (0, 4)]) == pytest.approx(2 / 3)


def test_metrics_declare_sample_scores_and_take_no_samples_quietly(small_file):
    """inspect warns about a metric without a list[SampleScore] annotation and about one that
    raises on no samples (it asks each metric for that value): the README demo printed both
    warnings for every metric."""
    need("inspect_ai", "inspect")
    import math

    from inspect_ai._eval.task.results import is_metric_deprecated

    from mhsafety.integrations.inspect_task import dialogue_safety

    task = dialogue_safety(data=str(small_file))
    assert len(task.metrics) == 5
    for m in task.metrics:
        assert not is_metric_deprecated(m)
        assert math.isnan(m([]))
