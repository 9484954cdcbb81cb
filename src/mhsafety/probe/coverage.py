"""Simulated audits with a known true rate and a known grader error: how often does the
corrected rate's interval hold the truth?

Each simulated audit draws ``clusters`` contexts whose own unsafe probabilities vary around
the prevalence (a beta distribution with intra-cluster correlation ``icc``), ``samples``
replies per context, and grader verdicts with the given sensitivity and specificity; and a
calibration sample of ``calibration_n`` labelled items (``calibration_unsafe`` of them
unsafe) graded by the same grader. The truth is the prevalence (the rate over the population
of contexts the audit's contexts are drawn from), which is what the cluster bootstrap targets.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..analysis.stats import DEFAULT_LEVEL
from .correct import Calibration, calibration_draws, correct_sums, grader_validity, resampled_sums


@dataclass(frozen=True)
class Scenario:
    prevalence: float
    sensitivity: float
    specificity: float
    calibration_n: int = 400
    calibration_unsafe: float = 0.5  # share of the calibration sample that is gold-unsafe
    clusters: int = 200
    samples: int = 3
    icc: float = 0.2  # intra-cluster correlation of the true verdicts


@dataclass(frozen=True)
class CoverageResult:
    scenario: Scenario
    simulations: int
    corrected: int  # audits whose grader was not flagged weak
    covered: int  # of those, intervals holding the true prevalence
    observed_covered: int  # all audits: observed interval holding the grader's expected flag rate
    mean_width: float

    @property
    def coverage(self) -> float:
        return self.covered / self.corrected if self.corrected else math.nan

    @property
    def observed_coverage(self) -> float:
        return self.observed_covered / self.simulations if self.simulations else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "coverage": self.coverage,
                "observed_coverage": self.observed_coverage}


def _cluster_probabilities(rng: np.random.Generator, s: Scenario) -> np.ndarray:
    if s.icc <= 0 or s.prevalence in (0.0, 1.0):
        return np.full(s.clusters, s.prevalence)
    scale = (1 - s.icc) / s.icc
    return rng.beta(s.prevalence * scale, (1 - s.prevalence) * scale, s.clusters)


def simulate_coverage(scenario: Scenario, simulations: int = 200, *, resamples: int = 1000,
                      level: float = DEFAULT_LEVEL, seed: int = 0) -> CoverageResult:
    """Run ``simulations`` audits of ``scenario`` and count intervals that hold the truth."""
    s = scenario
    rng = np.random.default_rng(seed)
    covered = corrected = observed_covered = 0
    widths = []
    flag_rate = s.prevalence * s.sensitivity + (1 - s.prevalence) * (1 - s.specificity)
    n_pos = round(s.calibration_n * s.calibration_unsafe)
    gold = np.zeros(s.calibration_n, dtype=bool)
    gold[:n_pos] = True
    for k in range(simulations):
        truth = rng.random((s.clusters, s.samples)) < _cluster_probabilities(rng, s)[:, None]
        flags = np.where(truth, rng.random(truth.shape) < s.sensitivity,
                         rng.random(truth.shape) < 1 - s.specificity)
        sums = np.column_stack([flags.sum(axis=1), np.full(s.clusters, s.samples)]).astype(float)
        cal_pred = np.where(gold, rng.random(gold.size) < s.sensitivity,
                            rng.random(gold.size) < 1 - s.specificity)
        calibration = Calibration(gold, cal_pred)
        boot = resampled_sums(sums, resamples, seed * 1_000_003 + k)
        draws = calibration_draws(calibration, resamples, seed * 1_000_003 + k)
        validity = grader_validity(calibration, level=level, draws=draws)
        result = correct_sums(sums, boot, calibration, draws, validity, level=level)
        obs = result.observed
        observed_covered += bool(obs.low <= flag_rate <= obs.high)
        if result.corrected is not None:
            corrected += 1
            covered += bool(result.low <= s.prevalence <= result.high)
            widths.append(result.high - result.low)
    return CoverageResult(s, simulations, corrected, covered, observed_covered,
                          float(np.mean(widths)) if widths else math.nan)
