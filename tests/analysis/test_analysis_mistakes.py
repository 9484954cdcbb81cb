from __future__ import annotations

import numpy as np
import pytest

from mhsafety.analysis import (
    SystemPredictions,
    align,
    class_coverage,
    missed_by_all,
    run_agreement,
    top_confusions,
)
from mhsafety.errors import DataError

GOLD = np.array([0, 0, 0, 2, 2, 7, 7, 7])


def _system(name, preds, gold=GOLD, ids=None):
    ids = ids or [str(i) for i in range(len(gold))]
    preds = np.asarray(preds)
    return SystemPredictions(name, [str(r) for r in range(len(preds))], ids, np.asarray(gold),
                             preds)


A = _system("A", [[0, 7, 2, 2, 7, 7, 7, 2],
                  [0, 0, 2, 2, 7, 7, -1, 2],
                  [0, 7, 7, 2, 2, 7, 7, 2]])
B = _system("B", [[7, 7, 7, 2, 2, 2, 7, 2]])


def test_class_coverage_counts_any_all_none():
    cov = {c.name: c for c in class_coverage(A)}
    nonsense = cov["Nonsense"]
    assert (nonsense.n_items, nonsense.right_any, nonsense.right_all, nonsense.right_none) == \
        (3, 2, 1, 1)
    safe = cov["Safe Response"]
    # item 5 right in all runs, item 6 in two (one invalid), item 7 never
    assert (safe.right_any, safe.right_all, safe.right_none) == (2, 1, 1)
    assert safe.mean_recall == pytest.approx((3 + 2 + 0) / 9)
    assert cov["Toxic Language"].n_items == 0 and cov["Toxic Language"].mean_recall is None


def test_missed_by_all_lists_items_no_run_gets_right():
    missed = missed_by_all([A, B])
    assert [m.id for m in missed] == ["2", "7"]
    # item 2 (Nonsense): A says Linguistic Neglect twice and Safe once, B says Safe
    item = missed[0]
    assert item.gold_name == "Nonsense"
    assert item.predictions["A"] == {"Linguistic Neglect": 2, "Safe Response": 1}
    assert item.predictions["B"] == {"Safe Response": 1}


def test_top_confusions_are_sorted_and_cumulative():
    pairs = top_confusions([A])
    total = int((~A.correct).sum())
    assert sum(p.count for p in pairs) == total
    counts = [p.count for p in pairs]
    assert counts == sorted(counts, reverse=True)
    # ties (3 errors each) are ordered by gold then predicted label id
    assert [(p.gold_name, p.pred_name, p.count) for p in pairs[:2]] == [
        ("Nonsense", "Safe Response", 3), ("Safe Response", "Linguistic Neglect", 3)]
    assert pairs[-1].cumulative_share == pytest.approx(1.0)
    assert any(p.pred_name == "(invalid)" for p in pairs)


def test_run_agreement_and_fleiss_kappa():
    agreement = run_agreement(A)
    assert agreement.items_disagree == 4  # items 1, 2, 4, 6
    assert agreement.items_flipping_correctness == 3  # items 1, 4, 6 (item 2 is never right)
    assert agreement.mean_pairwise_agreement == pytest.approx(np.mean([6 / 8, 6 / 8, 4 / 8]))
    sm = pytest.importorskip("statsmodels.stats.inter_rater")
    cols = np.where(A.pred < 0, 8, A.pred).T  # items x raters
    table, _ = sm.aggregate_raters(cols, n_cat=9)
    assert agreement.fleiss_kappa == pytest.approx(sm.fleiss_kappa(table))
    single = run_agreement(B)
    assert single.mean_pairwise_agreement is None and single.fleiss_kappa is None


def test_align_reports_left_out_items_and_rejects_conflicting_gold():
    partial = _system("C", [[0, 0, 2]], gold=GOLD[:3], ids=["0", "1", "2"])
    joint = align([A, partial])
    assert joint.ids == ["0", "1", "2"]
    assert joint.left_out == {"A": 5, "C": 0}
    conflicting = _system("D", [[0, 0]], gold=np.array([7, 0]), ids=["0", "1"])
    with pytest.raises(DataError, match="item '0' has gold label 0 for system 'A' but 7"):
        align([A, conflicting])
    disjoint = _system("E", [[0]], gold=np.array([0]), ids=["x"])
    with pytest.raises(DataError, match="share no item ids"):
        align([A, disjoint])
