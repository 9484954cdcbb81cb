"""The gateway's cost, side by side in one run: gateway vs direct, against one fake upstream.

Starts, each in its own process on 127.0.0.1: the fake streaming upstream
(``python -m mhsafety.testing.upstream``, answering after ``--latency-ms``, 50 ms by default)
and two gateways in front of it (``mhsafety serve --checkpoint CKPT --upstream URL``, the
baseline checkpoint with the default reply rules and seeker rules; one with the default
hold-back, one with ``--hold-back 0``). Then, from this process:

1. plain completions: ``--requests`` requests from ``--clients`` concurrent clients, straight
   to the upstream and through the gateway, interleaved in rounds so both see the same
   machine; p50 / p99 latency and requests/s for each, and the difference;
2. streamed completions (``--stream-requests`` from ``--stream-clients`` clients): time to
   the first content token, direct vs gateway with hold-back 0 (what the gateway itself adds)
   and vs the default hold-back (what holding back costs with this upstream's pace: pieces of
   ``--piece-chars`` characters every ``--piece-ms``).

Every answer must be 200 (any other counts as an error). The load generator runs on the same
machine as the servers, so on 2 cores they compete: write the load average beside a figure.

    python benchmarks/bench_gateway.py                       # trains a baseline first
    python benchmarks/bench_gateway.py --checkpoint runs/ckpt-baseline --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_JSON = REPO.parent / "shared" / "data" / "dialogue-safety" / "test.json"
REPLY = ("听起来你最近真的很辛苦，晚上睡不着的时候，一个人面对这些一定很难受。"
         "愿意和我多说一些吗？是从什么时候开始的？")


def start(args: list[str], log: Path, pattern: str, env: dict | None = None
          ) -> tuple[subprocess.Popen, str]:
    handle = open(log, "w", encoding="utf-8")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, "-m", *args], stdout=handle,
                            stderr=subprocess.STDOUT, env=env)
    handle.close()
    deadline = time.monotonic() + 120
    while not (match := re.search(pattern, log.read_text())):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"{args[0]} did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return proc, match.group(1)


def wait_ready(url: str) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} never became ready")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def plain_load(base: str, n: int, clients: int, contexts: list[str]) -> dict:
    """``n`` plain completions from ``clients`` concurrent clients. The load generator is
    the judge's small HTTP client (well under 1 ms of CPU per request; httpx's 5-10 ms would
    make the generator the bottleneck on 2 cores)."""
    from mhsafety.judge.transport import FastTransport, TransportError

    transport = FastTransport(base, None, 60.0)
    latencies: list[float] = []
    errors = 0
    counter = iter(range(n))

    async def worker() -> None:
        nonlocal errors
        for i in counter:
            body = json.dumps({"model": "fake", "messages": [
                {"role": "user", "content": contexts[i % len(contexts)]}]},
                ensure_ascii=False).encode()
            started = time.perf_counter()
            try:
                ok = (await transport.post("/chat/completions", body)).status == 200
            except TransportError:
                ok = False
            latencies.append(time.perf_counter() - started)
            errors += not ok

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - started
    await transport.aclose()
    return {"requests": n, "errors": errors, "rps": n / wall,
            "p50_ms": 1000 * percentile(latencies, 50), "p99_ms": 1000 * percentile(latencies, 99)}


async def stream_load(base: str, n: int, clients: int, contexts: list[str]) -> dict:
    import httpx

    from mhsafety.guard.sse import chunk_text, iter_chunks

    ttft: list[float] = []
    total: list[float] = []
    errors = 0
    counter = iter(range(n))
    async with httpx.AsyncClient(timeout=60) as http:
        async def worker() -> None:
            nonlocal errors
            for i in counter:
                body = {"model": "fake", "stream": True, "messages": [
                    {"role": "user", "content": contexts[i % len(contexts)]}]}
                started = time.perf_counter()
                first = None
                try:
                    async with http.stream("POST", f"{base}/chat/completions",
                                           json=body) as response:
                        if response.status_code != 200:
                            errors += 1
                            continue
                        async for chunk in iter_chunks(response.aiter_bytes()):
                            if first is None and chunk_text(chunk):
                                first = time.perf_counter() - started
                except httpx.HTTPError:
                    errors += 1
                    continue
                total.append(time.perf_counter() - started)
                if first is not None:
                    ttft.append(first)

        await asyncio.gather(*(worker() for _ in range(clients)))
    return {"requests": n, "errors": errors,
            "ttft_p50_ms": 1000 * statistics.median(ttft),
            "ttft_p99_ms": 1000 * percentile(ttft, 99),
            "total_p50_ms": 1000 * statistics.median(total)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="A baseline checkpoint (default: train one on --data).")
    parser.add_argument("--data", type=Path, default=TEST_JSON)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--piece-chars", type=int, default=2)
    parser.add_argument("--piece-ms", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--latency-clients", type=int, default=8,
                        help="Clients of the latency run (below saturation: the time the "
                             "gateway adds, not its queue).")
    parser.add_argument("--rounds", type=int, default=3,
                        help="Direct and gateway alternate this many times.")
    parser.add_argument("--stream-requests", type=int, default=300)
    parser.add_argument("--stream-clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="Gateway processes.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from mhsafety.data import load_examples

    examples = load_examples(args.data)
    contexts = [t.text for ex in examples for t in ex.turns if t.role == "seeker"][:800]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        checkpoint = args.checkpoint
        if checkpoint is None:
            from mhsafety.registry import create_classifier

            checkpoint = tmp / "baseline"
            create_classifier("baseline").fit(examples).save(checkpoint)
        env = {k: v for k, v in os.environ.items()
               if k not in ("MHSAFETY_GATEWAY_TOKENS", "MHSAFETY_GUARD_TOKEN")}
        procs = []
        try:
            up, up_url = start(["mhsafety.testing.upstream", "--latency-ms",
                                str(args.latency_ms), "--piece-chars", str(args.piece_chars),
                                "--piece-ms", str(args.piece_ms), "--reply", REPLY],
                               tmp / "upstream.log", r"listening on (http://\S+)", env)
            procs.append(up)
            gateways = {}
            for name, extra in (("gateway", []), ("gateway_h0", ["--hold-back", "0"])):
                proc, url = start(["mhsafety", "serve", "--checkpoint", str(checkpoint),
                                   "--upstream", up_url, "--port", "0", "--log-level",
                                   "warning", "--workers", str(args.workers), *extra],
                                  tmp / f"{name}.log", r"listening on (http://\S+)", env)
                procs.append(proc)
                wait_ready(url)
                gateways[name] = f"{url}/v1"
            targets = {"direct": up_url, "gateway": gateways["gateway"]}
            runs: dict[str, list[dict]] = {k: [] for k in targets}
            light: dict[str, list[dict]] = {k: [] for k in targets}
            per_round = max(1, args.requests // args.rounds)
            for name, base in targets.items():  # warm-up: connections, the model's caches
                asyncio.run(plain_load(base, 200, args.clients, contexts))
            for _ in range(args.rounds):
                for name, base in targets.items():
                    runs[name].append(asyncio.run(plain_load(base, per_round, args.clients,
                                                             contexts)))
                for name, base in targets.items():
                    light[name].append(asyncio.run(plain_load(
                        base, max(100, per_round // 4), args.latency_clients, contexts)))
            streams = {}
            for name, base in (("direct", up_url), ("gateway_h0", gateways["gateway_h0"]),
                               ("gateway", gateways["gateway"])):
                streams[name] = asyncio.run(stream_load(base, args.stream_requests,
                                                        args.stream_clients, contexts))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def merged(name: str, source: dict[str, list[dict]]) -> dict:
        rows = source[name]
        return {"requests": sum(r["requests"] for r in rows),
                "errors": sum(r["errors"] for r in rows),
                "rps": statistics.median(r["rps"] for r in rows),
                "p50_ms": statistics.median(r["p50_ms"] for r in rows),
                "p99_ms": statistics.median(r["p99_ms"] for r in rows)}

    load = os.getloadavg()
    report = {"upstream_latency_ms": args.latency_ms, "clients": args.clients,
              "workers": args.workers, "plain": {k: merged(k, runs) for k in runs},
              "latency_clients": args.latency_clients,
              "light": {k: merged(k, light) for k in light},
              "rounds": runs, "stream": streams,
              "piece": {"chars": args.piece_chars, "ms": args.piece_ms},
              "hold_back_default": 32, "load_average": [round(x, 2) for x in load]}
    plain = report["plain"]
    report["added_p50_ms"] = plain["gateway"]["p50_ms"] - plain["direct"]["p50_ms"]
    lighter = report["light"]
    report["added_p50_light_ms"] = lighter["gateway"]["p50_ms"] - lighter["direct"]["p50_ms"]
    report["added_ttft_h0_ms"] = streams["gateway_h0"]["ttft_p50_ms"] - \
        streams["direct"]["ttft_p50_ms"]
    report["added_ttft_default_ms"] = streams["gateway"]["ttft_p50_ms"] - \
        streams["direct"]["ttft_p50_ms"]
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"upstream answers after {args.latency_ms:g} ms; {args.clients} clients; "
          f"{args.workers} gateway worker(s); load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}")
    print(f"{'plain':<12}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for name, row in plain.items():
        print(f"{name:<12}{row['rps']:>9.0f}{row['p50_ms']:>9.1f}{row['p99_ms']:>9.1f}"
              f"{row['errors']:>8}")
    print(f"added at p50: {report['added_p50_ms']:.1f} ms")
    print(f"with {args.latency_clients} clients:")
    for name, row in lighter.items():
        print(f"{name:<12}{row['rps']:>9.0f}{row['p50_ms']:>9.1f}{row['p99_ms']:>9.1f}"
              f"{row['errors']:>8}")
    print(f"added at p50: {report['added_p50_light_ms']:.1f} ms")
    print(f"{'stream':<12}{'TTFT p50':>10}{'TTFT p99':>10}{'total p50':>11}{'errors':>8}")
    for name, row in streams.items():
        print(f"{name:<12}{row['ttft_p50_ms']:>10.1f}{row['ttft_p99_ms']:>10.1f}"
              f"{row['total_p50_ms']:>11.1f}{row['errors']:>8}")
    print(f"TTFT added: {report['added_ttft_h0_ms']:.1f} ms with hold-back 0, "
          f"{report['added_ttft_default_ms']:.1f} ms with the default 32 characters "
          f"({args.piece_chars} characters every {args.piece_ms:g} ms upstream)")


if __name__ == "__main__":
    main()
