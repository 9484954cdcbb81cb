"""Measure the offline baseline: `mhsafety benchmark` defaults (accuracy, F1, time),
calibration of its probabilities, and prediction speed of a saved checkpoint.

    python benchmarks/bench_baseline.py [--data ../shared/data/dialogue-safety/test.json]
                                        [--seeds 42,43,44,45,46] [--skip-benchmark]
                                        [--compare-ungrouped]

``--compare-ungrouped`` also runs the old protocol (plain stratified folds, which put items
sharing a dialogue context on both sides) and counts how many test-fold items it leaks.

Prints figures; asserts nothing. Targets (from the issue): mean accuracy >= 66.0 %, weighted
F1 >= 65.0 %, the whole default benchmark (25 fits) < 60 s on a 2-core machine, a saved baseline
predicts >= 2,000 items/s in batch and < 5 ms for one item.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "dialogue-safety" / "test.json"


def ece(probs: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of confidences ``probs`` against 0/1 outcomes ``correct``."""
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        mask = (probs > lo) & (probs <= hi) if lo > 0 else (probs >= lo) & (probs <= hi)
        if mask.any():
            total += mask.mean() * abs(probs[mask].mean() - correct[mask].mean())
    return float(total)


def calibration(out_dir: Path) -> None:
    from mhsafety.records import find_prediction_files, read_records

    top_ece, safe_ece, brier = [], [], []
    for file in find_prediction_files(out_dir / "predictions"):
        recs = read_records(file)
        probs = np.array([r.probs for r in recs])
        gold = np.array([r.gold for r in recs])
        pred = probs.argmax(axis=1)
        top_ece.append(ece(probs.max(axis=1), (pred == gold).astype(float)))
        safe_ece.append(ece(probs[:, 7], (gold == 7).astype(float)))
        onehot = np.eye(8)[gold]
        brier.append(float(((probs - onehot) ** 2).sum(axis=1).mean()))
    print(f"calibration over {len(top_ece)} runs (out-of-fold probabilities):")
    print(f"  top-label ECE (10 bins): {100 * np.mean(top_ece):.2f} %")
    print(f"  P(safe) ECE (10 bins):   {100 * np.mean(safe_ece):.2f} %")
    print(f"  multiclass Brier score:  {np.mean(brier):.4f}")


def speed(data: Path) -> None:
    from mhsafety.data import load_examples
    from mhsafety.registry import create_classifier, load_classifier

    examples = load_examples(data)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        create_classifier("baseline", seed=42).fit(examples).save(Path(tmp) / "ckpt")
        print(f"train on all {len(examples)} items + save: {time.perf_counter() - t0:.2f} s")
        clf = load_classifier(Path(tmp) / "ckpt")
    batch = examples * 5
    clf.predict_proba(examples[:10])  # warm imports
    t0, c0 = time.perf_counter(), time.process_time()
    clf.predict_proba(batch)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"batch prediction: {len(batch) / seconds:,.0f} items/s ({len(batch)} items in "
          f"{seconds:.2f} s; CPU {cpu:.2f} s = {len(batch) / cpu:,.0f} items per CPU second)")
    times, cpu_times = [], []
    for ex in examples[:300]:
        t0, c0 = time.perf_counter(), time.process_time()
        clf.predict_proba([ex])
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    # CPU time beside wall time: on a shared machine the wall figure mostly measures the load.
    print(f"one item: median {1000 * statistics.median(times):.2f} ms, "
          f"p95 {1000 * float(np.percentile(times, 95)):.2f} ms "
          f"(CPU: median {1000 * statistics.median(cpu_times):.2f} ms)")


def ungrouped(data: Path, seeds: list[int], folds: int = 5) -> None:
    """The same CV with plain StratifiedKFold (the protocol before grouping), for comparison."""
    from mhsafety.benchmark import cv_run
    from mhsafety.data import context_groups, load_examples, stratified_kfold
    from mhsafety.metrics import compute_metrics

    examples = load_examples(data)
    groups = context_groups(examples)
    scores: dict[str, list[float]] = {"accuracy": [], "f1": [], "macro_f1": [],
                                      "unsafe_recall": []}
    leaked = []
    t0 = time.perf_counter()
    for seed in seeds:
        records = cv_run("baseline", examples, seed, folds, "baseline", [], grouped=False)
        m = compute_metrics([r.gold for r in records], [r.pred for r in records])
        for name, values in scores.items():
            values.append(m.score(name))
        n = 0
        for train_idx, test_idx in stratified_kfold(examples, folds, seed, grouped=False):
            seen = set(groups[train_idx].tolist())
            n += sum(1 for g in groups[test_idx].tolist() if g in seen)
        leaked.append(n)
    print(f"old protocol (ungrouped StratifiedKFold), same seeds: {len(seeds) * folds} fits, "
          f"{time.perf_counter() - t0:.1f} s")
    for name, values in scores.items():
        print(f"  {name}: {100 * statistics.fmean(values):.2f} ± "
              f"{100 * (statistics.stdev(values) if len(values) > 1 else 0):.2f} %")
    print(f"  test-fold items sharing their context with a training-fold item, per seed: "
          f"{', '.join(map(str, leaked))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", default="42,43,44,45,46")
    parser.add_argument("--skip-benchmark", action="store_true")
    parser.add_argument("--compare-ungrouped", action="store_true")
    args = parser.parse_args()
    from mhsafety.benchmark import run_benchmark

    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")

    if not args.skip_benchmark:
        seeds = [int(s) for s in args.seeds.split(",")]
        with tempfile.TemporaryDirectory() as tmp:
            wall, cpu = time.perf_counter(), time.process_time()
            result = run_benchmark(["baseline"], args.data, seeds=seeds,
                                   out_dir=Path(tmp) / "res", show_progress=False)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            s = result.systems[0].scores
            fits = len(seeds) * 5
            print(f"mhsafety benchmark defaults on {args.data.name}: {fits} fits")
            for name in ("accuracy", "f1", "macro_f1", "unsafe_recall"):
                print(f"  {name}: {100 * s[name].mean:.2f} ± {100 * (s[name].std or 0):.2f} %")
            print(f"  time: {wall:.1f} s wall, {cpu:.1f} s CPU of this process")
            calibration(Path(tmp) / "res")
        if args.compare_ungrouped:
            ungrouped(args.data, seeds)
    speed(args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
