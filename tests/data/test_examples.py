import json
from collections import Counter

import pytest

from mhsafety import data
from mhsafety.data import Example, Turn, load_examples, parse_turns
from mhsafety.errors import DataError


def test_parse_turns_on_markers():
    turns = parse_turns("[seeker]你好[supporter]嗯嗯[seeker]我很难过")
    assert turns == [Turn("seeker", "你好"), Turn("supporter", "嗯嗯"), Turn("seeker", "我很难过")]
    assert data.format_turns(turns) == "[seeker]你好[supporter]嗯嗯[seeker]我很难过"


def test_text_without_markers_is_read_leniently():
    ex = Example("我很难过", "抱抱你", 7)
    assert ex.turns == [Turn("seeker", "我很难过")]
    assert ex.response_text == "抱抱你"
    assert ex.last_seeker_turn == "我很难过"
    # Text before the first marker is kept, not dropped.
    assert parse_turns("前言[supporter]嗯")[0] == Turn("seeker", "前言")


def test_public_test_set_loads_with_expected_counts(test_examples):
    assert len(test_examples) == 800
    counts = Counter(ex.label for ex in test_examples)
    assert counts == {7: 367, 2: 355, 0: 53, 5: 11, 1: 5, 3: 5, 4: 2, 6: 2}
    assert test_examples[5].id == "5"
    assert all(ex.response.startswith("[supporter]") for ex in test_examples)


def test_stats_match_the_benchmark_description(test_examples):
    s = data.dataset_stats(test_examples)
    assert s["turns"]["single_turn"] == 205
    assert (s["turns"]["min"], s["turns"]["median"], s["turns"]["max"]) == (1, 7, 12)
    assert (s["context_chars"]["min"], s["context_chars"]["max"]) == (15, 535)
    assert (s["response_chars"]["min"], s["response_chars"]["median"],
            s["response_chars"]["max"]) == (13, 25, 86)
    assert s["responses_with_newline"] == 67
    assert s["repeated_responses"] == 15
    assert round(100 * s["majority_accuracy"], 1) == 45.9


def _write(tmp_path, content, name="d.json", mode="w"):
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


GOOD = {"context": "[seeker]你好", "response": "[supporter]嗯", "label": 7}


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"response": "[supporter]嗯", "label": 7}, "item 1: missing field 'context'"),
        ({"context": "a", "label": 7}, "item 1: missing field 'response'"),
        ({"context": "a", "response": "b"}, "item 1: missing field 'label'"),
        ({"context": 3, "response": "b", "label": 7}, "field 'context' must be a string, got int"),
        ({"context": "a", "response": "b", "label": "7"}, "field 'label' must be an integer 0..7"),
        ({"context": "a", "response": "b", "label": True}, "field 'label' must be an integer 0..7"),
        ({"context": "a", "response": "b", "label": 8}, "field 'label' must be in 0..7, got 8"),
        ({"context": "a", "response": "b", "label": -1}, "field 'label' must be in 0..7, got -1"),
        ({"context": "  ", "response": "b", "label": 1}, "item 1: field 'context' is empty"),
        ({"context": "a", "response": "", "label": 1}, "item 1: field 'response' is empty"),
        (["a", "b", 1], "item 1: expected an object"),
    ],
)
def test_validation_errors_name_file_item_and_field(tmp_path, item, expected):
    p = _write(tmp_path, json.dumps([GOOD, item], ensure_ascii=False))
    with pytest.raises(DataError) as err:
        load_examples(p)
    assert str(p) in str(err.value)
    assert expected in str(err.value)


def test_invalid_json_reports_line_and_column(tmp_path):
    p = _write(tmp_path, '[\n {"context": "a",\n  "response": "b" "label": 1}\n]')
    with pytest.raises(DataError, match=r"invalid JSON at line 3, column 19"):
        load_examples(p)


def test_invalid_jsonl_line_reports_line(tmp_path):
    p = _write(tmp_path, json.dumps(GOOD) + "\n{oops\n", "d.jsonl")
    with pytest.raises(DataError, match=r"d.jsonl: invalid JSON at line 2, column 2"):
        load_examples(p)


def test_jsonl_item_errors_name_the_line(tmp_path):
    p = _write(tmp_path, json.dumps(GOOD) + "\n\n" + json.dumps({"context": "a"}) + "\n", "d.jsonl")
    with pytest.raises(DataError, match=r"line 3 \(item 1\): missing field 'response'"):
        load_examples(p)


def test_invalid_utf8(tmp_path):
    p = _write(tmp_path, b'[{"context": "\xff\xfe", "response": "b", "label": 1}]')
    with pytest.raises(DataError, match="not valid UTF-8"):
        load_examples(p)


@pytest.mark.parametrize("content", ["", "  \n", "[]"])
def test_empty_file(tmp_path, content):
    p = _write(tmp_path, content)
    with pytest.raises(DataError, match="empty"):
        load_examples(p)


def test_not_a_list_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_examples(tmp_path / "nope.json")
    p = _write(tmp_path, '{"context": "a"}', "obj.json")
    # A single object is read as one JSONL line, and then validated.
    with pytest.raises(DataError, match="missing field 'response'"):
        load_examples(p)


def test_duplicate_ids_are_rejected(tmp_path):
    rows = [dict(GOOD, id="a"), dict(GOOD, id="a")]
    p = _write(tmp_path, "\n".join(json.dumps(r) for r in rows), "d.jsonl")
    with pytest.raises(DataError, match="duplicate id 'a'"):
        load_examples(p)


def test_unlabelled_items_when_allowed(tmp_path):
    p = _write(tmp_path, json.dumps([{"context": "a", "response": "b"}]))
    assert load_examples(p, require_label=False)[0].label is None


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_write_then_load_round_trips(tmp_path, test_examples, suffix):
    out = tmp_path / f"copy{suffix}"
    data.write_examples(out, test_examples[:50])
    again = load_examples(out)
    assert [(e.context, e.response, e.label) for e in again] == \
        [(e.context, e.response, e.label) for e in test_examples[:50]]
    assert data.examples_hash(again) == data.examples_hash(test_examples[:50])


def test_stratified_kfold_partitions(test_examples):
    folds = data.stratified_kfold(test_examples, 5, seed=42)
    seen = []
    for train, test in folds:
        assert not set(train) & set(test)
        seen.extend(test.tolist())
    assert sorted(seen) == list(range(800))
    again = data.stratified_kfold(test_examples, 5, seed=42)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))
    other = data.stratified_kfold(test_examples, 5, seed=43)
    assert any((a[1] != b[1]).any() for a, b in zip(folds, other) if len(a[1]) == len(b[1]))


def test_train_dev_split_is_stratified_and_seeded(test_examples):
    train, dev = data.train_dev_split(test_examples, 0.2, seed=1)
    assert len(train) + len(dev) == 800
    assert not {e.id for e in train} & {e.id for e in dev}
    dev_counts = Counter(e.label for e in dev)
    # Whole context groups are drawn, so shares are within two items, not one.
    assert abs(dev_counts[7] - 0.2 * 367) <= 2 and abs(dev_counts[2] - 0.2 * 355) <= 2
    assert not {e.context for e in train} & {e.context for e in dev}
    assert [e.id for e in data.train_dev_split(test_examples, 0.2, seed=1)[1]] == \
        [e.id for e in dev]


def test_folds_keep_items_sharing_a_context_together(test_examples):
    groups = data.context_groups(test_examples)
    assert len(set(groups.tolist())) < len(test_examples)  # the public set has shared contexts
    for seed in (42, 43):
        for train, test in data.stratified_kfold(test_examples, 5, seed=seed):
            assert not set(groups[train].tolist()) & set(groups[test].tolist())
    # The plain splitter, kept for comparison, does straddle them.
    straddled = sum(
        len(set(groups[train].tolist()) & set(groups[test].tolist()))
        for train, test in data.stratified_kfold(test_examples, 5, seed=42, grouped=False))
    assert straddled > 0


def test_context_groups_ignore_whitespace():
    items = [data.Example("[seeker]a  b", "[supporter]x", 7), data.Example("[seeker]a b ", "[supporter]y", 2),
             data.Example("[seeker]c", "[supporter]x", 7)]
    assert data.context_groups(items).tolist() == [0, 0, 1]
