"""The sequential protocol: node prompts, yes/no answers, the walk, the fake annotator."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from mhsafety.judge import sequential as seq
from mhsafety.judge.runner import run_judge
from mhsafety.taxonomy import CATEGORIES, LABEL_NAMES, NODES, path_for_label
from mhsafety.testing.fakeserver import FakeServer, GoldResponder

from .conftest import settings


def test_each_node_prompt_holds_its_question_and_only_its_definitions():
    prompts = seq.node_templates()
    assert len(prompts) == 4
    for node, text in zip(NODES, prompts):
        assert node.question in text
        shown = {c.name for c in CATEGORIES if c.definition in text}
        assert shown == {CATEGORIES[lab].name for lab in node.labels}
    assert prompts[3].rstrip().endswith("Label:")


@pytest.mark.parametrize("answer, expected", [
    ("Yes", True), ("yes.", True), ("**No**", False), ("No, it does not.", False),
    ("Answer: yes", True), ("是", True), ("不是，它没有", False), ("否。", False),
    ("Nothing to say", None), ("", None), (None, None), ("Maybe", None),
])
def test_parse_yes_no(answer, expected):
    assert seq.parse_yes_no(answer) is expected


def _answers_for(label: int) -> dict[int, str]:
    path = path_for_label(label)
    out = {i + 1: ("Yes" if a else "No") for i, a in enumerate(path[:3])}
    if len(path) == 4:
        out[4] = LABEL_NAMES[label]
    return out


@pytest.mark.parametrize("label", range(8))
def test_walk_reaches_the_label_of_each_taxonomy_path(label):
    state = seq.walk(_answers_for(label))
    assert state.done and state.label == label and state.error is None
    assert [s["node"] for s in state.path] == list(range(1, CATEGORIES[label].node + 1))


def test_walk_asks_the_next_node_and_stops_on_an_unreadable_answer():
    assert seq.walk({}).next_node == 1
    assert seq.walk({1: "Yes", 2: "No"}).next_node == 3
    bad = seq.walk({1: "Yes", 2: "perhaps"})
    assert bad.done and bad.label is None and "node 2" in bad.error
    wrong_leaf = seq.walk({1: "Yes", 2: "No", 3: "No", 4: "Nonsense"})
    assert wrong_leaf.label is None and "Nonsense" in wrong_leaf.error
    assert wrong_leaf.raw == "node 1: Yes | node 2: No | node 3: No | node 4: Nonsense"


def test_the_gold_annotator_walks_every_test_item_to_its_gold_label(test_examples):
    oracle = GoldResponder(test_examples)
    asked = 0
    for ex in test_examples:
        answers: dict[int, str] = {}
        while not (state := seq.walk(answers)).done:
            prompt = seq.node_messages(ex, state.next_node)[0]["content"]
            assert seq.node_of_prompt(prompt) == state.next_node
            answers[state.next_node] = oracle(prompt, {})
            asked += 1
        assert state.label == ex.label
    assert len(test_examples) < asked < 4 * len(test_examples)


def test_node_of_prompt_ignores_flat_prompts(test_examples):
    from mhsafety.judge.prompts import load_template

    flat = load_template(None).render(test_examples[0])
    assert seq.node_of_prompt(flat) is None
    assert GoldResponder(test_examples)(flat, {}) == LABEL_NAMES[test_examples[0].label]


# --------------------------------------------------------------------------- through run_judge




@pytest.fixture
def gold_server(test_examples):
    srv = FakeServer(GoldResponder(test_examples), hang_s=3.0).start()
    yield srv
    srv.stop()


def test_sequential_run_keeps_each_items_node_path(gold_server, small_examples, tmp_path):
    result = run_judge(small_examples, tmp_path, settings(gold_server, protocol="sequential"),
                       show_progress=False)
    recs = result.records["1"]
    assert [r.pred for r in recs] == [ex.label for ex in small_examples]
    for rec, ex in zip(recs, small_examples):
        path = rec.meta["node_path"]
        assert [s["node"] for s in path] == list(range(1, CATEGORIES[ex.label].node + 1))
        assert rec.meta["protocol"] == "sequential"
        assert rec.raw.startswith("node 1: ")
    asked = sum(CATEGORIES[ex.label].node for ex in small_examples)
    assert gold_server.requests == asked == result.summary["this_run"]["requests"]
    assert result.manifest["protocol"] == "sequential"
    # the log holds one line per step, under the step ids
    lines = (tmp_path / "log" / "round-1.jsonl").read_text("utf-8").splitlines()
    assert sorted(json.loads(x)["id"] for x in lines) == sorted(
        seq.step_id(ex.id, n) for ex in small_examples
        for n in range(1, CATEGORIES[ex.label].node + 1))


def test_sequential_resume_asks_only_the_nodes_not_yet_answered(gold_server, small_examples,
                                                                tmp_path):
    # Node 3 is down: walks that reach it stop there, failed, with what they had logged.
    gold_server.fault_for = lambda prompt: "500" if seq.node_of_prompt(prompt) == 3 else None
    first = run_judge(small_examples, tmp_path, settings(gold_server, protocol="sequential",
                                                         max_attempts=1,
                                                         stop_after_failures=0),
                      show_progress=False)
    reaching_3 = [ex for ex in small_examples if CATEGORIES[ex.label].node >= 3]
    failed = [r for r in first.records["1"] if r.pred is None]
    assert len(failed) == len(reaching_3) > 0
    assert all("request failed at node 3" in r.error and r.raw is None for r in failed)
    assert first.summary["failed"] == len(reaching_3)

    gold_server.fault_for = None
    before = gold_server.requests
    second = run_judge(small_examples, tmp_path, settings(gold_server, protocol="sequential"),
                       show_progress=False)
    # only nodes 3 (and 4 where the walk goes on) are asked again; nodes 1-2 come from the log
    again = sum(CATEGORIES[ex.label].node - 2 for ex in reaching_3)
    assert gold_server.requests - before == again
    assert [r.pred for r in second.records["1"]] == [ex.label for ex in small_examples]
    assert second.summary["resumed"] == len(small_examples) - len(reaching_3)


def test_sequential_and_flat_answers_never_mix(gold_server, small_examples, tmp_path):
    items = small_examples[:6]
    run_judge(items, tmp_path, settings(gold_server), show_progress=False)
    result = run_judge(items, tmp_path, settings(gold_server, protocol="sequential"),
                       show_progress=False)
    assert result.summary["stale_ignored"] == len(items)
    assert result.summary["resumed"] == 0


def test_an_unreadable_node_answer_is_an_invalid_record(server, small_examples, tmp_path):
    server.responder = lambda prompt, body: "It depends."
    result = run_judge(small_examples[:3], tmp_path, settings(server, protocol="sequential"),
                       show_progress=False)
    recs = result.records["1"]
    assert all(r.pred is None and r.error == "node 1 answer is neither yes nor no"
               for r in recs)
    assert result.summary["invalid"] == 3 and result.summary["failed"] == 0
    assert server.requests == 3


def test_sequential_refuses_few_shot_and_batch(server, small_examples, tmp_path):
    from mhsafety.errors import UsageError

    with pytest.raises(UsageError, match="zero-shot"):
        run_judge(small_examples, tmp_path, settings(server, protocol="sequential", shots=8),
                  train=small_examples, show_progress=False)
    with pytest.raises(UsageError, match="batch"):
        run_judge(small_examples, tmp_path, settings(server, protocol="sequential",
                                                     batch=True), show_progress=False)


@pytest.mark.slow
def test_sequential_kill_9_then_rerun_asks_each_step_once(gold_server, test_json, tmp_path):
    gold_server.latency = 0.01
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mhsafety", "judge", "--data", str(test_json),
           "--model", "fake-judge", "--base-url", gold_server.url, "--out", str(out),
           "--rounds", "1", "--quiet", "--protocol", "sequential", "--concurrency", "4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = out / "log" / "round-1.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (log.exists() and log.stat().st_size > 60_000):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "preds").exists()
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr
    ids = [json.loads(x)["id"] for x in log.read_text("utf-8").splitlines()]
    assert len(ids) == len(set(ids))  # every step logged once, none asked again
    assert gold_server.answered <= len(ids) + 4  # at most the requests in flight at the kill
    preds = [json.loads(x) for x in (out / "preds" / "round-1.preds.jsonl").read_text(
        "utf-8").splitlines()]
    assert all(p["pred"] == p["gold"] for p in preds) and len(preds) == 800


def test_reasoning_before_a_node_answer_is_never_read_as_the_answer():
    # The reasoning says "No" first; the answer after it says the reply is understandable.
    state = seq.walk({1: "<think>No... wait, it does make sense.</think>Yes", 2: "No",
                      3: "<think>Yes, maybe it neglects</think>\nNo"})
    assert state.next_node == 4
    assert [s["verdict"] for s in state.path] == ["yes", "no", "no"]
