"""Throughput and memory of `mhsafety judge` against the local fake server.

The server (a separate process, so it does not share the client's CPU time slice) answers
after a fixed latency; with ``c`` requests in flight the limit is ``c / latency`` requests per
second, and the script prints the measured rate as a fraction of it. A run is a whole
``run_judge`` call, end to end: the 800 public test items with their real prompts, every
round (5 by default, as the paper), prompts built, requests sent, answers logged, records
written. Then it runs 10,000 items in a child process and prints its peak resident memory.

    python benchmarks/bench_judge.py                  # concurrency 1 8 32 64, 10k memory run
    python benchmarks/bench_judge.py --concurrency 64 --repeat 5 --memory-items 0
    python benchmarks/bench_judge.py --client openai  # the same through the openai SDK
    python benchmarks/bench_judge.py --protocol sequential   # node questions, requests per item
    python benchmarks/bench_judge.py --batch          # batch mode's overhead for 800 items
    python benchmarks/bench_judge.py --in-memory      # judge_examples: no folder, no log

``--protocol sequential`` starts the server with ``--gold`` (it answers every node question
as the item's gold label's path through the nodes goes), so the requests per item are those of
a judge that agrees with the annotators; a judge that says "no problem" at nodes 1-3 more
often than they did costs more. ``--batch`` sends the items through the fake Batch API
(validating and in_progress last 0 s, so only the client's and the protocol's own work is
timed) and prints each phase beside a synchronous run of the same items at concurrency 64.
"""

from __future__ import annotations

import argparse
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


def examples(n: int):
    from mhsafety.data import Example, load_examples

    base = load_examples(TEST_JSON)
    return [Example(ex.context, ex.response, ex.label, f"{i}")
            for i, ex in ((i, base[i % len(base)]) for i in range(n))]


IN_MEMORY = [False]  # --in-memory: time judge_examples (no folder) instead of run_judge


def run_once(url: str, n: int, concurrency: int, client: str, rounds: int = 1,
             **settings) -> dict:
    from mhsafety.judge.settings import JudgeSettings

    items = examples(n)
    chosen = JudgeSettings(model="fake-judge", base_url=url, rounds=rounds,
                           concurrency=concurrency, client=client, **settings)
    if IN_MEMORY[0] and not chosen.batch:
        return run_in_memory(items, chosen)
    from mhsafety.judge.runner import run_judge

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_judge(items, tmp, chosen, show_progress=False)
        total = time.perf_counter() - start
    run = result.summary["this_run"]
    return {"requests_s": run["wall_s"], "total_s": total, "requests": run["requests"],
            "answered": result.summary["answered"], "batch": run.get("batch")}


def run_in_memory(items: list, settings) -> dict:
    """The in-memory judge (what the classifier, the guard and the probe call)."""
    from mhsafety.judge.core import judge_examples

    start = time.perf_counter()
    judgement = judge_examples(items, settings)
    total = time.perf_counter() - start
    stats = judgement.stats
    return {"requests_s": stats["wall_s"], "total_s": total, "requests": stats["requests"],
            "answered": stats["answered"], "batch": None}


def bench_sequential(args: argparse.Namespace) -> None:
    """Requests per item and throughput of the sequential protocol, gold-answering server."""
    server, url = start_server(args.latency, "--gold", str(TEST_JSON))
    try:
        print(f"sequential protocol, client {args.client}, server latency "
              f"{args.latency * 1000:.0f} ms, gold-path answers")
        print("concurrency  items  median_s  requests/item  items/s  req/s  limit req/s  "
              "fraction")
        for c in args.concurrency:
            n = args.items_at_1 if c == 1 else args.items
            runs = sorted((run_once(url, n, c, args.client, protocol="sequential")
                           for _ in range(1 if c == 1 else args.repeat)),
                          key=lambda r: r["requests_s"])
            mid = runs[len(runs) // 2]
            limit = c / args.latency
            rate = mid["requests"] / mid["requests_s"]
            print(f"{c:>11}  {n:>5}  {mid['requests_s']:>8.2f}  {mid['requests'] / n:>13.3f}  "
                  f"{n / mid['requests_s']:>7.1f}  {rate:>5.0f}  {limit:>11.0f}  "
                  f"{rate / limit:.2f}")
    finally:
        server.terminate()
        server.wait()


def bench_batch(args: argparse.Namespace) -> None:
    """Batch mode end to end against the fake Batch API, beside a synchronous run."""
    server, url = start_server(args.latency)
    try:
        print(f"batch mode, {args.items} items, server latency {args.latency * 1000:.0f} ms "
              f"(batch answered all at once), poll every {args.poll:g} s")
        for r in range(args.repeat):
            batch = run_once(url, args.items, 64, args.client, batch=True,
                             batch_poll=args.poll)
            sync = run_once(url, args.items, 64, args.client)
            phases = ", ".join(f"{k[:-2]} {v:.3f}" for k, v in batch["batch"].items()
                               if k.endswith("_s"))
            print(f"run {r + 1}: batch {batch['total_s']:.2f} s total (phases s: {phases}); "
                  f"synchronous at concurrency 64: {sync['total_s']:.2f} s; "
                  f"answered {batch['answered']}")
    finally:
        server.terminate()
        server.wait()


def judge_bodies(n: int, rounds: int) -> list[bytes]:
    """The request bodies a judge run of ``n`` items x ``rounds`` sends (real prompts)."""
    from mhsafety.judge.client import RequestShape
    from mhsafety.judge.prompts import load_template
    from mhsafety.judge.settings import JudgeSettings

    shape = RequestShape(JudgeSettings(model="fake-judge", base_url="http://x/v1"))
    template = load_template(None)
    items = examples(n)
    return [shape.payload(template.messages_json(ex)) for _ in range(rounds) for ex in items]


def bare_loop(url: str, bodies: list[bytes], concurrency: int) -> float:
    """Seconds for sending ``bodies`` over ``concurrency`` keep-alive connections with
    nothing else (no prompts built, no parsing, no log): the floor this machine and server
    allow for the same requests at that moment."""
    import asyncio
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    head = (f"POST {parts.path}/chat/completions HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\n")
    requests = [(head + f"Content-Length: {len(b)}\r\n\r\n").encode() + b for b in bodies]

    async def worker(queue: asyncio.Queue) -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        while not queue.empty():
            writer.write(queue.get_nowait())
            await writer.drain()
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
        writer.close()

    async def main() -> float:
        queue: asyncio.Queue = asyncio.Queue()
        for request in requests:
            queue.put_nowait(request)
        start = time.perf_counter()
        await asyncio.gather(*[worker(queue) for _ in range(concurrency)])
        return time.perf_counter() - start

    return asyncio.run(main())


def memory_child(url: str, n: int, concurrency: int, client: str) -> None:
    stats = run_once(url, n, concurrency, client)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{n} items at concurrency {concurrency}: {stats['answered']} answered in "
          f"{stats['total_s']:.1f} s; peak RSS {peak_mb:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--items", type=int, default=800)
    ap.add_argument("--items-at-1", type=int, default=100,
                    help="items at concurrency 1 (800 would take 80 s at 100 ms)")
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds per run (concurrency 1 always runs one round)")
    ap.add_argument("--memory-items", type=int, default=10_000)
    ap.add_argument("--client", choices=["fast", "openai"], default="fast")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per concurrency; the median and the best are printed, since "
                         "a shared machine makes single runs noisy")
    ap.add_argument("--protocol", choices=["flat", "sequential"], default="flat")
    ap.add_argument("--batch", action="store_true", help="measure batch mode instead")
    ap.add_argument("--poll", type=float, default=0.1, help="batch poll interval, seconds")
    ap.add_argument("--in-memory", action="store_true",
                    help="time the in-memory judge (judge_examples: no log, no records "
                         "written) instead of the resumable run_judge")
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    IN_MEMORY[0] = args.in_memory
    if args.memory_child:
        memory_child(args.url, args.memory_items, max(args.concurrency), args.client)
        return
    if args.protocol == "sequential":
        bench_sequential(args)
        return
    if args.batch:
        bench_batch(args)
        return
    server, url = start_server(args.latency)
    try:
        what = ("judge_examples call (prompts, requests, records in memory)" if args.in_memory
                else "run_judge call (prompts, requests, log, records)")
        print(f"client {args.client}, server latency {args.latency * 1000:.0f} ms; wall = the "
              f"whole {what}")
        print("concurrency  requests  median_s  best_s  worst_s  median req/s  limit/s  "
              "fraction (median, best, worst)  bare loop (same requests) median_s")
        for c in args.concurrency:
            n, rounds = (args.items_at_1, 1) if c == 1 else (args.items, args.rounds)
            runs = 1 if c == 1 else args.repeat
            bodies = judge_bodies(n, rounds)
            walls, bare = [], []
            for _ in range(runs):  # alternated, so both see the machine's load alike
                walls.append(run_once(url, n, c, args.client, rounds)["total_s"])
                bare.append(bare_loop(url, bodies, c))
            walls.sort()
            bare.sort()
            median, best, worst = walls[len(walls) // 2], walls[0], walls[-1]
            requests = n * rounds
            limit = c / args.latency
            print(f"{c:>11}  {requests:>8}  {median:>8.2f}  {best:>6.2f}  {worst:>7.2f}  "
                  f"{requests / median:>12.1f}  {limit:>7.0f}  "
                  f"{requests / median / limit:.3f}, {requests / best / limit:.3f}, "
                  f"{requests / worst / limit:.3f}            {bare[len(bare) // 2]:.2f}",
                  flush=True)
        if args.memory_items:
            subprocess.run([sys.executable, __file__, "--memory-child", "--url", url,
                            "--memory-items", str(args.memory_items), "--client", args.client,
                            "--concurrency", str(max(args.concurrency))], check=True)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
