"""Coverage of the probe's corrected unsafe rate, and the speed of its clustered bootstrap.

1. Coverage: for each cell of a grid (true prevalence x grader sensitivity x specificity x
   calibration sample size), ``--simulations`` simulated audits (``--clusters`` contexts x
   ``--samples`` replies, intra-context correlation ``--icc``); the share of corrected-rate
   intervals that hold the true prevalence, the share of audits whose grader was corrected
   (not flagged weak), and the mean interval width. Nominal level 95 %.
2. Speed: observed and corrected rate of 800 contexts x ``--samples`` replies with 2,000 and
   10,000 resamples (best and median of ``--repeats``).

    python benchmarks/bench_probe_correction.py
    python benchmarks/bench_probe_correction.py --simulations 200 --quick
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time

import numpy as np

from mhsafety.probe.correct import Calibration, corrected_rate
from mhsafety.probe.coverage import Scenario, simulate_coverage

PREVALENCES = (0.02, 0.1, 0.3)
GRADERS = ((0.8, 0.9), (0.6, 0.95), (0.95, 0.8), (0.6, 0.6))
CALIBRATION_N = (100, 400, 1600)


def coverage_grid(args: argparse.Namespace) -> None:
    prevalences = PREVALENCES[1:2] if args.quick else PREVALENCES
    calibration = CALIBRATION_N[:2] if args.quick else CALIBRATION_N
    print(f"coverage of the corrected rate's {95}% interval: {args.simulations} audits per "
          f"cell, {args.clusters} contexts x {args.samples} replies, icc {args.icc}, "
          f"{args.resamples} resamples, calibration half unsafe")
    print("| prevalence | Se | Sp | calibration n | corrected | coverage | observed-rate "
          "coverage | mean width |")
    print("|---|---|---|---|---|---|---|---|")
    start = time.perf_counter()
    for prev, (se, sp), n in itertools.product(prevalences, GRADERS, calibration):
        scenario = Scenario(prev, se, sp, calibration_n=n, clusters=args.clusters,
                            samples=args.samples, icc=args.icc)
        r = simulate_coverage(scenario, args.simulations, resamples=args.resamples,
                              seed=args.seed)
        cov = "–" if not r.corrected else f"{r.coverage:.3f}"
        width = "–" if not r.corrected else f"{r.mean_width:.3f}"
        print(f"| {prev} | {se} | {sp} | {n} | {r.corrected / r.simulations:.2f} | {cov} | "
              f"{r.observed_coverage:.3f} | {width} |", flush=True)
    print(f"grid took {time.perf_counter() - start:.1f} s")


def speed(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(800), args.samples)
    unsafe = rng.random(clusters.size) < 0.2
    gold = rng.random(800) < 0.5
    cal = Calibration(gold, np.where(gold, rng.random(800) < 0.8, rng.random(800) < 0.1))
    for resamples in (2000, 10_000):
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            corrected_rate(unsafe, clusters, cal, resamples=resamples)
            times.append(time.perf_counter() - t)
        print(f"corrected rate, 800 contexts x {args.samples} replies, {resamples} resamples: "
              f"best {min(times) * 1000:.0f} ms, median {statistics.median(times) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=500)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--icc", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a smaller grid")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}")
    speed(args)
    coverage_grid(args)


if __name__ == "__main__":
    main()
