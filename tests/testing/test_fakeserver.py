"""The fake chat server binds a free port by default and refuses a port in use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mhsafety.testing import FakeServer


def test_a_port_in_use_is_refused_in_one_line():
    with FakeServer() as first:
        with pytest.raises(OSError):
            FakeServer(port=first.port).start()
        done = subprocess.run([sys.executable, "-m", "mhsafety.testing.fakeserver", "--port",
                               str(first.port)], capture_output=True, text=True, timeout=60,
                              check=False)
    assert done.returncode == 2 and "listening" not in done.stdout
    assert done.stderr.count("\n") == 1 and f"cannot listen on 127.0.0.1:{first.port}" \
        in done.stderr and "Traceback" not in done.stderr


def test_the_default_port_is_a_free_one():
    proc = subprocess.Popen([sys.executable, "-m", "mhsafety.testing.fakeserver"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(10)
    assert line.startswith("listening on http://127.0.0.1:") and ":0/" not in line
