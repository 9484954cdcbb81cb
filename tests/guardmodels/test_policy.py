"""The taxonomy as a policy document, and its parser: every label round-trips."""

from __future__ import annotations

import pytest

from mhsafety.guardmodels import Answer, PolicySettings, policy
from mhsafety.taxonomy import CATEGORIES, LABEL_NAMES, NODES, NUM_LABELS, SAFE_LABEL
from tests.helpers.guard_answers import policy_answer, reasoning_first

STYLES = ("plain", "lower", "upper", "bold", "spaced", "prefixed")


def test_the_document_comes_from_the_taxonomy():
    doc = policy.render_policy()
    for c in CATEGORIES:
        assert c.definition in doc
    for node in NODES:
        assert node.question in doc
    # The node order is the decision order.
    steps = [doc.index(f"Step {n.number} - {n.title}") for n in NODES]
    assert steps == sorted(steps)
    assert "## Examples" in doc and "## Examples" not in policy.render_policy(examples=False)


def test_the_output_contract_names_exactly_the_eight_labels():
    for output in ("text", "json"):
        contract = policy.render_policy(output).split("## Output", 1)[1]
        assert all(name in contract for name in LABEL_NAMES)
    assert '"label"' in policy.render_policy("json").split("## Output", 1)[1]


def test_our_examples_cover_every_label_and_are_not_from_the_data(test_examples):
    assert sorted(label for _, _, label, _ in policy.EXAMPLES) == list(range(NUM_LABELS))
    texts = {ex.response_text for ex in test_examples} | {ex.context for ex in test_examples}
    assert not any(reply in texts or seeker in texts for seeker, reply, _, _ in policy.EXAMPLES)


@pytest.mark.parametrize("label", range(NUM_LABELS))
def test_every_label_round_trips(label):
    settings = PolicySettings()
    for style in STYLES:
        v = policy.verdict_from([policy_answer(label, style=style)], settings)
        assert v.label == label, style
        assert v.unsafe is (label != SAFE_LABEL)
    v = policy.verdict_from([policy_answer(label, "json", rationale="why")],
                            PolicySettings(output="json"))
    assert v.label == label and v.reasoning == "why"
    fenced = "```json\n" + policy_answer(label, "json") + "\n```"
    assert policy.verdict_from([fenced], settings).label == label


def test_reasoning_is_kept_from_the_field_the_block_and_the_rationale():
    text = policy_answer(2, rationale="It changes the subject.")
    v = policy.parse(Answer(reasoning_first(text), reasoning="server-side thoughts"))
    assert v.label == 2
    assert "server-side thoughts" in v.reasoning and "seeker's worry" in v.reasoning
    assert "changes the subject" in v.reasoning


def test_an_explicit_label_line_after_reasoning_is_read_but_a_mention_is_not():
    after = "The reply dodges the worry about the sister.\nLabel: Linguistic Neglect"
    assert policy.parse(Answer(after)).label == 2
    mention = "The reply is not Nonsense and not Toxic Language."
    assert policy.parse(Answer(mention)).abstained


def test_the_policy_is_the_system_message_unless_asked_otherwise(test_examples):
    ex = test_examples[0]
    system, user = policy.requests_for(ex, PolicySettings())[0]
    assert system["role"] == "system" and system["content"] == policy.render_policy()
    assert ex.response_text in user["content"]
    one, = policy.requests_for(ex, PolicySettings(system_role=False, output="json"))[0]
    assert one["role"] == "user" and one["content"].startswith(policy.render_policy("json"))
