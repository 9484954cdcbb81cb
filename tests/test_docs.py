"""Docs that run: the bash blocks of README.md and of every docs/cli/*.md, pasted in order.

How a page runs
  * A fresh copy of the checkout (the files ``git ls-files --cached --others --exclude-standard``
    lists, i.e. a clone plus uncommitted work) is made at TMP/repo, beside TMP/shared, a link
    to the checkout's ../shared: the layout the docs assume.
  * The page's ``bash`` blocks become one script, run by ONE bash process from TMP/repo, so
    ``cd``, variables and background jobs carry from block to block as in one terminal.
    stdin is /dev/null; stdout and stderr go to one log. PATH starts with the running
    interpreter's bin folder (its ``mhsafety``, ``python``, ``inspect``, ``torchrun``), PYTHONPATH
    is the copy's ``src``, and caches (mhsafety, Hugging Face) live under TMP; nothing is
    downloaded (HF_HUB_OFFLINE=1).
  * The rule for a block: it passes when bash, running it with errexit (``set -e``; no
    pipefail), reaches its end. So every command whose failure errexit notices must exit 0: a
    simple command, the last command of a pipeline, the last command of an ``&&``/``||`` list.
    (Exempt, as in bash: commands of ``if``/``while``/``until`` tests, all but the last of an
    ``&&``/``||`` list, ``!``-negated commands, ``&`` background jobs.) A block marked
    ``exit N`` runs without errexit and passes when its last command exits N.
  * The page runs under a time limit (PAGE_LIMIT_S, or ``<!-- docs-test: page-limit S -->``
    anywhere in the page). A page whose blocks all passed must have stopped what it started (by
    the PIDs it saved): a process of its group still running 10 s after the shell ended fails
    the page. At the end, passed or not, the page's process group is killed.
  * Each page keeps to its own output folders: after the run, every new path of the copy must lie
    under ``runs/NAME/`` for docs/cli/NAME.md, and under ``runs/`` (but no guide's folder) for
    README.md, so pages pasted one after another on one clone never overwrite each other.

Markers: an HTML comment (invisible when rendered) on the line right above a block's opening
fence, blank lines allowed between them; directives separated by ``;``:
  ``<!-- docs-test: skip (REASON) -->``     the block is not run; REASON says why (it needs a
                                            network, a GPU, or a server that runs until Ctrl-C)
  ``<!-- docs-test: exit N -->``            the block must end with exit status N
  ``<!-- docs-test: prints "TEXT" -->``     its output (stdout and stderr) must contain TEXT
e.g. ``<!-- docs-test: exit 2; prints "overlap" -->``. A marker that is not one of these, or
that stands above no bash block, fails the (fast) marker test.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PAGES = ["README.md"] + sorted(
    str(p.relative_to(REPO)) for p in (REPO / "docs" / "cli").glob("*.md"))
PAGE_LIMIT_S = 900  # a hang guard: the README took 3 min at load 2.5, 9 min at load 8
GUIDE_FOLDERS = {Path(p).stem for p in PAGES if p.startswith("docs/cli/")}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:(?P<body>.*?)-->\s*$")
_BEGIN = "@@docs-test begin"
_END = "@@docs-test end"


@dataclass
class Block:
    """One fenced bash block of a page and what its marker expects of it."""

    line: int                     # 1-based line of the opening fence
    code: str
    skip: str | None = None       # the reason, when the block is not run
    exit: int = 0
    prints: list[str] = field(default_factory=list)


class MarkerError(ValueError):
    pass


def _parse_marker(body: str, where: str) -> dict:
    out: dict = {"prints": []}
    parts, depth, quoted, cur = [], 0, False, ""
    for ch in body:                 # split on ";" outside parentheses and quotes
        if ch == ";" and not depth and not quoted:
            parts.append(cur)
            cur = ""
            continue
        quoted ^= ch == '"'
        depth += (ch == "(") - (ch == ")") if not quoted else 0
        cur += ch
    for part in filter(None, (p.strip() for p in parts + [cur])):
        if m := re.fullmatch(r"skip\s*\((.+)\)", part):
            out["skip"] = m.group(1).strip()
        elif m := re.fullmatch(r"exit\s+(\d+)", part):
            out["exit"] = int(m.group(1))
        elif m := re.fullmatch(r'prints\s+"(.+)"', part):
            out["prints"].append(m.group(1))
        elif m := re.fullmatch(r"page-limit\s+(\d+)", part):
            out["page_limit"] = int(m.group(1))
        else:
            raise MarkerError(f"{where}: unknown docs-test directive {part!r}")
    return out


def parse_page(path: Path) -> tuple[list[Block], int]:
    """The page's bash blocks in order, and its time limit in seconds."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    limit = PAGE_LIMIT_S
    pending: tuple[int, dict] | None = None
    i = 0
    while i < len(lines):
        where = f"{path.name}:{i + 1}"
        if m := _MARKER.match(lines[i]):
            directives = _parse_marker(m.group("body"), where)
            if "page_limit" in directives:
                limit = directives.pop("page_limit")
                if set(directives) == {"prints"} and not directives["prints"]:
                    i += 1
                    continue
            if pending is not None:
                raise MarkerError(f"{path.name}:{pending[0]}: marker stands above no bash block")
            pending = (i + 1, directives)
            i += 1
            continue
        m = _FENCE.match(lines[i])
        if not m:
            if pending is not None and lines[i].strip():
                raise MarkerError(f"{path.name}:{pending[0]}: marker stands above no bash block")
            i += 1
            continue
        fence, indent, info = m.group("fence"), len(m.group("indent")), m.group("info").strip()
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1                          # the closing fence
        if info.split()[:1] == ["bash"]:
            d = pending[1] if pending else {}
            blocks.append(Block(start + 1, "\n".join(body) + "\n", d.get("skip"),
                                d.get("exit", 0), d.get("prints", [])))
        elif pending is not None:
            raise MarkerError(f"{path.name}:{pending[0]}: marker stands above a {info or 'plain'}"
                              " block; only bash blocks run")
        pending = None
    if pending is not None:
        raise MarkerError(f"{path.name}:{pending[0]}: marker stands above no bash block")
    return blocks, limit


def page_script(blocks: list[Block]) -> str:
    """One bash script: each block between begin/end lines that carry its status and time."""
    parts = ["set +o pipefail\n"]
    for k, block in enumerate(blocks):
        if block.skip:
            continue
        parts.append(f"printf '\\n{_BEGIN} {k} %s@@\\n' \"$EPOCHREALTIME\"\n")
        if block.exit == 0:
            parts.append(f"set -e\n{block.code}set +e\n"
                         f"printf '\\n{_END} {k} 0 %s@@\\n' \"$EPOCHREALTIME\"\n")
        else:
            parts.append(f"{block.code}__docs_rc=$?\n"
                         f"printf '\\n{_END} {k} %d %s@@\\n' \"$__docs_rc\" \"$EPOCHREALTIME\"\n")
    parts.append("printf '\\n@@docs-test page done@@\\n'\n")
    return "".join(parts)


def _copy_checkout(dest: Path) -> None:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, check=True, capture_output=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: copy what is there
        shutil.copytree(REPO, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "runs", "results", "report", "__pycache__", "*.egg-info"))
        return
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and ".pytest_cache" not in p.parts}


def _allowed(page: str, rel: str) -> bool:
    parts = Path(rel).parts
    if page == "README.md":
        return parts[0] == "runs" and (len(parts) < 3 or parts[1] not in GUIDE_FOLDERS)
    return parts[:2] == ("runs", Path(page).stem)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed child of an exited shell may wait to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _left_running(pgid: int, wait_s: float = 10.0) -> list[str]:
    """Command lines of the group's processes still running ``wait_s`` after its shell ended
    (a server the page started and did not stop)."""
    deadline = time.monotonic() + wait_s
    while True:
        alive = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    alive.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
                                 .decode(errors="replace").strip()[:120])
            except (OSError, IndexError, ValueError):
                continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


@dataclass
class PageRun:
    blocks: list[Block]
    log: str
    rc: int | None                # bash's exit status; None: stopped at the time limit
    seconds: float
    strays: list[str]             # new files outside the page's own folders
    left: list[str] = field(default_factory=list)   # processes the page did not stop


def run_page(page: str, tmp: Path) -> PageRun:
    """Run the page's blocks in a fresh copy of the checkout under ``tmp``."""
    blocks, limit = parse_page(REPO / page)
    repo = tmp / "repo"
    repo.mkdir()
    _copy_checkout(repo)
    (tmp / "shared").symlink_to(SHARED.resolve(), target_is_directory=True)
    (tmp / "page.sh").write_text(page_script(blocks), encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "MHSAFETY_", "PYTEST_", "RAY_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(repo / "src"), MHSAFETY_CACHE_DIR=str(tmp / "cache"),
        HF_HOME=str(tmp / "hf"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1", INSPECT_LOG_DIR=str(repo / "runs" / "inspect-default"),
        PYTHONUNBUFFERED="1", NO_COLOR="1")
    before = _tree(repo)
    start = time.monotonic()
    with open(tmp / "page.log", "wb") as log:
        proc = subprocess.Popen(["bash", str(tmp / "page.sh")], cwd=repo, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        left: list[str] = []
        try:
            rc: int | None = proc.wait(timeout=limit)
            left = _left_running(proc.pid)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            _kill_group(proc)
            proc.wait()
    took = time.monotonic() - start
    text = (tmp / "page.log").read_text(encoding="utf-8", errors="replace")
    strays = sorted(r for r in _tree(repo) - before if not _allowed(page, r))
    return PageRun(blocks, text, rc, took, strays, left)


def check_page(page: str, run: PageRun) -> list[str]:
    """What went wrong, one line per problem (empty: the page passed)."""
    blocks, text, rc = run.blocks, run.log, run.rc
    problems: list[str] = []
    begins = {int(m.group(1)): (m.end(), float(m.group(2)))
              for m in re.finditer(rf"{_BEGIN} (\d+) ([\d.]+)@@\n", text)}
    ends = {int(m.group(1)): (m.start(), int(m.group(2)), float(m.group(3)))
            for m in re.finditer(rf"\n{_END} (\d+) (\d+) ([\d.]+)@@", text)}
    for k, block in enumerate(blocks):
        where = f"{page}:{block.line}"
        if block.skip:
            continue
        if k not in begins:
            problems.append(f"{where}: never ran (an earlier block stopped the page)")
            break
        if k not in ends:
            why = "over the page's time limit" if rc is None else f"a command exited {rc}"
            problems.append(f"{where}: the block stopped: {why}")
            break
        out = text[begins[k][0]:ends[k][0]]
        if ends[k][1] != block.exit:
            problems.append(f"{where}: exit {ends[k][1]}, expected {block.exit}")
        problems += [f"{where}: output lacks {want!r}" for want in block.prints
                     if want not in out]
    if run.rc == 0 and run.left:
        problems.append(f"{page}: left running: {'; '.join(run.left[:5])}")
    if run.strays:
        problems.append(f"{page}: wrote outside its own folders: {' '.join(run.strays[:10])}")
    return problems


def block_times(blocks: list[Block], text: str) -> list[tuple[int, float]]:
    begins = {int(a): float(t) for a, t in re.findall(rf"{_BEGIN} (\d+) ([\d.]+)@@", text)}
    ends = {int(a): float(t) for a, _, t in re.findall(rf"{_END} (\d+) (\d+) ([\d.]+)@@", text)}
    return [(blocks[k].line, ends[k] - begins[k]) for k in sorted(begins) if k in ends]


@pytest.mark.parametrize("page", PAGES)
def test_markers_parse(page):
    """Every marker is a known directive over a bash block; skipped blocks say why."""
    blocks, limit = parse_page(REPO / page)
    assert blocks, f"{page} has no bash block"
    assert limit > 0
    assert all(b.skip is None or b.skip.strip() for b in blocks)


def test_parser_reads_markers_and_indented_blocks(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        "text\n\n<!-- docs-test: skip (needs network) -->\n```bash\ncurl x\n```\n\n"
        "- item\n\n  <!-- docs-test: exit 2; prints \"no such\" -->\n  ```bash\n  false\n"
        "  echo hi\n  ```\n\n```python\nprint(1)\n```\n```bash\ntrue\n```\n",
        encoding="utf-8")
    blocks, _ = parse_page(page)
    assert [(b.skip, b.exit, b.prints, b.code) for b in blocks] == [
        ("needs network", 0, [], "curl x\n"),
        (None, 2, ["no such"], "false\necho hi\n"),
        (None, 0, [], "true\n")]
    page.write_text("<!-- docs-test: skip (x) -->\n\n```python\n1\n```\n", encoding="utf-8")
    with pytest.raises(MarkerError, match="only bash blocks run"):
        parse_page(page)
    page.write_text("<!-- docs-test: exits 2 -->\n```bash\n1\n```\n", encoding="utf-8")
    with pytest.raises(MarkerError, match="unknown docs-test directive"):
        parse_page(page)


def test_errexit_rule_and_group_cleanup(tmp_path):
    """The harness itself: a failing command stops its block, an expected exit status passes,
    and a server left running is stopped with the page."""
    blocks = [Block(1, "x=1\nsleep 300 &\necho $! > pid\n"), Block(2, "false\n", exit=1),
              Block(3, 'test "$x" = 1\nfalse\necho never\n'), Block(4, "true\n")]
    (tmp_path / "page.sh").write_text(page_script(blocks))
    with open(tmp_path / "log", "wb") as log:
        proc = subprocess.Popen(["bash", "page.sh"], cwd=tmp_path, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        rc = proc.wait(timeout=30)
        left = _left_running(proc.pid, wait_s=0.5)
        _kill_group(proc)
    assert left == ["sleep 300"]
    text = (tmp_path / "log").read_text()
    problems = check_page("p", PageRun(blocks, text, rc, 0.0, []))
    assert problems == ["p:3: the block stopped: a command exited 1"]
    assert "never" not in text
    pid = int((tmp_path / "pid").read_text())
    assert not _running(pid)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_page_runs_as_written(page, tmp_path):
    if not (SHARED / "data" / "dialogue-safety" / "test.json").exists():
        pytest.fail(f"{SHARED} is missing: the docs read ../shared beside the checkout")
    run = run_page(page, tmp_path)
    slow = [f"line {line} {s:.0f} s" for line, s in block_times(run.blocks, run.log) if s >= 5]
    print(f"{page}: {run.seconds:.0f} s; blocks of 5 s or more: {', '.join(slow) or 'none'}")
    problems = check_page(page, run)
    assert not problems, "\n".join(problems) + "\n--- last output ---\n" + run.log[-6000:]
