"""How far to trust a grader, checked against scikit-learn, statsmodels and krippendorff."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa
from statsmodels.stats.proportion import proportion_confint

from mhsafety.analysis import validity as v

N = 400


@pytest.fixture
def graded():
    """Gold labels, a decent grader, a weak one, and the decent one with abstentions."""
    rng = np.random.default_rng(11)
    gold = rng.choice(8, size=N, p=[.07, .02, .42, .02, .01, .02, .01, .43])
    good = np.where(rng.random(N) < 0.7, gold, rng.integers(0, 8, N))
    weak = np.where(rng.random(N) < 0.3, gold, rng.integers(0, 8, N))
    holes = good.astype(float)
    holes[rng.random(N) < 0.1] = np.nan
    return gold, good, weak, holes


def test_kappa_matches_scikit_learn_eight_way_and_binary(graded):
    gold, good, _, _ = graded
    k = v.cohen_kappa(gold, good, resamples=500)
    assert k.kappa == pytest.approx(cohen_kappa_score(gold, good))
    assert k.interval.low < k.kappa < k.interval.high and k.n == N
    kb = v.cohen_kappa(gold, good, binary=True, resamples=500)
    assert kb.kappa == pytest.approx(cohen_kappa_score(gold != 7, good != 7))


def test_an_abstention_is_a_disagreement_not_a_free_pass(graded):
    gold, good, _, holes = graded
    missing = np.isnan(holes)
    k = v.cohen_kappa(gold, holes, resamples=200)
    as_category = np.where(missing, 99, good)
    assert k.kappa == pytest.approx(cohen_kappa_score(gold, as_category))
    assert k.abstained == missing.sum()
    assert k.kappa < v.cohen_kappa(gold, good, resamples=200).kappa
    dropped = v.cohen_kappa(gold, holes, abstain="drop", resamples=200)
    assert dropped.kappa == pytest.approx(cohen_kappa_score(gold[~missing], good[~missing]))
    assert dropped.n == N - missing.sum()


def test_probability_rows_with_nan_are_abstentions():
    probs = np.eye(8)[[0, 7, 2]]
    probs[1] = np.nan
    assert v.as_labels(probs).tolist() == [0, -1, 2]
    assert v.as_labels([3, None, -1, float("nan")]).tolist() == [3, -1, -1, -1]
    assert v.unsafe_view([7, 2, None]).tolist() == [0, 1, -1]
    with pytest.raises(ValueError, match="0..7"):
        v.as_labels([8])


def test_kappa_interval_is_reproducible_and_narrows_with_agreement(graded):
    gold, good, weak, _ = graded
    a = v.cohen_kappa(gold, good, resamples=300, seed=3)
    assert a == v.cohen_kappa(gold, good, resamples=300, seed=3)
    w = v.cohen_kappa(gold, weak, resamples=300)
    assert w.interval.high < a.interval.low


def test_sensitivity_and_specificity_with_wilson_intervals(graded):
    gold, good, _, holes = graded
    b = v.binary_validity(gold, good)
    unsafe, safe = gold != 7, gold == 7
    tp, tn = int((unsafe & (good != 7)).sum()), int((safe & (good == 7)).sum())
    assert b.sensitivity.count == tp and b.sensitivity.n == unsafe.sum()
    assert b.specificity.count == tn and b.specificity.n == safe.sum()
    low, high = proportion_confint(tp, int(unsafe.sum()), alpha=0.05, method="wilson")
    assert (b.sensitivity.low, b.sensitivity.high) == pytest.approx((low, high))
    assert b.youden_j == pytest.approx(tp / unsafe.sum() + tn / safe.sum() - 1)
    # Abstentions are misses on both sides unless dropped.
    with_holes = v.binary_validity(gold, holes)
    assert with_holes.abstained_unsafe + with_holes.abstained_safe == np.isnan(holes).sum()
    assert with_holes.sensitivity.n == unsafe.sum()
    assert with_holes.sensitivity.value < b.sensitivity.value
    dropped = v.binary_validity(gold, holes, abstain="drop")
    assert dropped.sensitivity.n == unsafe.sum() - with_holes.abstained_unsafe


def test_a_binary_only_grader_gives_its_verdicts_directly():
    gold = [7, 2, 4, 7]
    b = v.binary_validity(gold, [False, True, None, True])
    assert (b.sensitivity.count, b.sensitivity.n) == (1, 2)
    assert (b.specificity.count, b.specificity.n) == (1, 2)
    assert v.binary_validity(gold, np.array([False, True, True, False])).sensitivity.value == 1


def test_reliability_matches_statsmodels_and_krippendorff(graded):
    gold, good, weak, _ = graded
    rounds = np.column_stack([gold, good, weak])
    r = v.reliability(rounds)
    table, _ = aggregate_raters(rounds)
    assert r.fleiss_kappa == pytest.approx(fleiss_kappa(table, method="fleiss"))
    assert r.fleiss_items == N
    assert r.alpha == pytest.approx(krippendorff.alpha(reliability_data=rounds.T.astype(float),
                                                       level_of_measurement="nominal"))
    pairs = {(p["a"], p["b"]): p["kappa"] for p in r.pairs}
    assert pairs[("0", "1")] == pytest.approx(cohen_kappa_score(gold, good))
    agree = np.mean([int(a == b) + int(a == c) + int(b == c) for a, b, c in rounds]) / 3
    assert r.observed == pytest.approx(agree)


def test_reliability_with_abstentions_leaves_them_out(graded):
    gold, _, _, holes = graded
    r = v.reliability({"gold": gold, "grader": holes})
    data = np.vstack([gold.astype(float), holes])
    assert r.alpha == pytest.approx(krippendorff.alpha(reliability_data=data,
                                                       level_of_measurement="nominal"))
    assert r.fleiss_items == N - np.isnan(holes).sum()
    assert r.abstained == pytest.approx(np.isnan(holes).sum() / (2 * N))
    with pytest.raises(ValueError, match="two raters"):
        v.reliability([gold])


def test_binary_reliability_of_guard_verdicts():
    r = v.reliability({"a": [True, False, True, None], "b": [True, False, False, True]},
                      binary=True)
    assert r.items == 4 and r.fleiss_items == 3


def test_panel_majority_abstains_when_nobody_answers_and_on_ties():
    a = [2, 7, None, 2, 7]
    b = [2, 2, None, 7, None]
    c = [4, 2, None, None, None]
    assert v.panel_vote([a, b, c]).tolist() == [2, 2, -1, -1, 7]


def test_an_abstention_never_votes_safe():
    # Two graders abstain, one says unsafe: the panel says unsafe, never safe.
    votes = v.panel_vote([[None], [None], [True]], binary=True)
    assert votes.tolist() == [1]
    assert v.panel_vote([[None], [None]], binary=True).tolist() == [-1]
    assert v.panel_vote([[None], [False]], binary=True, min_votes=2).tolist() == [-1]


def test_weighted_panel_follows_the_more_accurate_grader(graded):
    gold, good, weak, _ = graded
    weights = v.accuracy_weights(gold, [good, weak, weak])
    assert weights[0] > weights[1]
    assert weights[0] == pytest.approx(np.mean(good == gold))
    plain = v.panel_vote([good, weak, weak])
    odds = v.accuracy_weights(gold, [good, weak, weak], scheme="log_odds")
    weighted = v.panel_vote([good, weak, weak], odds)
    assert np.mean(weighted == gold) > np.mean(plain == gold)
    with pytest.raises(ValueError, match="one non-negative number per grader"):
        v.panel_vote([good, weak], [1.0])


def test_panel_of_label_graders_in_the_binary_view(graded):
    _, good, weak, holes = graded
    votes = v.panel_vote([good, holes, weak], binary=True)
    assert set(np.unique(votes)) <= {-1, 0, 1}
    both = (v.unsafe_view(good) == v.unsafe_view(holes)) & (v.unsafe_view(holes) >= 0)
    assert (votes[both] == v.unsafe_view(good)[both]).all()
