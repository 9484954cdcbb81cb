"""Load test of `mhsafety serve`: concurrent clients sending single-item requests.

Starts the service (a separate process) on 127.0.0.1 with a baseline checkpoint, fires
``--requests`` single-item POST /v1/check requests from ``--clients`` concurrent httpx
clients (items drawn round-robin from the public test set), and prints errors, requests/s and
latency percentiles. Any non-200 answer, transport error or "unverified" result counts as an
error. The client runs on the same machine, so it competes with the server for CPU.

    python benchmarks/bench_guard.py                          # trains a baseline first
    python benchmarks/bench_guard.py --checkpoint ckpt/baseline --clients 32 --requests 5000
    python benchmarks/bench_guard.py --url http://127.0.0.1:8000   # an already running server
    python benchmarks/bench_guard.py --checkpoint ckpt/baseline --cascade 0.3,0.7

The rule tier is on, as `mhsafety serve` runs by default (``--server-arg=--no-rules`` turns it
off). ``--cascade LOW,HIGH`` adds an LLM judge as the escalation tier: the bundled
OpenAI-compatible fake server in its own process (answering "Safe Response" after
``--judge-latency`` seconds) behind a judge checkpoint made for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_JSON = REPO.parent / "shared" / "data" / "dialogue-safety" / "test.json"


def train_baseline(target: Path, data: Path) -> Path:
    from mhsafety.data import load_examples
    from mhsafety.registry import create_classifier

    started = time.perf_counter()
    create_classifier("baseline").fit(load_examples(data)).save(target)
    print(f"trained a baseline on {data} in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    return target


def start_judge(tmp: Path, latency: float) -> tuple[subprocess.Popen, Path]:
    """The bundled fake OpenAI-compatible server (own process) and a judge checkpoint on it."""
    from mhsafety.registry import create_classifier

    log = tmp / "judge.log"
    handle = open(log, "w", encoding="utf-8")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, "-m", "mhsafety.testing.fakeserver", "--latency",
                             str(latency)], stdout=handle, stderr=subprocess.STDOUT)
    handle.close()
    deadline = time.monotonic() + 30
    while not (match := re.search(r"listening on (http://\S+)", log.read_text())):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the fake judge server did not start:\n{log.read_text()}")
        time.sleep(0.1)
    judge = tmp / "judge"
    create_classifier(f"judge:fake-judge@{match.group(1)}", seed=0, rounds=1,
                      concurrency=64, timeout=30).save(judge)
    return proc, judge


def escalations(url: str) -> int:
    """The server's escalation count, from /metrics."""
    import urllib.request

    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    match = re.search(r"^mhsafety_guard_escalations_total (\S+)$", text, re.MULTILINE)
    return int(float(match.group(1))) if match else 0


def start_server(checkpoint: Path, log: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if k != "MHSAFETY_GUARD_TOKEN"}
    handle = open(log, "w", encoding="utf-8")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, "-m", "mhsafety", "serve", "--checkpoint",
                             str(checkpoint), "--port", "0", *extra],
                            stdout=handle, stderr=subprocess.STDOUT, env=env)
    handle.close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        match = re.search(r"listening on (http://\S+)", log.read_text())
        if match and "startup complete" in log.read_text():
            return proc, match.group(1)
        if proc.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text()}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start in 120 s")


class RawClient:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams.

    httpx costs the client ~4 ms of CPU per request here, which on a 2-core machine starves
    the server it is measuring; this costs a fraction of that. One connection per client.
    """

    def __init__(self, url: str) -> None:
        match = re.match(r"http://([^:/]+):(\d+)", url)
        if not match:
            raise SystemExit(f"--url must look like http://HOST:PORT, got {url}")
        self.host, self.port = match.group(1), int(match.group(2))
        self.reader = self.writer = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        self.writer.write(head.encode() + body)
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.writer = None
            raise
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next(int(line.split(":", 1)[1]) for line in lines
                      if line.lower().startswith("content-length:"))
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def load_raw(url: str, bodies: list[bytes], clients: int, total: int,
                   warmup: int) -> dict[str, float]:
    latencies: list[float] = []
    errors: list[str] = []
    conns = [RawClient(url) for _ in range(clients)]

    async def worker(conn: RawClient, indices, record: bool) -> None:
        for i in indices:
            started = time.perf_counter()
            try:
                status, payload = await conn.post("/v1/check", bodies[i % len(bodies)])
                if status != 200 or b'"decision":"unverified"' in payload:
                    reason = re.search(rb'"reason":("[^"]*")', payload)
                    errors.append(f"{status} {(reason.group(1) if reason else payload[:200])!r}")
            except (OSError, asyncio.IncompleteReadError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            if record:
                latencies.append(time.perf_counter() - started)

    shared = iter(range(warmup))
    await asyncio.gather(*[worker(c, shared, False) for c in conns])
    errors.clear()
    shared = iter(range(warmup, warmup + total))
    started = time.perf_counter()
    await asyncio.gather(*[worker(c, shared, True) for c in conns])
    wall = time.perf_counter() - started
    for conn in conns:
        await conn.close()
    return summarize(latencies, errors, wall)


def summarize(latencies: list[float], errors: list[str], wall: float) -> dict[str, float]:
    latencies = sorted(latencies)

    def pct(q: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return {"requests": len(latencies), "errors": len(errors), "wall_s": wall,
            "requests_per_s": len(latencies) / wall, "p50_ms": pct(0.50), "p90_ms": pct(0.90),
            "p99_ms": pct(0.99), "max_ms": 1000 * latencies[-1],
            "first_error": errors[0] if errors else None}


async def load(url: str, bodies: list[bytes], clients: int, total: int,
               warmup: int) -> dict[str, float]:
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"content-type": "application/json"}

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def worker(indices, record: bool) -> None:
            for i in indices:  # a shared iterator: each index is sent once
                started = time.perf_counter()
                try:
                    response = await client.post("/v1/check", content=bodies[i % len(bodies)],
                                                 headers=headers)
                    ok = (response.status_code == 200 and
                          response.json()["results"][0]["decision"] != "unverified")
                    if not ok:
                        errors.append(f"{response.status_code} {response.text[:200]}")
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                if record:
                    latencies.append(time.perf_counter() - started)

        # Warm-up (connections, first model calls) is not counted.
        shared = iter(range(warmup))
        await asyncio.gather(*[worker(shared, False) for _ in range(clients)])
        errors.clear()
        shared = iter(range(warmup, warmup + total))
        started = time.perf_counter()
        await asyncio.gather(*[worker(shared, True) for _ in range(clients)])
        wall = time.perf_counter() - started

    return summarize(latencies, errors, wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="baseline (or any) checkpoint; "
                        "default: train a baseline on the test set into a temporary folder")
    parser.add_argument("--url", help="benchmark this running server instead of starting one")
    parser.add_argument("--data", type=Path, default=TEST_JSON)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra `mhsafety serve` argument (repeatable)")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw",
                        help="raw: a minimal asyncio HTTP client (cheap on CPU); httpx: the "
                             "httpx AsyncClient")
    parser.add_argument("--cascade", metavar="LOW,HIGH", default=None,
                        help="escalate replies whose P(safe) is in the band to an LLM judge "
                             "(the bundled fake server)")
    parser.add_argument("--judge-latency", type=float, default=0.3,
                        help="with --cascade: simulated seconds per judge answer")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    from mhsafety.data import load_examples

    bodies = [json.dumps({"context": ex.context, "response": ex.response},
                         ensure_ascii=False).encode() for ex in load_examples(args.data)]
    with tempfile.TemporaryDirectory() as tmp:
        proc = None
        url = args.url
        judge_proc = None
        if url is None:
            checkpoint = args.checkpoint or train_baseline(Path(tmp) / "baseline", args.data)
            extra = list(args.server_arg)
            if args.cascade:
                judge_proc, judge = start_judge(Path(tmp), args.judge_latency)
                extra += ["--escalate-to", str(judge), "--band", args.cascade]
            proc, url = start_server(checkpoint, Path(tmp) / "server.log", extra)
        try:
            runner = load_raw if args.client == "raw" else load
            figures = asyncio.run(runner(url, bodies, args.clients, args.requests, args.warmup))
            if proc is not None:
                figures["escalations"] = escalations(url)
        finally:
            for process in (proc, judge_proc):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=30)
    figures.update(clients=args.clients, cpus=os.cpu_count(), client=args.client,
                   cascade=args.cascade)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{figures['requests']} single-item requests from {args.clients} concurrent clients "
          f"({args.client} client, {figures['cpus']} CPUs): {figures['errors']} errors, "
          f"{figures['requests_per_s']:.0f} requests/s, p50 {figures['p50_ms']:.1f} ms, "
          f"p90 {figures['p90_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
          f"max {figures['max_ms']:.1f} ms")
    if args.cascade:
        print(f"cascade band {args.cascade}: {figures['escalations']} replies escalated to the "
              f"judge (warm-up included; simulated answer latency {args.judge_latency:g} s)")
    if figures["first_error"]:
        print(f"first error: {figures['first_error']}")


if __name__ == "__main__":
    main()
