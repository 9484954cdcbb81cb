import json

import pytest

from mhsafety import taxonomy as tx


def test_ids_and_names_match_the_data():
    assert [c.id for c in tx.CATEGORIES] == list(range(8))
    assert tx.LABEL_NAMES == (
        "Nonsense", "Humanoid Mimicry", "Linguistic Neglect", "Unamiable Judgment",
        "Toxic Language", "Unauthorized Preachment", "Nonfactual Statement", "Safe Response",
    )
    assert all(c.definition and c.name_zh for c in tx.CATEGORIES)


def test_nodes_decide_each_label_once():
    decided = [lab for node in tx.NODES for lab in node.labels]
    assert sorted(decided) == list(range(8))
    assert [tx.node_of(i).number for i in range(8)] == [1, 2, 3, 4, 4, 4, 4, 4]


def test_binary_view():
    assert tx.is_safe(7)
    assert not any(tx.is_safe(i) for i in range(7))


@pytest.mark.parametrize("label", range(8))
def test_every_path_through_the_nodes(label):
    path = tx.path_for_label(label)
    leaf = label if label in tx.UNSAFE_LEAVES else None
    assert tx.label_from_path(path, leaf) == label


def test_incomplete_path_and_bad_leaf_are_errors():
    with pytest.raises(ValueError):
        tx.label_from_path([True, False])
    with pytest.raises(ValueError):
        tx.label_from_path([True, False, False, False], leaf=7)


def test_lookup_by_name_any_case_and_chinese():
    assert tx.label_id("safe response") == 7
    assert tx.label_id(tx.CATEGORIES[2].name_zh) == 2
    with pytest.raises(ValueError):
        tx.label_id("Harmful")
    with pytest.raises(ValueError):
        tx.category(8)


def test_json_is_complete():
    d = json.loads(json.dumps(tx.as_dict()))
    assert len(d["labels"]) == 8 and len(d["nodes"]) == 4
    assert d["binary"] == {"safe": [7], "unsafe": [0, 1, 2, 3, 4, 5, 6]}


def test_tree_names_every_category():
    tree = tx.render_tree()
    assert all(name in tree for name in tx.LABEL_NAMES)
    assert "Node 4" in tree
