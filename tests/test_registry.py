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
    "benchmark": 7, "upstream": 7, "integrations": 7, "probe": 7,
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
