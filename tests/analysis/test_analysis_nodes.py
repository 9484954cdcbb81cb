"""Per-node scores: the four decisions of the sequential framework, checked by hand and
against scikit-learn, and never flattered by invalid answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import precision_recall_fscore_support

from mhsafety.analysis.nodes import DECISIONS, node_scores, node_support
from mhsafety.metrics import confusion_matrix
from mhsafety.taxonomy import NODES


def _scores(gold, pred) -> dict[str, float]:
    return {k: float(v) for k, v in node_scores(confusion_matrix(gold, pred)).items()}


def test_decisions_follow_the_taxonomy_nodes():
    assert [d.key for d in DECISIONS] == ["node1", "node2", "node3", "node4", "node4-kind"]
    assert DECISIONS[0].rows == tuple(range(8))  # every item reaches node 1
    assert DECISIONS[1].rows == (1, 2, 3, 4, 5, 6, 7) and DECISIONS[1].positive == NODES[1].labels
    assert DECISIONS[3].rows == (3, 4, 5, 6, 7)
    assert DECISIONS[4].kinds == (3, 4, 5, 6)
    assert node_support([0, 1, 2, 3, 7, 7]) == {"node1": 6, "node2": 5, "node3": 4,
                                                "node4": 3, "node4-kind": 1}


def test_a_small_case_by_hand():
    gold = [0, 0, 1, 2, 7, 7, 3, 5]
    pred = [0, 2, 1, 2, 0, 7, 5, None]
    s = _scores(gold, pred)
    # node 1 over all 8 items: Nonsense said for items 0 and 4, and the invalid answer on
    # item 7 (not Nonsense) lands on the wrong side: 1 right of 3; 1 of the 2 Nonsense found
    assert (s["node1:precision"], s["node1:recall"]) == pytest.approx((1 / 3, 1 / 2))
    # node 4 over gold 3..7 (items 4..7): unsafe predicted for item 4 (Nonsense on a safe
    # item), 6, and the invalid answer on unsafe item 7 is a miss
    assert s["node4:precision"] == pytest.approx(1 / 2)
    assert s["node4:recall"] == pytest.approx(1 / 2)
    # which unsafe kind, over items 6 and 7: both wrong
    assert s["node4-kind:recall"] == 0.0 and s["node4-kind:precision"] == 0.0


@pytest.mark.parametrize("seed", range(8))
def test_yes_no_nodes_equal_sklearn_on_the_items_that_reach_them(seed):
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 8, 300)
    pred = rng.integers(0, 8, 300).astype(object)
    pred[rng.random(300) < 0.1] = None
    s = _scores(gold.tolist(), pred.tolist())
    for d in DECISIONS:
        mask = np.isin(gold, d.rows)
        g = np.isin(gold[mask], d.positive if not d.kinds else d.kinds)
        if d.kinds:
            continue
        # an invalid answer lands on the wrong side
        said = np.array([(not truth) if p is None else (p in d.positive)
                         for p, truth in zip(pred[mask], g)])
        p, r, f, _ = precision_recall_fscore_support(g, said, average="binary", zero_division=0)
        assert (s[f"{d.key}:precision"], s[f"{d.key}:recall"], s[f"{d.key}:f1"]) == \
            pytest.approx((p, r, f)), d.key


def test_which_unsafe_kind_equals_sklearn_without_invalid_answers():
    rng = np.random.default_rng(3)
    gold = rng.choice([3, 4, 5, 6, 7, 2], 400)
    pred = rng.integers(0, 8, 400)
    s = _scores(gold.tolist(), pred.tolist())
    mask = np.isin(gold, (3, 4, 5, 6))
    p, r, f, _ = precision_recall_fscore_support(gold[mask], pred[mask], labels=[3, 4, 5, 6],
                                                 average="weighted", zero_division=0)
    assert (s["node4-kind:precision"], s["node4-kind:recall"], s["node4-kind:f1"]) == \
        pytest.approx((p, r, f))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_switching_wrong_answers_to_invalid_never_gains_at_any_node(data):
    n = data.draw(st.integers(2, 50))
    gold = data.draw(st.lists(st.integers(0, 7), min_size=n, max_size=n))
    pred = data.draw(st.lists(st.one_of(st.none(), st.integers(0, 7)), min_size=n, max_size=n))
    wrong = [i for i in range(n) if pred[i] is not None and pred[i] != gold[i]]
    if not wrong:
        return
    switched = set(data.draw(st.lists(st.sampled_from(wrong), min_size=1, unique=True)))
    after = [None if i in switched else p for i, p in enumerate(pred)]
    before, later = _scores(gold, pred), _scores(gold, after)
    for name, value in later.items():
        if np.isnan(value):
            assert np.isnan(before[name])
        else:
            assert value <= before[name] + 1e-12, (name, before[name], value)


def test_evaluate_nodes_prints_the_per_node_table(upstream_runs, capsys):
    from mhsafety.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(upstream_runs), "--nodes"])
        raise SystemExit(0)
    out = capsys.readouterr().out
    assert exc.value.code == 0
    assert "### BERT-base (per node)" in out and "### ChatGPT-0613 zero-shot (per node)" in out
    for title, n in (("Node 1: Nonsense or not", 800), ("Node 2: Humanoid Mimicry or not", 747),
                     ("Node 3: Linguistic Neglect or not", 742),
                     ("Node 4: unsafe or safe", 387), ("Node 4: which unsafe kind", 20)):
        cells = [c.strip() for c in next(line for line in out.splitlines()
                                         if line.startswith(f"| {title}")).split("|")]
        assert cells[2] == str(n), (title, cells)


def test_analysis_has_run_aware_node_intervals(upstream_runs):
    from mhsafety.analysis import analyze, format_analysis

    result = analyze([upstream_runs], resamples=300, seed=0)
    bert = result.summary("BERT-base")
    assert bert.bootstrap == "runs and items" and bert.node_n["node4-kind"] == 20
    iv = bert.intervals["node1:f1"]
    assert iv.method == "runs and items" and iv.low < iv.estimate < iv.high
    text = format_analysis(result)
    assert "## Per-node scores" in text and "Node 4: which unsafe kind" in text
    # the row carries the note of its records, in its words
    assert bert.notes == ["selected-on-test"]
    assert "| BERT-base [epoch picked on the test set] |" in text


def test_evaluate_json_with_extra_tables_is_one_document(upstream_runs, capsys):
    import json

    from mhsafety.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(upstream_runs), "--format", "json", "--nodes", "--per-class"])
        raise SystemExit(0)
    assert exc.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["system"] for r in data["table"]] == [n["system"] for n in data["nodes"]]
    bert = next(n for n in data["nodes"] if n["system"] == "BERT-base")
    assert bert["n"]["node4-kind"] == 20 and bert["runs"] == 5
    assert data["per_class"][0]["classes"]["Nonsense"]["support"] == 53
