"""Run code in a child process whose cwd, TMPDIR and HOME are an empty read-only folder and
report every file it writes, every folder it makes or removes, and every file it reads
outside Python's own installation and this repository (audit hooks see them all; the
folder's permissions alone would not stop a root user)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_PRELUDE = '''
import contextlib, json, os, sys
sys.path.insert(0, {repo!r})
_seen, _armed = [], [False]
_allowed = tuple(os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, {repo!r},
                 "/usr/lib", "/usr/local/lib", "/proc", "/dev/urandom"))
_EVENTS = ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree",
           "tempfile.mkstemp", "tempfile.mkdtemp", "os.truncate")

def _hook(event, args):
    if not _armed[0]:
        return
    if event == "open":
        path, mode, flags = args
        writes = (mode and any(c in str(mode) for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        where = os.path.realpath(path) if isinstance(path, (str, bytes)) else ""
        if isinstance(where, bytes):
            where = where.decode(errors="replace")
        if writes or (where and not where.startswith(_allowed)):
            _seen.append([event, str(path), str(mode)])
    elif event in _EVENTS:
        _seen.append([event, str(args[0])])

sys.addaudithook(_hook)

@contextlib.contextmanager
def audited():
    _armed[0] = True
    try:
        yield
    finally:
        _armed[0] = False
'''


def run_auditing_files(code: str, tmp_path: Path) -> list[list[str]]:
    """What ``code`` touched inside its ``with audited():`` blocks (empty: nothing)."""
    empty = tmp_path / "read-only-empty"
    empty.mkdir()
    empty.chmod(0o555)
    script = (_PRELUDE.format(repo=str(REPO))
              + textwrap.dedent(code) + "\nprint(json.dumps(_seen))\n")
    env = {**os.environ, "TMPDIR": str(empty), "HOME": str(empty),
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], cwd=empty, env=env, check=False,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert list(empty.iterdir()) == []
    return json.loads(done.stdout.strip().splitlines()[-1])

