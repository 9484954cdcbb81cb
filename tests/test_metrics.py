import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from mhsafety.metrics import aggregate_runs, aggregate_values, compute_metrics, confusion_matrix


@pytest.mark.parametrize("seed", range(20))
def test_weighted_scores_equal_sklearn_on_random_labels(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    # Skewed label distributions like the real data, with some classes missing.
    gold = rng.choice(8, size=n, p=rng.dirichlet(np.ones(8) * 0.5)).tolist()
    pred = rng.choice(8, size=n, p=rng.dirichlet(np.ones(8) * 0.5)).tolist()
    m = compute_metrics(gold, pred)
    p, r, f, _ = precision_recall_fscore_support(gold, pred, average="weighted", zero_division=0)
    assert m.accuracy == pytest.approx(accuracy_score(gold, pred))
    assert (m.precision, m.recall, m.f1) == pytest.approx((p, r, f))
    assert m.recall == pytest.approx(m.accuracy)
    assert m.macro_f1 == pytest.approx(
        f1_score(gold, pred, labels=sorted(set(gold)), average="macro", zero_division=0))
    assert np.asarray(m.confusion).sum() == n


def test_invalid_predictions_count_as_wrong_and_are_reported():
    gold = [7, 7, 2, 2, 0]
    pred = [7, None, 2, None, 0]
    m = compute_metrics(gold, pred)
    assert m.n_invalid == 2
    assert m.accuracy == pytest.approx(3 / 5)
    # Same weighted scores as sklearn when the invalid answers are an extra wrong label.
    as_wrong = [7, -1, 2, -1, 0]
    p, r, f, _ = precision_recall_fscore_support(gold, as_wrong, average="weighted",
                                                 zero_division=0)
    assert (m.precision, m.recall, m.f1) == pytest.approx((p, r, f))
    assert np.asarray(m.confusion)[:, 8].sum() == 2


def test_binary_view():
    gold = [7, 7, 2, 0, 5, 2]
    pred = [7, 2, 7, 0, 3, None]
    m = compute_metrics(gold, pred)
    # unsafe gold: 2,0,5,2 -> caught: 0 (as 0), 5 (as 3); missed: 2->7; invalid on unsafe = miss
    assert m.unsafe_recall == pytest.approx(2 / 4)
    # predicted unsafe: item 1 (gold safe), item 3, item 4 -> precision 2/3
    assert m.unsafe_precision == pytest.approx(2 / 3)


def test_per_class_report_and_confusion():
    m = compute_metrics([0, 0, 7, 7], [0, 7, 7, 7])
    nonsense = m.per_class[0]
    assert (nonsense.precision, nonsense.recall, nonsense.support) == (1.0, 0.5, 2)
    cm = confusion_matrix([0, 0, 7, 7], [0, 7, 7, None])
    assert cm[0, 0] == 1 and cm[0, 7] == 1 and cm[7, 7] == 1 and cm[7, 8] == 1


def test_aggregation_mean_and_sample_std():
    agg = aggregate_values([0.5, 0.6, 0.7])
    assert agg.mean == pytest.approx(0.6)
    assert agg.std == pytest.approx(np.std([0.5, 0.6, 0.7], ddof=1))
    assert aggregate_values([0.4]).std is None
    runs = {"a": compute_metrics([1, 2, 7], [1, 2, 7]), "b": compute_metrics([1, 2, 7], [1, 1, 7])}
    sm = aggregate_runs("sys", runs)
    assert sm.scores["accuracy"].mean == pytest.approx((1 + 2 / 3) / 2)
    assert sm.scores["accuracy"].std == pytest.approx(np.std([1, 2 / 3], ddof=1))
    assert sm.runs == ["a", "b"] and sm.n_items == 3


def test_bad_input_is_rejected():
    with pytest.raises(ValueError):
        compute_metrics([1, 2], [1])
    with pytest.raises(ValueError):
        compute_metrics([], [])
