from __future__ import annotations

import math

import numpy as np
import pytest

from mhsafety.analysis import (
    SystemPredictions,
    bootstrap_distribution,
    bootstrap_indices,
    confidence_intervals,
    holm,
    mcnemar,
    paired_bootstrap,
    point_scores,
)
from mhsafety.analysis.stats import (
    compare_all,
    format_p,
    p_floor,
    reliability_bins,
    run_counts,
)
from mhsafety.metrics import aggregate_runs, compute_metrics, score_names
from mhsafety.taxonomy import LABEL_NAMES
from tests.helpers.analysis import noisy_preds


def _system(name: str, gold: np.ndarray, preds: np.ndarray) -> SystemPredictions:
    ids = [str(i) for i in range(gold.size)]
    return SystemPredictions(name, [str(r) for r in range(len(preds))], ids, gold, preds)


def _as_labels(row: np.ndarray) -> list[int | None]:
    return [None if p < 0 else int(p) for p in row]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_point_scores_match_compute_metrics(gold, seed):
    preds = noisy_preds(gold, 0.6, 3, seed, invalid=0.05)
    system = _system("s", gold, preds)
    per_run = {str(r): compute_metrics(gold.tolist(), _as_labels(row))
               for r, row in enumerate(preds)}
    expected = aggregate_runs("s", per_run)
    got = point_scores(system)
    for name in score_names():
        assert got[name] == pytest.approx(expected.scores[name].mean, abs=1e-12), name
    for name in LABEL_NAMES:
        assert got[f"recall:{name}"] == pytest.approx(
            expected.per_class[name]["recall"].mean, abs=1e-12)
        assert got[f"f1:{name}"] == pytest.approx(expected.per_class[name]["f1"].mean,
                                                  abs=1e-12)


def test_bootstrap_values_equal_scores_of_the_resampled_items(gold):
    """The count-vector shortcut must give what scoring the drawn items directly gives."""
    preds = noisy_preds(gold, 0.55, 3, 3, invalid=0.02)
    system = _system("s", gold, preds)
    items_only = bootstrap_distribution(system, resamples=6, seed=11, resample_runs=False)
    two_level = bootstrap_distribution(system, resamples=6, seed=11)
    indices = bootstrap_indices(gold.size, 6, 11)
    drawn_runs = run_counts("s", 3, 6, 11)
    assert (drawn_runs.sum(axis=1) == 3).all()
    for b, idx in enumerate(indices):
        runs = [compute_metrics(gold[idx].tolist(), _as_labels(row[idx])) for row in preds]
        for name in ("accuracy", "precision", "f1", "macro_f1", "unsafe_recall",
                     "unsafe_precision"):
            values = np.array([m.score(name) for m in runs])
            assert items_only[name][b] == pytest.approx(values.mean(), abs=1e-9), (name, b)
            # two levels: the same items, then the runs drawn with replacement
            assert two_level[name][b] == pytest.approx(
                (values * drawn_runs[b]).sum() / 3, abs=1e-9), (name, b)


def test_two_level_bootstrap_shows_run_to_run_variance():
    """Five runs, one collapsed (as RoBERTa's seed in the upstream release): resampling items
    alone gives the width of one test set; resampling runs too widens it."""
    rng = np.random.default_rng(9)
    gold = rng.integers(0, 8, 800)
    keep = np.array([0.72, 0.71, 0.73, 0.70, 0.62])[:, None]
    preds = np.where(rng.random((5, 800)) < keep, gold, (gold + 1) % 8)
    system = _system("s", gold, preds)
    items = confidence_intervals(system, resamples=3000, seed=1, resample_runs=False)
    both = confidence_intervals(system, resamples=3000, seed=1)
    assert items["accuracy"].method == "items" and both["accuracy"].method == "runs and items"
    assert items["accuracy"].estimate == both["accuracy"].estimate
    run_std = np.std((preds == gold).mean(axis=1), ddof=1)
    width_items = items["accuracy"].high - items["accuracy"].low
    width_both = both["accuracy"].high - both["accuracy"].low
    assert width_both > 1.3 * width_items
    # the second level adds about the run variance of a mean of 5 runs
    expected = 2 * 1.96 * math.sqrt((width_items / 3.92) ** 2 + run_std ** 2 / 5)
    assert width_both == pytest.approx(expected, rel=0.25)
    one_run = _system("one", gold, preds[:1])
    assert confidence_intervals(one_run, resamples=200, seed=1)["accuracy"].method == "items"


def test_p_values_at_the_resampling_floor_are_printed_as_bounds(gold):
    good = _system("good", gold, noisy_preds(gold, 0.9, 3, 1))
    weak = _system("weak", gold, noisy_preds(gold, 0.3, 3, 2))
    result = paired_bootstrap(weak, good, "accuracy", resamples=2000, seed=0)
    assert result.at_floor and result.p_value == pytest.approx(p_floor(2000))
    assert format_p(result.p_value, result.at_floor) == "< 0.001"
    assert format_p(0.01234) == "0.0123"
    [c] = compare_all([weak, good], [bootstrap_distribution(s, 2000, 0) for s in (weak, good)])
    assert "accuracy" in c.bounded and "mcnemar" not in c.bounded
    assert c.mcnemar.basis == "majority vote over runs"


def test_intervals_are_seeded_and_have_the_binomial_width():
    rng = np.random.default_rng(5)
    gold = rng.integers(0, 8, 800)
    preds = np.where(rng.random((1, 800)) < 0.7, gold, (gold + 1) % 8)
    system = _system("s", gold, preds)
    first = confidence_intervals(system, resamples=4000, seed=3)
    again = confidence_intervals(system, resamples=4000, seed=3)
    other = confidence_intervals(system, resamples=4000, seed=4)
    acc = first["accuracy"]
    assert acc == again["accuracy"]
    assert (acc.low, acc.high) != (other["accuracy"].low, other["accuracy"].high)
    assert acc.low < acc.estimate < acc.high
    p = acc.estimate
    expected_width = 2 * 1.96 * math.sqrt(p * (1 - p) / 800)
    assert acc.high - acc.low == pytest.approx(expected_width, rel=0.15)


def test_rare_class_absent_from_a_resample_is_skipped_not_zero():
    gold = np.array([0] + [7] * 99)
    preds = gold[None, :].copy()  # always right
    dist = bootstrap_distribution(_system("s", gold, preds), resamples=500, seed=0)
    recall = dist["recall:Nonsense"]
    assert np.isnan(recall).any() and (recall[np.isfinite(recall)] == 1.0).all()


def test_small_class_gets_an_exact_interval_not_a_degenerate_one():
    """Issue 20: a 2-item class scored [0.0, 0.0], a 1-item one [100, 100]."""
    from scipy.stats import beta

    from mhsafety.analysis.stats import EXACT, EXACT_BELOW

    gold = np.array([0, 0, 1] + [7] * 97)
    preds = gold.copy()
    preds[:2] = 7  # both Nonsense items missed; the Mimicry item right
    ci = confidence_intervals(_system("s", gold, preds[None, :]), resamples=500, seed=0)
    missed, right = ci["recall:Nonsense"], ci["recall:Humanoid Mimicry"]
    assert missed.method == EXACT and missed.estimate == 0.0 and missed.low == 0.0
    assert missed.high == pytest.approx(beta.ppf(0.975, 1, 2))  # 0.84, not 0
    assert right.low == pytest.approx(0.025) and right.high == 1.0
    assert ci["recall:Safe Response"].method != EXACT  # 97 items: the bootstrap
    assert EXACT_BELOW == 20
    # F1 of a 2-item class has no exact interval: none is given rather than [0, 0].
    assert math.isnan(ci["f1:Nonsense"].low) and math.isnan(ci["f1:Nonsense"].high)
    # Node 2's "yes" items are the one Mimicry item, however many items reach node 2.
    assert ci["node2:recall"].method == EXACT and ci["node2:recall"].low == pytest.approx(0.025)


def test_precision_of_a_resample_with_no_prediction_is_undefined_not_zero():
    """A class the system predicts once (rightly): resamples that miss that item have no
    prediction of it, and count as undefined rather than 0 precision."""
    gold = np.array([1] + [0] * 30 + [7] * 69)
    preds = np.array([1] + [0] * 30 + [7] * 69)
    dist = bootstrap_distribution(_system("s", gold, preds[None, :]), resamples=300, seed=0)
    precision = dist["precision:Humanoid Mimicry"]
    assert np.isnan(precision).any() and (precision[np.isfinite(precision)] == 1.0).all()
    node2 = dist["node2:precision"]
    assert np.nanmin(node2) == 1.0


def test_paired_bootstrap_detects_a_real_difference_and_not_a_null_one(gold):
    good = _system("good", gold, noisy_preds(gold, 0.8, 3, 1))
    weak = _system("weak", gold, noisy_preds(gold, 0.45, 3, 2))
    twin = _system("twin", gold, good.pred.copy())
    result = paired_bootstrap(weak, good, "accuracy", resamples=2000, seed=0)
    assert result.difference < 0 and result.high < 0
    assert result.p_value < 0.01
    same = paired_bootstrap(good, twin, "accuracy", resamples=2000, seed=0)
    assert same.difference == 0 and same.p_value == 1.0


def test_paired_tests_refuse_unaligned_systems(gold):
    a = _system("a", gold, noisy_preds(gold, 0.8, 1, 1))
    b = _system("b", gold[:-1], noisy_preds(gold[:-1], 0.8, 1, 2))
    with pytest.raises(ValueError, match="aligned"):
        paired_bootstrap(a, b, resamples=10)
    with pytest.raises(ValueError, match="aligned"):
        mcnemar(a, b)


def test_mcnemar_counts_discordant_items_and_matches_the_exact_test():
    gold = np.zeros(40, dtype=int)
    a = np.zeros(40, dtype=int)
    b = np.zeros(40, dtype=int)
    a[:2] = 1  # A wrong, B right on 2 items
    b[2:12] = 1  # B wrong, A right on 10 items
    a[12:15] = b[12:15] = 3  # both wrong on 3 items
    result = mcnemar(_system("A", gold, a[None]), _system("B", gold, b[None]))
    assert (result.a_only, result.b_only) == (10, 2)
    # exact two-sided binomial: 2 * P(X <= 2), X ~ Bin(12, 1/2)
    assert result.p_value == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert result.odds_ratio == pytest.approx(5.0)
    assert result.accuracy_difference == pytest.approx(8 / 40)
    sm = pytest.importorskip("statsmodels.stats.contingency_tables")
    table = [[25, 10], [2, 3]]  # rows: A right/wrong, cols: B right/wrong
    assert result.p_value == pytest.approx(sm.mcnemar(table, exact=True).pvalue)


def test_mcnemar_uses_majority_over_runs():
    gold = np.zeros(5, dtype=int)
    a = np.array([[0, 0, 0, 1, 1], [0, 0, 1, 1, 1], [0, 1, 1, 1, 1]])  # item 1 right 2/3
    b = np.ones((1, 5), dtype=int)
    result = mcnemar(_system("A", gold, a), _system("B", gold, b))
    assert result.a_only == 2  # items 0 and 1; item 2 is right in 1 of 3 runs only


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.001, 0.2, 0.01, 0.04]) == pytest.approx([0.004, 0.2, 0.03, 0.08])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_reliability_bins_and_calibration_error():
    n = 1000
    gold = np.zeros(n, dtype=int)
    probs = np.full((n, 8), 0.1 / 7)
    top = np.where(np.arange(n) < 900, 0, 1)  # the top label (p = 0.9) is right 90 % of the time
    probs[np.arange(n), top] = 0.9
    conf, acc, counts, ece = reliability_bins(probs, gold)
    assert counts.sum() == n and counts[8] == n  # 0.9 falls in the (0.8, 0.9] bin
    assert acc[8] == pytest.approx(0.9) and conf[8] == pytest.approx(0.9)
    assert ece == pytest.approx(0.0, abs=1e-12)
    overconfident = np.where(np.arange(n) < 500, 0, 1)
    probs2 = np.full((n, 8), 0.1 / 7)
    probs2[np.arange(n), overconfident] = 0.9
    assert reliability_bins(probs2, gold)[3] == pytest.approx(0.4)
    # runs are pooled: (runs, n, 8) with gold (n,)
    assert reliability_bins(np.stack([probs, probs2]), gold)[3] == pytest.approx(0.2)
