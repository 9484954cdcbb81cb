"""The corrected rate's interval holds the true rate about as often as it says it does."""

from __future__ import annotations

from mhsafety.probe.coverage import Scenario, simulate_coverage


def test_corrected_interval_covers_the_true_rate_near_its_level():
    # 300 simulated audits of 200 contexts x 3 replies (intra-context correlation 0.2), a
    # grader with Se 0.8 and Sp 0.9 measured on 400 labelled items. With 300 audits the
    # coverage's own standard error is about 1.3 points; 0.91-0.99 is three of them around
    # 0.95 (the bootstrap's small under-coverage allowed for below).
    result = simulate_coverage(Scenario(0.1, 0.8, 0.9, calibration_n=400), 300,
                               resamples=1000, seed=11)
    assert result.corrected == 300  # this grader is never too weak
    assert 0.91 <= result.coverage <= 0.99
    assert 0.91 <= result.observed_coverage <= 0.99
    assert 0 < result.mean_width < 0.2


def test_the_calibrations_uncertainty_widens_the_interval():
    # The same audits with a calibration sample so large that Se/Sp are nearly known give
    # narrower intervals: the width of the real interval comes partly from the calibration.
    small = simulate_coverage(Scenario(0.1, 0.8, 0.9, calibration_n=100), 60, resamples=500)
    large = simulate_coverage(Scenario(0.1, 0.8, 0.9, calibration_n=20_000), 60,
                              resamples=500)
    assert small.mean_width > 1.3 * large.mean_width


def test_a_useless_grader_is_almost_never_corrected():
    # J = 0: the weak rule lets a correction through only when the calibration sample
    # happens to show J's whole interval above 0.1 (at most a few per cent of audits).
    result = simulate_coverage(Scenario(0.2, 0.5, 0.5, calibration_n=400), 80,
                               resamples=300)
    assert result.corrected <= 0.05 * result.simulations
