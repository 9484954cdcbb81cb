"""The registry: every kind by name, loading any checkpoint, and no module pointing upward."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mhsafety import registry
from mhsafety.classifiers.base import Classifier
from mhsafety.errors import DataError, UsageError

SRC = Path(registry.__file__).resolve().parent

# The floors of docs/architecture.md: a module may import only from lower floors.
FLOORS = {
    "taxonomy": 1, "metrics": 1, "errors": 1, "io": 1, "settings": 1, "progress": 1,
    "data": 2, "records": 2, "scoring": 2, "tables": 2,
    "classifiers": 3, "analysis": 3, "annotate": 3,
    "judge": 4, "guardmodels": 4,
    "registry": 5,
    "guard": 6, "report": 6, "training": 6,
    "benchmark": 7, "upstream": 7, "leaderboard": 7, "integrations": 7, "probe": 7,
    "cli": 8, "__main__": 8, "__init__": 0,
    # Test fakes sit above everything, so no product module can import them (tests and
    # benchmarks may).
    "testing": 9,
}


def _floor(module: str) -> int | None:
    head = module.split(".")[0]
    return FLOORS.get(head)


def _imports(path: Path) -> list[str]:
    """mhsafety modules imported by ``path`` (absolute or relative), at any depth."""
    rel = path.relative_to(SRC).with_suffix("")
    package = list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                if not node.module:
                    out += [".".join([*base, a.name]) for a in node.names]
                    continue
                out.append(target)
            elif node.module and node.module.startswith("mhsafety."):
                out.append(node.module.removeprefix("mhsafety."))
        elif isinstance(node, ast.Import):
            out += [a.name.removeprefix("mhsafety.") for a in node.names
                    if a.name.startswith("mhsafety.")]
    return [m for m in out if m]


def test_every_module_has_a_floor_and_imports_only_downward():
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        own = _floor(".".join(path.relative_to(SRC).with_suffix("").parts))
        assert own is not None, f"{path.relative_to(SRC)} has no floor in docs/architecture.md"
        if own == 0:
            continue  # the package's __init__ only re-exports the version
        for target in _imports(path):
            floor = _floor(target)
            if floor and floor > own:
                problems.append(f"{path.relative_to(SRC)} (floor {own}) imports {target} "
                                f"(floor {floor})")
    assert problems == []


def test_kinds_are_named_by_the_registry_only_and_point_down():
    for kind, target in registry.KINDS.items():
        module = target.partition(":")[0].removeprefix("mhsafety.")
        assert _floor(module) < FLOORS["registry"], kind
    for path in SRC.rglob("*.py"):
        if path.name != "registry.py":
            assert "mhsafety.judge.classifier:" not in path.read_text(encoding="utf-8"), path


def test_unknown_kind_and_missing_checkpoint_are_one_sentence():
    with pytest.raises(UsageError, match="unknown classifier kind 'nope'"):
        registry.create_classifier("nope")
    with pytest.raises(DataError, match="no such checkpoint folder"):
        registry.load_classifier("/nonexistent/checkpoint")


def test_load_dispatches_on_the_manifest_kind(tmp_path, test_examples):
    from mhsafety.classifiers.baseline import BaselineClassifier

    model = registry.create_classifier("baseline", seed=0, c_grid=[2.0], calibrate=False,
                                       ngram_max=2, max_iter=200)
    model.fit(test_examples[:200]).save(tmp_path / "b")
    assert isinstance(registry.load_classifier(tmp_path / "b"), BaselineClassifier)
    assert isinstance(BaselineClassifier.load(tmp_path / "b"), BaselineClassifier)
    with pytest.raises(TypeError, match="load_classifier"):
        Classifier.load(tmp_path / "b")
    from mhsafety.classifiers.encoder import EncoderClassifier

    with pytest.raises(DataError, match="expected 'encoder'"):
        registry.load_classifier(tmp_path / "b", expected=EncoderClassifier)


def test_model_spec():
    assert registry.model_spec("baseline") == "baseline"
    assert registry.model_spec("judge:m@http://x") == "judge:m@http://x"
    assert registry.model_spec("bert-base-chinese") == "encoder:bert-base-chinese"


def test_config_is_checked_against_the_kinds_settings_dataclass(monkeypatch, tmp_path):
    from dataclasses import dataclass

    from mhsafety.benchmark import run_benchmark
    from mhsafety.settings import setting
    from tests.test_benchmark import RecordingClassifier

    @dataclass(frozen=True)
    class FakeConfig:
        C: float = setting(1.0, "Inverse regularisation.")
        epochs: int = setting(3, "Epochs.")

    class Checked(RecordingClassifier):
        kind = "checked"
        config_class = FakeConfig
        extra_config = frozenset({"work_dir"})

    monkeypatch.setattr("tests.test_registry.Checked", Checked, raising=False)
    monkeypatch.setitem(registry.KINDS, "checked", "tests.test_registry:Checked")
    assert registry.checked_config("checked", {"C": "2", "work_dir": "w"}) == {
        "C": 2.0, "work_dir": "w"}
    with pytest.raises(UsageError, match="checked has no setting 'c'; expected one of C, "
                                         "epochs, work_dir"):
        registry.checked_config("checked", {"c": 2})
    with pytest.raises(UsageError, match="epochs must be an integer"):
        registry.create_classifier("checked", epochs="many")
    with pytest.raises(UsageError, match="--config for checked: checked has no setting 'Cc'"):
        run_benchmark(["checked"], tmp_path / "none.json", config={"Cc": 1})


# ---------------------------------------------------------------- no import cycle
# The floors above forbid imports running up; this forbids cycles inside a floor too (two
# modules of one package importing each other), at module level and counting the imports
# made inside functions, which only postpone a cycle to the first call.


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, dict[str, set[str]]]:
    """module -> {"module": modules imported at import time, "function": inside functions}
    for every module under ``root`` (a package folder), from its syntax tree. Imports under
    ``if TYPE_CHECKING:`` are left out (never run)."""
    modules = {_module_name(p, root): p for p in root.rglob("*.py")}
    top = root.name

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    def imports(me: str, path: Path) -> dict[str, set[str]]:
        package = me.split(".") if path.name == "__init__.py" and me else me.split(".")[:-1]
        found: dict[str, set[str]] = {"module": set(), "function": set()}

        def targets(node: ast.AST) -> list[str]:
            if isinstance(node, ast.Import):
                return [a.name.removeprefix(top).lstrip(".") for a in node.names
                        if a.name.split(".")[0] == top]
            if not isinstance(node, ast.ImportFrom):
                return []
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.split(".")[0] == top:
                mod = node.module.removeprefix(top).lstrip(".")
            else:
                return []
            # "from . import x" names a module x, "from .x import y" a name y of module x.
            return [f"{mod}.{a.name}".lstrip(".") if f"{mod}.{a.name}".lstrip(".") in modules
                    else mod for a in node.names]

        def visit(node: ast.AST, in_function: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                    continue
                inner = in_function or isinstance(child, (ast.FunctionDef,
                                                          ast.AsyncFunctionDef, ast.Lambda))
                for target in targets(child):
                    resolved = known(target)
                    if resolved is not None and resolved != me:
                        found["function" if inner else "module"].add(resolved)
                visit(child, inner)

        visit(ast.parse(path.read_text(encoding="utf-8")), False)
        return found

    return {me: imports(me, path) for me, path in modules.items()}


def import_cycles(graph: dict[str, dict[str, set[str]]], kinds: tuple[str, ...]) -> list[list[str]]:
    """The groups of modules that import each other (strongly connected components of more
    than one module, or a module importing itself), over the edges of ``kinds``."""
    edges = {m: set().union(*(graph[m][k] for k in kinds)) for m in graph}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def strong(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in edges[v]:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def test_no_import_cycle_at_import_time_nor_through_function_imports():
    graph = import_graph(SRC)
    assert "classifiers.encoder_onnx" in graph["classifiers.encoder"]["function"]
    assert import_cycles(graph, ("module",)) == []
    assert import_cycles(graph, ("module", "function")) == []


def test_the_cycle_check_finds_a_cycle_through_a_function_import(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .a import f\n")
    (pkg / "sub" / "a.py").write_text("from ..b import g\n\ndef f():\n    return g\n")
    (pkg / "b.py").write_text("def g():\n    from .sub.a import f\n    return f\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from . import b\n")
    graph = import_graph(pkg)
    assert graph["sub.a"]["module"] == {"b"} and graph["b"]["function"] == {"sub.a"}
    assert graph["c"] == {"module": set(), "function": set()}
    assert import_cycles(graph, ("module",)) == []
    assert import_cycles(graph, ("module", "function")) == [["b", "sub.a"]]


# Inside the guard (floor 6), rooms in the same spirit (docs/architecture.md, guard line):
# a guard module imports only guard modules of its own room or lower ones. A new tier is a
# module of guard/tiers/ (room 2): it may use results, items, policy and rules, never the
# guard that lists it, its config or the service.
GUARD_ROOMS = {
    "guard.results": 1, "guard.items": 1, "guard.policy": 1, "guard.rules": 1,
    # the gateway's pure pieces: seeker rules, fallback texts, streaming, SSE, webhooks
    "guard.seeker_rules": 1, "guard.fallbacks": 1, "guard.streaming": 1, "guard.sse": 1,
    "guard.webhook": 1,
    "guard.tiers": 2,
    "guard.config": 3,
    "guard.core": 4,
    "guard.calibrate": 5, "guard.dialogues": 5,
    # the gateway: the chat route over the pure pieces; the service mounts it
    "guard.gateway": 5,
    "guard.service": 6,
}


def _guard_room(module: str) -> int | None:
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        room = GUARD_ROOMS.get(".".join(parts[:n]))
        if room is not None:
            return room
    return None


def test_guard_modules_import_only_their_own_room_or_lower():
    problems, unplaced = [], []
    for path in sorted((SRC / "guard").rglob("*.py")):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts)
        if module == "guard.__init__":
            continue  # re-exports
        own = _guard_room(module)
        if own is None:
            unplaced.append(module)
            continue
        for target in _imports(path):
            room = _guard_room(target)
            if room and room > own:
                problems.append(f"{module} (room {own}) imports {target} (room {room})")
    assert problems == []
    # The rooms this test knows cover the guard's core modules (others are unchecked).
    assert not [m for m in unplaced if m.split(".")[1] in ("tiers", "service", "core")]


# Inside the probe (floor 7): the pure pieces (cards, rubric, rates, records, summary,
# endpoints, graders) never reach for the run that drives them.
PROBE_ROOMS = {
    "probe.personas": 1, "probe.crisis": 1, "probe.correct": 1, "probe.coverage": 1,
    "probe.records": 1, "probe.summary": 1, "probe.targets": 1, "probe.grade": 1,
    "probe.single": 2, "probe.simulate": 2, "probe.runner": 2, "probe.report": 2,
}


def test_probe_modules_import_only_their_own_room_or_lower():
    problems, unplaced = [], []
    for path in sorted((SRC / "probe").rglob("*.py")):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts)
        if module == "probe.__init__":
            continue  # re-exports
        own = PROBE_ROOMS.get(module)
        if own is None:
            unplaced.append(module)
            continue
        for target in _imports(path):
            room = PROBE_ROOMS.get(target)
            if room and room > own:
                problems.append(f"{module} (room {own}) imports {target} (room {room})")
    assert problems == [] and unplaced == []
