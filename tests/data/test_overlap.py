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


# ------------------------------------------------------------------ fingerprint version 2

ORIGINAL = _ex(0, "[seeker]我最近睡不好，怎么办？[supporter]嗯嗯。[seeker]谢谢 OK",
               "[supporter]试试“放松”练习, 好吗?")


@pytest.mark.parametrize("context, response", [
    # a space (or line break) after / around each role tag
    ("[seeker] 我最近睡不好，怎么办？\n[supporter] 嗯嗯。 [seeker] 谢谢 OK",
     " [supporter] 试试“放松”练习, 好吗?"),
    # tag case changed (the reader then adds a tag of its own in front)
    ("[Seeker]我最近睡不好，怎么办？[SUPPORTER]嗯嗯。[SEEKER]谢谢 OK",
     "[Supporter]试试“放松”练习, 好吗?"),
    # NFKC: full-width letters, ideographic space
    ("[seeker]我最近睡不好，怎么办？[supporter]嗯嗯。[seeker]谢谢\u3000ＯＫ",
     "[supporter]试试“放松”练习, 好吗?"),
    # ASCII punctuation made full-width, and full-width made ASCII
    ("[seeker]我最近睡不好,怎么办?[supporter]嗯嗯.[seeker]谢谢 OK",
     "[supporter]试试\"放松\"练习，好吗？"),
    # zero-width spaces and a byte-order mark
    ("\ufeff[seeker]我最近\u200b睡不好，怎么办？[supporter]嗯嗯。[seeker]谢谢 OK",
     "[supporter]试试“放松”\u200b练习, 好吗?"),
    # full-width brackets around the tags
    ("［seeker］我最近睡不好，怎么办？【supporter】嗯嗯。[seeker]谢谢 OK",
     "[supporter]试试“放松”练习, 好吗?"),
])
def test_copies_changed_in_no_meaning_are_found(context, response):
    from mhsafety.data import examples_from_items

    # Read as a file would be, so the reader's own handling of odd tags is part of the test.
    [copy] = examples_from_items([{"id": "copy", "context": context, "response": response}],
                                 "copy")
    assert find_overlap([ORIGINAL], [copy]) == ["copy"]


@pytest.mark.parametrize("context, response", [
    ("[seeker]我最近睡不好，怎么办？[supporter]嗯嗯。[seeker]谢谢 OK",
     "[supporter]试试“放松”练习, 好吗!"),                     # another mark
    ("[supporter]我最近睡不好，怎么办？[seeker]嗯嗯。[seeker]谢谢 OK",
     "[supporter]试试“放松”练习, 好吗?"),                     # roles swapped
    ("[seeker]我最近睡不好，怎么办？[supporter]嗯嗯。[seeker]谢谢 ok",
     "[supporter]试试“放松”练习, 好吗?"),                     # case of the text itself
    ("[seeker]我最近睡不好，怎么办？[supporter]嗯嗯。",
     "[supporter]谢谢 OK试试“放松”练习, 好吗?"),               # a turn moved across the pair
])
def test_items_that_differ_in_meaning_stay_apart(context, response):
    assert find_overlap([ORIGINAL], [_ex(1, context, response)]) == []


def test_distinct_items_of_the_test_set_do_not_collapse(test_examples):
    from mhsafety.data import item_fingerprints

    assert len(set(item_fingerprints(test_examples))) == len(test_examples)


def test_checkpoint_with_version_1_fingerprints_is_checked_and_warns():
    from mhsafety.data import checkpoint_overlap, item_fingerprints

    train = [ORIGINAL]
    same = [_ex(5, ORIGINAL.context + " ", ORIGINAL.response)]
    spaced = [_ex(6, ORIGINAL.context.replace("[seeker]", "[seeker] "), ORIGINAL.response)]
    old = {"train_item_fingerprints": item_fingerprints(train, version=1)}
    found = checkpoint_overlap(old, same, "ckpt")
    assert found.shared == ["id5"] and "version-1" in found.warning and "ckpt" in found.warning
    assert checkpoint_overlap(old, spaced).shared == []  # what v1 misses, hence the warning
    new = {"train_item_fingerprints": item_fingerprints(train), "fingerprint_version": 2}
    assert checkpoint_overlap(new, spaced).shared == ["id6"]
    assert checkpoint_overlap(new, spaced).warning is None
    assert checkpoint_overlap({}, spaced).warning  # nothing recorded: said, never silent


def test_check_checkpoint_overlap_refuses_in_one_sentence():
    from mhsafety.data import check_checkpoint_overlap, item_fingerprints

    manifest = {"train_item_fingerprints": item_fingerprints([ORIGINAL]),
                "fingerprint_version": 2}
    with pytest.raises(OverlapError) as err:
        check_checkpoint_overlap(manifest, [ORIGINAL], "checkpoint c", "test.json")
    assert "1 of the 1 items of test.json" in str(err.value) and "\n" not in str(err.value)
    assert check_checkpoint_overlap(manifest, [ORIGINAL], "c", "t", allow=True).shared == ["id0"]


def test_unknown_fingerprint_version_is_refused():
    from mhsafety.data import item_fingerprint
    from mhsafety.errors import DataError

    with pytest.raises(DataError, match="version 3"):
        item_fingerprint(ORIGINAL, version=3)
