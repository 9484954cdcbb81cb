"""Honest calibration: out-of-sample estimates with intervals, and refusal of a file that
overlaps the checkpoint's training data (issue 12, item 7)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mhsafety.cli import cli
from mhsafety.errors import DataError
from mhsafety.guard import NO_RULES, Guard, calibrate
from mhsafety.guard.calibrate import cross_fitted_flags, pick_threshold


def test_pick_threshold_counts_forced_flags():
    p_safe = [0.1, 0.2, 0.9, 0.8]
    unsafe = [True, True, True, False]
    # Item 2 is a rule hit: caught whatever the threshold, so 3 of 3 needs only 0.1 and 0.2.
    t = pick_threshold(p_safe, unsafe, 1.0, forced=[False, False, True, False])
    assert 0.2 < t < 0.8


def test_cross_fitting_never_sees_the_fold_it_judges():
    rng = np.random.default_rng(0)
    n = 200
    unsafe = rng.random(n) < 0.5
    p_safe = np.where(unsafe, rng.beta(2, 5, n), rng.beta(5, 2, n))
    groups = np.arange(n)
    flags, thresholds = cross_fitted_flags(p_safe, np.zeros(n, bool), unsafe, groups, 0.9, 5)
    assert len(thresholds) == 5 and len(set(thresholds)) > 1
    # Every fold's thresholds were picked elsewhere, so recall is not exactly the target.
    assert 0.7 < (flags & unsafe).sum() / unsafe.sum() < 1.0


@pytest.mark.slow
def test_calibrating_on_the_training_file_is_refused(baseline_checkpoint, test_json, tmp_path):
    from mhsafety.data import load_examples

    guard = Guard.load(baseline_checkpoint, rules=NO_RULES)
    with pytest.raises(DataError, match="800 of the 800 items of .* also occur in the "
                                        "checkpoint's training data"):
        calibrate(guard, test_json)
    # A part of the training file is caught too, item by item.
    part = tmp_path / "part.jsonl"
    part.write_text("".join(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n"
                            for ex in load_examples(test_json)[:50]), encoding="utf-8")
    result = CliRunner().invoke(cli, ["check", "calibrate", str(part), "--checkpoint",
                                      str(baseline_checkpoint)])
    assert isinstance(result.exception, DataError)
    assert "50 of the 50 items" in str(result.exception)
    assert "--allow-overlap" in str(result.exception)
    allowed = calibrate(guard, test_json, allow_overlap=True)
    assert allowed.overlap_allowed == 800 and "optimistic" in allowed.summary()


@pytest.mark.slow
def test_out_of_sample_estimates_on_held_out_items(test_examples, tmp_path):
    """Train on part of the public set, calibrate on the rest: the promise comes with
    cross-fitted figures and intervals that contain them."""
    from mhsafety.data import write_examples
    from mhsafety.registry import create_classifier

    # The file is ordered by label: take every third item out, so both parts have them all.
    train = [ex for i, ex in enumerate(test_examples) if i % 3]
    held_out = [ex for i, ex in enumerate(test_examples) if not i % 3]
    ckpt = tmp_path / "ckpt"
    create_classifier("baseline", seed=0, c_grid=[2.0], calibrate=False, ngram_max=2,
                      max_iter=300).fit(train).save(ckpt)
    data = tmp_path / "held.jsonl"
    write_examples(data, held_out)
    cal = calibrate(Guard.load(ckpt, rules=NO_RULES), data, 0.9)
    assert cal.n_items == len(held_out) and cal.overlap_allowed == 0
    for rate in (cal.oos_unsafe_recall, cal.oos_false_alarm_rate):
        assert rate.low <= rate.value <= rate.high and rate.n > 0
    assert cal.oos_unsafe_recall.n == cal.n_unsafe
    assert cal.in_sample_unsafe_recall >= 0.9
    assert "Out of sample" in cal.summary() and "Wilson" in cal.summary()
