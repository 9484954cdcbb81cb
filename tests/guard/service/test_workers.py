"""Worker processes (``serve --workers N``): one port, the token read by each worker, and
no worker outliving its parent (issue 20: ``kill -9`` of the parent, then a restart)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.guard.service.test_app import GOOD, post
from tests.helpers.guard_servers import TOKEN, start_server, stop_server


def wait_for_workers(server, n: int, timeout: float = 120) -> None:
    """Until ``n`` workers have finished starting (the first one answering is not all)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.log_text().count("Application startup complete") >= n:
            return
        time.sleep(0.2)
    raise AssertionError(f"{n} workers did not start:\n{server.log_text()}")


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    """Running (not gone and not a zombie waiting for whoever adopted it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_several_worker_processes_share_one_port(baseline_checkpoint, tmp_path, test_examples):
    server = start_server(baseline_checkpoint, tmp_path / "workers.log", "--workers", "2",
                          env={"MHSAFETY_GUARD_TOKEN": TOKEN})
    try:
        wait_for_workers(server, 2)

        async def run():
            headers = {"authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(base_url=server.url, timeout=30,
                                         headers=headers) as client:
                return await asyncio.gather(*[
                    client.post("/v1/check", json={"id": ex.id, "context": ex.context,
                                                   "response": ex.response})
                    for ex in test_examples[:20]])

        responses = asyncio.run(run())
        assert [r.json()["results"][0]["id"] for r in responses] == \
            [ex.id for ex in test_examples[:20]]
        assert post(server, GOOD).status_code == 401  # the token reached the workers
        assert len(re.findall(r"Started server process", server.log_text())) == 2
        assert TOKEN not in server.log_text()
    finally:
        stop_server(server)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads processes from /proc")
def test_workers_die_with_their_parent_and_the_port_rebinds_at_once(baseline_checkpoint,
                                                                    tmp_path):
    server = start_server(baseline_checkpoint, tmp_path / "first.log", "--workers", "2")
    port = int(server.url.rsplit(":", 1)[1])
    workers = []
    try:
        wait_for_workers(server, 2)
        assert post(server, GOOD).status_code == 200
        workers = [pid for pid in children_of(server.process.pid) if alive(pid)]
        assert len(workers) >= 2  # the two workers (and multiprocessing's tracker)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in workers if alive(pid)], server.log_text()
    finally:
        for pid in workers:  # ours to clean up should the assertion above fail
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    again = start_server(baseline_checkpoint, tmp_path / "again.log", "--port", str(port))
    try:
        assert again.url.endswith(f":{port}")
        assert post(again, GOOD).status_code == 200
    finally:
        stop_server(again)
