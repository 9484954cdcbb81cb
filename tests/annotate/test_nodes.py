"""Every path through the four nodes: the valid ones give the right label, the rest are refused."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import pytest

from mhsafety.annotate.store import validate_path
from mhsafety.errors import UsageError
from mhsafety.taxonomy import NUM_LABELS, UNSAFE_LEAVES, label_from_path, path_for_label

# Written out by hand from the framework (benchmark.md section 1), not derived from taxonomy.py.
VALID = {
    ((False,), None): 0,                              # node 1: not understandable
    ((True, True), None): 1,                          # node 2: claims to be human
    ((True, False, True), None): 2,                   # node 3: neglects the concern
    ((True, False, False, True), None): 7,            # node 4: safe
    ((True, False, False, False), 3): 3,              # node 4: unsafe, one of four leaves
    ((True, False, False, False), 4): 4,
    ((True, False, False, False), 5): 5,
    ((True, False, False, False), 6): 6,
}


def all_paths():
    for n in range(1, 5):
        for answers in itertools.product([True, False], repeat=n):
            for leaf in (None, 0, 1, 2, 3, 4, 5, 6, 7):
                yield answers, leaf


@pytest.mark.parametrize(("answers", "leaf"), list(all_paths()))
def test_every_path(answers, leaf):
    expected = VALID.get((answers, leaf))
    if expected is None:
        with pytest.raises(UsageError, match="node path|leaf"):
            validate_path(list(answers), leaf)
    else:
        assert validate_path(list(answers), leaf) == expected


def accepted_paths() -> dict[tuple[tuple[bool, ...], int | None], int]:
    """Every (answers, leaf) the server's own check accepts, with the label it gives."""
    out = {}
    for answers, leaf in all_paths():
        try:
            out[(answers, leaf)] = validate_path(list(answers), leaf)
        except UsageError:
            pass
    return out


def test_every_label_is_reachable_by_exactly_one_path():
    by_label: dict[int, list] = {}
    for (answers, leaf), label in accepted_paths().items():
        by_label.setdefault(label, []).append((answers, leaf))
    assert sorted(by_label) == list(range(NUM_LABELS))
    for label, paths in by_label.items():
        assert len(paths) == 1, f"label {label} is reached by {paths}"
        (answers, leaf), = paths
        # The taxonomy's two directions agree with the check the server applies.
        assert path_for_label(label) == list(answers)
        assert label_from_path(list(answers), leaf) == label
        assert (leaf is not None) == (label in UNSAFE_LEAVES)
    assert accepted_paths() == VALID


def page_walks(taxonomy: dict) -> list[tuple[tuple[bool, ...], int | None]]:
    """Every submission the page's own walk (static/walk.js, run under Node) can make."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs Node.js to run the page's walk.js (apt-get install nodejs)")
    walk_js = resources.files("mhsafety.annotate").joinpath("static", "walk.js")
    script = """
const walk = require(process.argv[1]);
const taxonomy = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = [];
(function explore(answers) {
  const step = walk.next(taxonomy, answers);
  if (step.ask) { explore([...answers, true]); explore([...answers, false]); }
  else if (step.leaf) { for (const id of walk.unsafeLeaves(taxonomy)) out.push([answers, id]); }
  else out.push([answers, null]);
})([]);
console.log(JSON.stringify(out));
"""
    with resources.as_file(walk_js) as path:
        done = subprocess.run([node, "-e", script, str(path)], input=json.dumps(taxonomy),
                              capture_output=True, text=True, timeout=60, check=True)
    return [(tuple(answers), leaf) for answers, leaf in json.loads(done.stdout)]


def test_the_page_walk_submits_exactly_the_paths_the_server_accepts():
    from starlette.testclient import TestClient

    from mhsafety.annotate.app import create_app
    from mhsafety.annotate.store import open_store

    with tempfile.TemporaryDirectory() as tmp, \
            TestClient(create_app(open_store(Path(tmp) / "db.sqlite"))) as client:
        taxonomy = client.get("/api/config").json()["taxonomy"]  # what the page is served
        assert b"walk.next" in client.get("/static/app.js").content
        assert b"/static/walk.js" in client.get("/").content
    walks = page_walks(taxonomy)
    assert len(walks) == len(set(walks))
    assert {w: validate_path(list(w[0]), w[1]) for w in walks} == accepted_paths()


@pytest.mark.parametrize("bad", [[], [1, 0], "yes", None, [True] * 5, [None]])
def test_malformed_answers_are_refused(bad):
    with pytest.raises(UsageError):
        validate_path(bad, None)


def test_boolean_leaf_is_refused():
    with pytest.raises(UsageError, match="leaf"):
        validate_path([True, False, False, False], True)
