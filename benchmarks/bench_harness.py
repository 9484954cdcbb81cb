"""Measure the harness integrations: Ray screening against the plain guard, and the inspect
task's own overhead over an offline model.

    python benchmarks/bench_harness.py [--data ../shared/data/dialogue-safety/test.json]
                                       [--copies 10] [--shards 2] [--cpus 2] [--skip-inspect]

Ray: the public test set repeated ``--copies`` times, written as ``--shards`` parquet shards,
screened by ``screen_files`` on a local cluster of ``--cpus`` CPUs with a baseline checkpoint
trained on the set (rows/s, start-up included and apart), and by ``Guard.check_examples`` in
this process (rows/s). inspect: the ``dialogue_safety`` task over every item with an offline
mockllm that answers at once (items/s: the harness's own cost per item). Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "dialogue-safety" / "test.json"
sys.path.insert(0, str(REPO / "src"))


def bench_ray(examples, folder: Path, copies: int, shards: int, cpus: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    from mhsafety.guard import Guard
    from mhsafety.integrations.ray import screen_files
    from mhsafety.registry import create_classifier

    ckpt = folder / "baseline"
    create_classifier("baseline", seed=0).fit(examples).save(ckpt)
    rows = [{"id": f"{k}-{ex.id}", "context": ex.context, "response": ex.response}
            for k in range(copies) for ex in examples]
    (folder / "logs").mkdir()
    per = -(-len(rows) // shards)
    for s in range(shards):
        pq.write_table(pa.Table.from_pylist(rows[s * per:(s + 1) * per]),
                       folder / "logs" / f"part-{s}.parquet")

    guard = Guard.load(ckpt)
    items = [ex for _ in range(copies) for ex in examples]
    start = time.perf_counter()
    guard.check_examples(items, guard.threshold)
    local = time.perf_counter() - start
    print(f"guard in-process: {len(items)} rows in {local:.2f} s = {len(items) / local:,.0f} rows/s")

    start = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    up = time.perf_counter() - start
    try:
        start = time.perf_counter()
        n = screen_files(str(folder / "logs" / "*.parquet"), ckpt, folder / "out")
        run = time.perf_counter() - start
    finally:
        ray.shutdown()
    print(f"ray ({cpus} CPUs, {shards} shards): cluster start {up:.1f} s; {n} rows screened in "
          f"{run:.1f} s = {n / run:,.0f} rows/s (actor start-up and parquet I/O included)")


def bench_inspect(data: Path, folder: Path) -> None:
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import ModelOutput, ModelUsage, get_model

    from mhsafety.integrations.inspect_task import dialogue_safety

    def outputs(messages, tools, tool_choice, config):
        out = ModelOutput.from_content(model="mockllm", content="Safe Response")
        out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return out

    task = dialogue_safety(data=str(data))
    start = time.perf_counter()
    [log] = inspect_eval(task, model=get_model("mockllm/model", custom_outputs=outputs),
                         log_dir=str(folder / "inspect"), display="none")
    took = time.perf_counter() - start
    n = len(log.samples or [])
    print(f"inspect task, offline mockllm: {n} items in {took:.1f} s = {n / took:,.0f} items/s "
          f"(status {log.status}, accuracy {log.results.scores[0].metrics['accuracy'].value:.4f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--skip-inspect", action="store_true")
    args = ap.parse_args()
    from mhsafety.data import load_examples

    examples = load_examples(args.data)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        bench_ray(examples, Path(tmp), args.copies, args.shards, args.cpus)
        if not args.skip_inspect:
            bench_inspect(args.data, Path(tmp))
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
