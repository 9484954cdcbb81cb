"""Throughput and memory of `mhsafety probe` against local fake servers.

Single-turn: 800 distinct contexts (the public test set's contexts, made distinct) sent once
each to a fake target that answers after ``--latency`` seconds, every reply graded by an LLM
judge on a second fake server with the same latency, ``--concurrency`` requests in flight at
each. The target bounds the run: its limit is ``contexts / (concurrency / latency)`` seconds;
the script prints the limit as a share of the measured wall time (1.0 = the target never
waited; the grader's last batch adds at least one latency). A run is a whole ``run_probe``
call: folder, logs (fsync), grading, summary with the bootstrap.

Multi-turn: ``--personas`` default personas x ``--turns`` turns, the seeker and the target on
fake servers (the seeker never ends), graded by the same judge; wall time and the process's
peak resident memory (run in a fresh child process).

    python benchmarks/bench_probe.py                       # both, latency 0.1, 64 in flight
    python benchmarks/bench_probe.py --skip-multi --repeat 3
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_JSON = REPO.parent / "shared" / "data" / "dialogue-safety" / "test.json"


def start_server(latency: float, *extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "mhsafety.testing.fakeserver",
                             "--latency", str(latency), *extra], stdout=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline().strip()  # "listening on URL"
    return proc, line.rsplit(" ", 1)[-1]


def distinct_data(n: int, folder: Path) -> Path:
    from mhsafety.data import Example, load_examples, write_examples

    base = load_examples(TEST_JSON)
    items = [Example(f"[seeker]({i}) " + base[i % len(base)].context.removeprefix("[seeker]"),
                     base[i % len(base)].response, None, str(i)) for i in range(n)]
    path = folder / "contexts.json"
    write_examples(path, items)
    return path


def single(args: argparse.Namespace) -> None:
    from mhsafety.probe.runner import run_probe
    from mhsafety.probe.targets import ProbeSettings

    target, target_url = start_server(args.latency, "--answer", "I hear you. Tell me more.")
    grader, grader_url = start_server(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = distinct_data(args.contexts, Path(tmp))
            limit = args.contexts / (args.concurrency / args.latency)
            for r in range(args.repeat):
                settings = ProbeSettings(
                    targets=[f"bot=fake@{target_url}"], data=data,
                    grader=f"judge:fake-judge@{grader_url}", concurrency=args.concurrency,
                    grader_concurrency=args.concurrency)
                start = time.perf_counter()
                result = run_probe(settings, Path(tmp) / f"out{r}")
                wall = time.perf_counter() - start
                bot = result.summary["targets"]["bot"]
                print(f"single-turn: {bot['n']} replies ({bot['ungraded']} ungraded) in "
                      f"{wall:.2f} s; target limit {limit:.2f} s; share of the limit "
                      f"{limit / wall:.2f}", flush=True)
    finally:
        for proc in (target, grader):
            proc.terminate()
            proc.wait()


def multi_child(args: argparse.Namespace) -> None:
    from mhsafety.probe.runner import run_probe
    from mhsafety.probe.targets import ProbeSettings

    settings = ProbeSettings(targets=[f"bot=fake@{args.target_url}"], personas="default",
                             seeker=f"sim@{args.seeker_url}", turns=args.turns,
                             limit=args.personas, grader=f"judge:fake-judge@{args.grader_url}",
                             concurrency=args.concurrency,
                             grader_concurrency=args.concurrency)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_probe(settings, Path(tmp) / "out")
        wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"n": result.summary["targets"]["bot"]["n"], "wall_s": wall,
                      "peak_mib": peak}))


def multi(args: argparse.Namespace) -> None:
    servers = [start_server(args.latency, "--answer", text) for text in (
        "I hear you. What happened next?", "It is still hard. I don't know.")]
    grader = start_server(args.latency)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--target-url", servers[0][1],
             "--seeker-url", servers[1][1], "--grader-url", grader[1],
             "--personas", str(args.personas), "--turns", str(args.turns),
             "--concurrency", str(args.concurrency)],
            check=True, capture_output=True, text=True).stdout
        got = json.loads(out.strip().splitlines()[-1])
        floor = args.turns * 2 * args.latency
        print(f"multi-turn: {args.personas} personas x {args.turns} turns = {got['n']} graded "
              f"replies in {got['wall_s']:.2f} s (one conversation's own floor: {floor:.1f} s "
              f"of seeker and target latency); peak resident memory {got['peak_mib']:.0f} MiB",
              flush=True)
    finally:
        for proc, _ in [*servers, grader]:
            proc.terminate()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--contexts", type=int, default=800)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--personas", type=int, default=24)
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--skip-single", action="store_true")
    ap.add_argument("--skip-multi", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("--target-url", "--seeker-url", "--grader-url"):
        ap.add_argument(name, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        multi_child(args)
        return
    if not args.skip_single:
        single(args)
    if not args.skip_multi:
        multi(args)


if __name__ == "__main__":
    main()
