"""The sequential protocol: node prompts, yes/no answers, the walk, the fake annotator."""

from __future__ import annotations

import pytest

from mhsafety.judge import sequential as seq
from mhsafety.judge.fakeserver import GoldResponder
from mhsafety.taxonomy import CATEGORIES, LABEL_NAMES, NODES, path_for_label


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
