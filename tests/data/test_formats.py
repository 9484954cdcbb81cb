"""One reader: files, stdin text and parsed HTTP bodies give the same ids, text and errors."""

from __future__ import annotations

import json

import pytest

from mhsafety.data import examples_from_items, load_examples, read_items_text
from mhsafety.errors import DataError

ITEMS = [
    {"context": "[seeker]I feel alone.", "response": "[supporter]I'm here.", "label": 7},
    {"context": "no markers at all", "response": "plain reply"},
    {"id": "x9", "context": "[seeker]a[supporter]b[seeker]c", "response": "[supporter]d"},
]


def _sources(tmp_path):
    as_list = tmp_path / "items.json"
    as_list.write_text(json.dumps(ITEMS), encoding="utf-8")
    as_lines = tmp_path / "items.jsonl"
    as_lines.write_text("\n".join(json.dumps(i) for i in ITEMS) + "\n", encoding="utf-8")
    return {
        "json file": load_examples(as_list, require_label=False),
        "jsonl file": load_examples(as_lines, require_label=False),
        "jsonl text": read_items_text(as_lines.read_text(encoding="utf-8"), "<stdin>"),
        "json text": read_items_text(json.dumps(ITEMS), "<stdin>"),
        "objects": examples_from_items(ITEMS, "request body"),
    }


def test_every_reader_gives_the_same_examples(tmp_path):
    sources = _sources(tmp_path)
    first = sources["json file"]
    assert [e.id for e in first] == ["0", "1", "x9"]  # 0-based index unless an id is given
    for name, examples in sources.items():
        assert examples == first, name
    # Unmarked text reads as one seeker turn / the supporter's reply, markers added.
    assert first[1].context == "[seeker]no markers at all"
    assert first[1].response == "[supporter]plain reply"
    assert first[2].context == ITEMS[2]["context"]  # marked text is kept as it is


@pytest.mark.parametrize("bad, fragment", [
    ({"response": "r"}, "item 1: missing field 'context'"),
    ({"context": "c", "response": 3}, "item 1: field 'response' must be a string, got int"),
    ({"context": "c", "response": "r", "label": 9}, "item 1: field 'label' must be in 0..7"),
    ({"id": "0", "context": "c", "response": "r"}, "item 1: duplicate id '0'"),
])
def test_the_same_error_from_every_reader(tmp_path, bad, fragment):
    items = [ITEMS[0], bad]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(items), encoding="utf-8")
    with pytest.raises(DataError, match=fragment):
        load_examples(path, require_label=False)
    with pytest.raises(DataError, match=fragment):
        examples_from_items(items, "body")
    with pytest.raises(DataError, match=fragment):
        read_items_text(json.dumps(items), "<stdin>")


def test_empty_and_broken_text_are_one_sentence():
    with pytest.raises(DataError, match="<stdin>: no items"):
        read_items_text("  \n", "<stdin>")
    with pytest.raises(DataError, match="body: no items"):
        examples_from_items([], "body")
    with pytest.raises(DataError, match="<stdin>: invalid JSON at line 2"):
        read_items_text('{"context": "a", "response": "b"}\n{oops', "<stdin>")


def test_labels_can_be_required():
    with pytest.raises(DataError, match="missing field 'label'"):
        examples_from_items(ITEMS[1:], "body", require_label=True)


def test_an_item_over_the_size_limit_is_refused_with_its_index(monkeypatch):
    from mhsafety.data import MAX_ITEM_CHARS, MAX_ITEM_CHARS_ENV

    big = {"context": "[seeker]a", "response": "x" * MAX_ITEM_CHARS}
    with pytest.raises(DataError, match=r"body item 1: 100,009 characters .* limit of 100,000"):
        examples_from_items([ITEMS[0], big], "body")
    monkeypatch.setenv(MAX_ITEM_CHARS_ENV, str(2 * MAX_ITEM_CHARS))
    assert len(examples_from_items([ITEMS[0], big], "body")) == 2
    monkeypatch.setenv(MAX_ITEM_CHARS_ENV, "lots")
    with pytest.raises(DataError, match="must be a positive integer"):
        examples_from_items([ITEMS[0]], "body")
