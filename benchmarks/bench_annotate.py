"""Speed of the annotation tool: acknowledged writes through the real HTTP app, and statistics.

Simulates K annotators at once, each labelling every one of the 800 public items through the
JSON API (next item, then the answer), against `mhsafety annotate serve` running in its own
process (as deployed; the clients here do not share its interpreter) on a fresh database
with synchronous=FULL commits; then times the agreement report and the export over the
result. Labels are drawn at random
(seeded), so the agreement figures themselves mean nothing here: only the times do.

Usage (from the repository root):
    python benchmarks/bench_annotate.py --data ../shared/data/dialogue-safety/test.json
    python benchmarks/bench_annotate.py --data ../shared/data/dialogue-safety/test.json \
        --annotators 3 --items 200
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from mhsafety.annotate.agreement import agreement_report, export_adjudicated
from mhsafety.annotate.store import open_store
from mhsafety.data import load_examples
from mhsafety.taxonomy import UNSAFE_LEAVES, path_for_label


def post(url: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(url.rstrip("/") + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as res:
        return json.loads(res.read())


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--annotators", type=int, default=2)
    parser.add_argument("--items", type=int, default=800, help="Use the first N items.")
    args = parser.parse_args()

    examples = load_examples(args.data)[: args.items]
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "bench.sqlite")
        store.add_examples(examples, source=str(args.data))
        server = subprocess.Popen(
            [sys.executable, "-m", "mhsafety", "annotate", "serve", "--db", str(store.path),
             "--port", "0"], stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url.startswith("http://"):
            raise SystemExit(f"the server did not start (printed {url!r})")
        startup_cpu = process_cpu_seconds(server.pid)  # imports, opening the database
        latencies: list[float] = []
        lock = threading.Lock()

        def annotate(name: str, seed: int) -> None:
            rng = random.Random(seed)
            post(url, "/api/session", {"annotator": name})
            while True:
                item = post(url, "/api/next", {"annotator": name})["item"]
                if item is None:
                    return
                label = rng.choice(range(8))
                start = time.perf_counter()
                post(url, "/api/annotate", {
                    "annotator": name, "item_id": item["id"], "answers": path_for_label(label),
                    "leaf": label if label in UNSAFE_LEAVES else None, "seconds": 1.0})
                with lock:
                    latencies.append(time.perf_counter() - start)

        threads = [threading.Thread(target=annotate, args=(f"annotator-{k}", k))
                   for k in range(args.annotators)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        server_cpu = process_cpu_seconds(server.pid) - startup_cpu
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)

        n = len(latencies)
        stored = len(store.annotations())
        latencies.sort()
        print(f"{args.annotators} annotators x {len(examples)} items: {n} acknowledged answers "
              f"({stored} stored) in {elapsed:.1f} s = {n / elapsed:.0f} answers/s "
              "(each with a next-item request)")
        print(f"server process CPU after start-up: {server_cpu:.1f} s = "
              f"{1000 * server_cpu / n:.2f} ms per answer (with its next-item request)")
        print(f"answer latency: median {1000 * statistics.median(latencies):.1f} ms, "
              f"p95 {1000 * latencies[int(0.95 * (n - 1))]:.1f} ms, "
              f"max {1000 * latencies[-1]:.1f} ms")

        start = time.perf_counter()
        agreement_report(store)
        print(f"agreement report: {time.perf_counter() - start:.2f} s "
              "(first call includes importing scikit-learn, statsmodels, krippendorff)")
        start = time.perf_counter()
        agreement_report(store)
        print(f"agreement report, warm: {time.perf_counter() - start:.2f} s")
        start = time.perf_counter()
        export_adjudicated(store, Path(tmp) / "out.jsonl", ties="unlabelled")
        print(f"export: {time.perf_counter() - start:.2f} s")
        if stored != n:
            raise SystemExit(f"lost writes: {n} acknowledged, {stored} stored")


if __name__ == "__main__":
    main()
