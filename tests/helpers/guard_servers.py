"""Real guard server processes on 127.0.0.1, port 0, for the guard tests.

The server runs ``tests.helpers.run_server`` (the CLI with the scripted fake kind
registered) from the repository root.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]

TOKEN = "test-token-7f3a"
URL_RE = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


class Server:
    def __init__(self, process: subprocess.Popen, url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def start_server(checkpoint: Path, log: Path, *args: str, env: dict[str, str] | None = None,
                 ) -> Server:
    full_env = {k: v for k, v in os.environ.items() if k != "MHSAFETY_GUARD_TOKEN"}
    full_env.update(env or {})
    # The child imports tests.helpers from the repository root, the way pytest does.
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), full_env.get("PYTHONPATH", "")) if p)
    handle = open(log, "w", encoding="utf-8")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.run_server", "serve", "--checkpoint", str(checkpoint),
         "--port", "0", *args],
        stdout=handle, stderr=subprocess.STDOUT, env=full_env, cwd=REPO)
    handle.close()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        match = URL_RE.search(log.read_text(encoding="utf-8", errors="replace"))
        if match:
            url = match.group(1)
            try:
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                    return Server(process, url, log)
            except httpx.HTTPError:
                pass
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not start:\n{log.read_text()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
