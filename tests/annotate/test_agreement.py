"""Agreement statistics against published worked examples, and majority adjudication."""

from __future__ import annotations

import pytest

from mhsafety.annotate import agreement as ag


def _ratings(columns: dict[str, list]) -> dict[str, dict[str, object]]:
    """{annotator: [value per item, None = missing]} -> {item: {annotator: value}}."""
    out: dict[str, dict[str, object]] = {}
    for annotator, values in columns.items():
        for i, v in enumerate(values):
            if v is not None:
                out.setdefault(str(i), {})[annotator] = v
    return out


def test_cohen_kappa_textbook_2x2():
    # 50 items: both yes 20, a yes/b no 5, a no/b yes 10, both no 15 -> kappa 0.4.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    (pair,) = ag.cohen_pairs(_ratings({"a": a, "b": b}))
    assert pair["items"] == 50
    assert pair["observed"] == pytest.approx(0.7)
    assert pair["kappa"] == pytest.approx(0.4)


def test_cohen_kappa_undefined_when_both_use_one_category():
    (pair,) = ag.cohen_pairs(_ratings({"a": [7, 7, 7], "b": [7, 7, 7]}))
    assert pair["observed"] == 1.0 and pair["kappa"] is None


def test_fleiss_kappa_worked_example():
    # Fleiss (1971) style example as in the Wikipedia article: 10 items, 14 raters, 5 categories.
    counts = [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]
    ratings = {}
    for i, row in enumerate(counts):
        values = [c for c, n in enumerate(row, start=1) for _ in range(n)]
        ratings[str(i)] = {f"r{j}": v for j, v in enumerate(values)}
    result = ag.fleiss(ratings, [1, 2, 3, 4, 5])
    assert result["items"] == 10 and result["raters"] == 14
    assert result["kappa"] == pytest.approx(0.210, abs=5e-4)


def test_krippendorff_alpha_worked_example_with_missing_values():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers,
    # 12 units, missing values; nominal alpha = 0.743.
    ratings = _ratings({
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    })
    result = ag.krippendorff_alpha(ratings)
    assert result["items"] == 11  # unit 12 has a single rating
    assert result["alpha"] == pytest.approx(0.743, abs=5e-4)


def test_fleiss_uses_the_largest_group_of_equally_rated_items():
    ratings = _ratings({"a": [1, 2, 3, 1], "b": [1, 2, 3, None], "c": [1, 2, None, None]})
    result = ag.fleiss(ratings)
    # Items 0,1 have 3 ratings; item 2 has 2; item 3 has 1: the tie of group sizes picks 3.
    assert (result["items"], result["raters"]) == (2, 3)
    assert result["kappa"] == pytest.approx(1.0)


def test_adjudication_majority_and_ties():
    ratings = {"x": {"a": 2, "b": 2, "c": 7}, "y": {"a": 2, "b": 7}, "z": {"a": 0}}
    got = {d.item_id: d for d in ag.adjudicate(ratings, ["x", "y", "z", "w"])}
    assert (got["x"].label, got["x"].tie, got["x"].votes) == (2, False, {2: 2, 7: 1})
    assert (got["y"].label, got["y"].tie) == (None, True)
    assert (got["z"].label, got["z"].annotations) == (0, 1)
    assert (got["w"].label, got["w"].annotations, got["w"].tie) == (None, 0, False)


def test_node_ratings_only_count_walks_that_reached_the_node():
    rows = [
        {"item_id": "1", "annotator": "a", "answers": [False], "label": 0},
        {"item_id": "1", "annotator": "b", "answers": [True, False, True], "label": 2},
    ]
    assert ag.node_ratings(rows, 1) == {"1": {"a": False, "b": True}}
    assert ag.node_ratings(rows, 3) == {"1": {"b": True}}
    assert ag.node_ratings(rows, 4) == {}
