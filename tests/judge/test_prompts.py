from __future__ import annotations

import pytest

from mhsafety.data import Example
from mhsafety.errors import DataError, UsageError
from mhsafety.judge.prompts import check_template, load_template, plan_shots
from mhsafety.taxonomy import CATEGORIES, LABEL_NAMES


def test_zero_shot_prompt_has_definitions_answers_and_item(test_examples):
    tpl = load_template(None)
    ex = test_examples[0]
    text = tpl.render(ex)
    for c in CATEGORIES:
        assert c.definition in text
    assert ", ".join(LABEL_NAMES) in text
    assert text.endswith(f"Context: {ex.context}\nResponse: {ex.response}\nLabel:")
    assert "Examples:" not in text
    # Chinese items stay as they are.
    assert any("\u4e00" <= ch <= "\u9fff" for ch in ex.context) and ex.context in text


def test_few_shot_draw_is_reproducible_one_per_label_and_redrawn(test_examples):
    a = plan_shots(test_examples, rounds=5, seed=42)
    b = plan_shots(test_examples, rounds=5, seed=42)
    c = plan_shots(test_examples, rounds=5, seed=7)
    assert a.ids() == b.ids()
    assert a.ids() != c.ids()
    for shots in a.rounds.values():
        assert sorted(s.label for s in shots) == list(range(8))
    assert len({tuple(ids) for ids in a.ids().values()}) == 5  # redrawn each round
    text = load_template(None).render(test_examples[0], a.rounds[1])
    assert text.count("\nLabel: ") == 8 and text.count("Label:") == 9


def test_judged_item_is_never_its_own_example(test_examples):
    plan = plan_shots(test_examples, rounds=3, seed=42)
    for r, shots in plan.rounds.items():
        for shot in shots:
            own = plan.for_item(r, shot)
            assert all((s.context, s.response) != (shot.context, shot.response) for s in own)
            assert sorted(s.label for s in own) == list(range(8))
            assert plan.substitutions[r][str(shot.id)]["replaced"] == str(shot.id)


def test_missing_label_in_train_is_refused(test_examples):
    without_toxic = [ex for ex in test_examples if ex.label != 4]
    with pytest.raises(UsageError, match="no example of Toxic Language"):
        plan_shots(without_toxic, rounds=1, seed=42, source="train.json")


def test_user_template(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("Rate this. Options: $labels\n$context || $response\nAnswer:", "utf-8")
    tpl = load_template(path)
    text = tpl.render(Example("[seeker]你好", "[supporter]嗯"))
    assert text.startswith("Rate this. Options: Nonsense, ") and "[seeker]你好 || [supporter]嗯" in text
    assert tpl.sha256 != load_template(None).sha256


@pytest.mark.parametrize("text, message", [
    ("$context only", "must contain \\$response"),
    ("$context $response $item", "unknown placeholder \\$item"),
    ("$context $response costs $", "invalid placeholder"),
])
def test_bad_templates(text, message):
    with pytest.raises(DataError, match=message):
        check_template(text, "t.txt")


def test_few_shot_needs_examples_placeholder(tmp_path, test_examples):
    from mhsafety.judge.runner import JudgeSettings, run_judge

    tpl = check_template("$context $response", "plain.txt")
    with pytest.raises(UsageError, match="needs \\$examples"):
        run_judge(test_examples[:2], tmp_path / "o", JudgeSettings(
            model="m", base_url="http://127.0.0.1:9/v1", shots=8), train=test_examples,
            template=tpl, show_progress=False)


@pytest.mark.parametrize("output", ["text", "json", "number"])
@pytest.mark.parametrize("shape", ["plain", "system-role", "system-prompt", "few-shot",
                                   "user-template"])
def test_prompt_json_is_the_messages_json_byte_for_byte(test_examples, tmp_path, output, shape):
    """The runner sends (and hashes) JSON joined from pre-escaped pieces; it must equal the
    JSON of the messages, or resumed logs and sent prompts would drift apart."""
    from mhsafety.judge.prompts import messages_json

    system = tmp_path / "system.txt"
    system.write_text('Rules: $definitions\n"quoted" \\ back\tslash $$5 ${answer}', "utf-8")
    user = tmp_path / "user.txt"
    user.write_text('Item\n$context\n---\n"$response"\n$labels $$ end', "utf-8")
    tpl = {"plain": lambda: load_template(None),
           "system-role": lambda: load_template(None, system_role=True),
           "system-prompt": lambda: load_template(None, system_prompt=system),
           "few-shot": lambda: load_template(None),
           "user-template": lambda: load_template(user, system_prompt=system)}[shape]()
    plan = plan_shots(test_examples, rounds=2, seed=1) if shape == "few-shot" else None
    for r in (1, 2):
        for ex in test_examples[:200]:
            shots = plan.for_item(r, ex) if plan else []
            assert tpl.messages_json(ex, shots, output) == \
                messages_json(tpl.messages(ex, shots, output))
