"""The overlap guard: shared (context, response) items are found after whitespace
normalisation and refused in one sentence naming the count and the first ids."""

from __future__ import annotations

import pytest

from mhsafety.data import Example, OverlapError, check_overlap, find_overlap


def _ex(i, context, response, label=7):
    return Example(context, response, label, f"id{i}")


TRAIN = [_ex(0, "[seeker]I feel  alone", "[supporter]I'm here."),
         _ex(1, "[seeker]so tired", "[supporter]rest")]


def test_whitespace_does_not_hide_a_shared_item():
    test = [_ex(10, "[seeker]I feel alone ", "[supporter]I'm  here."),
            _ex(11, "[seeker]so tired", "[supporter]sleep then"),  # same context only
            _ex(12, "[seeker]so\ttired", "[supporter]rest")]
    assert find_overlap(TRAIN, test) == ["id10", "id12"]


def test_refusal_names_count_and_first_ids():
    test = [_ex(100 + i, "[seeker]so tired", "[supporter]rest") for i in range(7)]
    with pytest.raises(OverlapError) as err:
        check_overlap(TRAIN, test, "train.jsonl", "test.json")
    text = str(err.value)
    assert text.startswith("7 of the 7 items of test.json also occur in train.jsonl")
    assert "id100, id101, id102, id103, id104, ..." in text and "--allow-overlap" in text
    assert "\n" not in text
    assert check_overlap(TRAIN, test, "a", "b", allow=True) == [f"id{100 + i}" for i in range(7)]


def test_disjoint_sets_pass():
    assert check_overlap(TRAIN, [_ex(5, "[seeker]x", "[supporter]y")], "a", "b") == []
