"""Speed of the analysis: bootstrap intervals and the HTML report.

1. Bootstrap: 10,000 item resamples of 800 items (one run, and five runs as in Table 2),
   every score of every resample (two levels, runs and items, for five runs); best and
   median of ``--repeats`` timings.
2. Paired comparisons of the six upstream systems (15 pairs, bootstrap + McNemar).
3. ``mhsafety report`` over the upstream reproduction (six systems, five runs each) plus any
   extra result folders given with ``--runs`` (e.g. a baseline benchmark), 10,000 resamples.

    python benchmarks/bench_analysis.py
    python benchmarks/bench_analysis.py --runs results/baseline --out report/
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "dialogue-safety"


def timed(fn, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def bench_bootstrap(resamples: int, repeats: int) -> None:
    from mhsafety.analysis import SystemPredictions, bootstrap_distribution, bootstrap_weights

    rng = np.random.default_rng(0)
    gold = rng.choice(8, size=800, p=[.066, .006, .444, .006, .003, .014, .003, .458])
    for runs in (1, 5):
        preds = np.where(rng.random((runs, 800)) < 0.7, gold, rng.integers(0, 8, (runs, 800)))
        system = SystemPredictions("s", [str(r) for r in range(runs)],
                                   [str(i) for i in range(800)], gold, preds)
        best, median = timed(lambda s=system: bootstrap_distribution(s, resamples, 0), repeats)
        print(f"bootstrap, {resamples} resamples x 800 items, {runs} run(s), all "
              f"{len(bootstrap_distribution(system, 10, 0))} scores: best {best:.3f} s, "
              f"median {median:.3f} s")
    best, median = timed(lambda: bootstrap_weights(800, resamples, 0), repeats)
    print(f"  of which drawing the {resamples} x 800 index matrix and counting: best "
          f"{best:.3f} s, median {median:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, default=SHARED / "upstream-release.tar.xz")
    parser.add_argument("--data", type=Path, default=SHARED / "test.json")
    parser.add_argument("--runs", type=Path, nargs="*", default=[],
                        help="extra result folders of *.preds.jsonl (e.g. a benchmark)")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="report folder to keep")
    args = parser.parse_args()

    bench_bootstrap(args.resamples, args.repeats)

    from mhsafety.analysis import analyze_systems, from_runs
    from mhsafety.records import load_runs
    from mhsafety.report import build_report
    from mhsafety.upstream import reproduce

    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as tmp:
        upstream_runs = Path(tmp) / "upstream"
        start = time.perf_counter()
        reproduce(args.upstream, out_dir=upstream_runs)
        print(f"reproduce (writes the six systems' records): "
              f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
        systems = from_runs(load_runs([upstream_runs]))
        start = time.perf_counter()
        analysis = analyze_systems(systems, args.resamples, 0)
        print(f"analysis of the 6 upstream systems (intervals for each, {len(analysis.comparisons)}"
              f" paired comparisons, error analysis), {args.resamples} resamples: "
              f"{time.perf_counter() - start:.2f} s")
        out = args.out or Path(tmp) / "report"
        paths = [upstream_runs, *args.runs]
        start = time.perf_counter()
        result = build_report(paths, out, data=args.data, resamples=args.resamples)
        elapsed = time.perf_counter() - start
        size = result.html.stat().st_size / 1e6
        print(f"report over {len(result.analysis.systems)} systems ({', '.join(map(str, paths))})"
              f", {args.resamples} resamples: {elapsed:.1f} s; index.html {size:.2f} MB, "
              f"{len(result.figures)} figure files")
        bert = analysis.comparison("ChatGPT-0613 zero-shot", "BERT-base")
        acc = bert.bootstrap["accuracy"]
        print(f"ChatGPT-0613 zero-shot - BERT-base accuracy: {100 * acc.difference:.1f} points "
              f"[{100 * acc.low:.1f}, {100 * acc.high:.1f}], Holm p {bert.holm['accuracy']:.4f},"
              f" McNemar {bert.mcnemar.a_only}/{bert.mcnemar.b_only} p "
              f"{bert.mcnemar.p_value:.1e}")
        for name, coverage in result.analysis.errors.coverage.items():
            c = coverage[0]
            print(f"  Nonsense found by {name}: {c.right_any}/{c.n_items} at least once, "
                  f"{c.right_all} in every run")


if __name__ == "__main__":
    main()
