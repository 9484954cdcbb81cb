"""ONNX export of an encoder checkpoint: agreement with PyTorch, runtime choice, the CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from mhsafety.classifiers import read_manifest
from mhsafety.classifiers.encoder_export import FP32_FILE, INT8_FILE, export_onnx
from mhsafety.errors import UsageError
from mhsafety.registry import create_classifier, load_classifier
from tests.helpers.tiny_bert import build_tiny_bert

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, test_examples) -> Path:
    """A tiny BERT fitted hard to 96 items, saved. A few steps over more items leave it
    predicting one label everywhere, under which label agreement would prove nothing."""
    root = tmp_path_factory.mktemp("onnx")
    tiny = build_tiny_bert(root / "tiny", [ex.context + ex.response for ex in test_examples])
    model = create_classifier(f"encoder:{tiny}", seed=3, max_length=64, batch_size=8,
                              epochs=12, learning_rate=2e-3, warmup_ratio=0.0, dev_ratio=0,
                              class_weights=[1.0] * 8, eval_batch_size=32)
    model.fit(list(test_examples[:96]))
    return model.save(root / "ckpt")


@pytest.fixture(scope="module")
def items(test_examples):
    return list(test_examples[400:800])


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_fp32_onnx_matches_pytorch_within_1e4(checkpoint, items, tmp_path):
    folder = _copy(checkpoint, tmp_path / "fp32")
    torch_probs = load_classifier(folder).predict_proba(items)
    used = export_onnx(folder)
    assert used.name == FP32_FILE and not (folder / INT8_FILE).exists()
    info = read_manifest(folder)["extra"]["onnx"]
    assert info["file"] == FP32_FILE and info["precision"] == "fp32" and info["sha256"]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temp leftovers

    onnx_model = load_classifier(folder)
    assert onnx_model.runtime() == "onnx"  # auto on CPU picks the ONNX model
    onnx_probs = onnx_model.predict_proba(items)
    assert onnx_model._model is None  # PyTorch weights never loaded
    assert np.abs(onnx_probs - torch_probs).max() < 1e-4
    np.testing.assert_allclose(onnx_probs.sum(axis=1), 1.0, atol=1e-6)
    # Batch size and order change nothing.
    onnx_model = onnx_model.with_settings(eval_batch_size=1)
    assert np.abs(onnx_model.predict_proba(items[:20][::-1])[::-1] - torch_probs[:20]).max() < 1e-4


def test_int8_onnx_labels_agree_with_pytorch(checkpoint, items, tmp_path):
    folder = _copy(checkpoint, tmp_path / "int8")
    reference = load_classifier(folder).predict_proba(items)
    labels = reference.argmax(axis=1)
    assert np.bincount(labels).max() < 0.9 * len(items)  # not one label nearly everywhere
    used = export_onnx(folder, quantize="int8")
    assert used.name == INT8_FILE and (folder / FP32_FILE).exists()
    assert used.stat().st_size < (folder / FP32_FILE).stat().st_size
    model = load_classifier(folder)
    probs = model.predict_proba(items)
    assert np.abs(probs - reference).max() > 1e-6  # the weights really are quantized
    agreement = float((probs.argmax(axis=1) == labels).mean())
    print(f"int8 ONNX vs PyTorch fp32: labels agree on {100 * agreement:.2f} % of "
          f"{len(items)} items; max |dP| {np.abs(probs - reference).max():.4f}")
    assert agreement >= 0.99


def test_runtime_setting_and_fallback(checkpoint, items, tmp_path, caplog):
    plain = load_classifier(checkpoint)
    assert plain.runtime() == "torch"  # no ONNX model: PyTorch
    plain = plain.with_settings(runtime="onnx")
    with pytest.raises(UsageError, match="mhsafety export"):
        plain.predict_proba(items[:2])
    with pytest.raises(UsageError, match="runtime"):
        create_classifier("encoder:x", runtime="tensorrt")

    folder = _copy(checkpoint, tmp_path / "broken")
    export_onnx(folder)
    asked = load_classifier(folder)
    asked = asked.with_settings(runtime="torch")
    assert asked.runtime() == "torch"
    expected = asked.predict_proba(items[:4])
    (folder / FP32_FILE).write_bytes(b"not an onnx graph")
    fallback = load_classifier(folder)
    with caplog.at_level("WARNING"):
        np.testing.assert_allclose(fallback.predict_proba(items[:4]), expected, atol=1e-6)
    assert "predicting with PyTorch" in caplog.text
    strict = load_classifier(folder)
    strict = strict.with_settings(runtime="onnx")
    with pytest.raises(Exception):  # noqa: B017 - asked for ONNX: no silent fallback
        strict.predict_proba(items[:4])


def test_export_and_predict_commands(checkpoint, test_json, tmp_path, capsys):
    from mhsafety.cli import main

    folder = _copy(checkpoint, tmp_path / "cli")
    main(["export", "--checkpoint", str(folder), "--format", "onnx"])
    assert "model.onnx" in capsys.readouterr().err
    outs = {}
    for runtime in ("torch", "onnx"):
        out = tmp_path / f"{runtime}.jsonl"
        # The runtimes are compared, not scored: the trained items may be predicted too.
        main(["predict", "--checkpoint", str(folder), "--data", str(test_json), "--runtime",
              runtime, "--out", str(out), "--allow-overlap"])
        outs[runtime] = np.array([json.loads(line)["probs"] for line in
                                  out.read_text().splitlines()])
    assert outs["onnx"].shape == (800, 8)
    assert np.abs(outs["onnx"] - outs["torch"]).max() < 1e-4

    with pytest.raises(SystemExit) as exc:
        main(["export", "--checkpoint", str(tmp_path / "missing"), "--format", "onnx"])
    assert exc.value.code == 2
    assert "no such checkpoint folder" in capsys.readouterr().err


def test_serve_takes_the_encoder_micro_batching_unless_given(checkpoint, monkeypatch):
    from mhsafety.classifiers.encoder import EncoderClassifier
    from mhsafety.cli import main
    from mhsafety.guard import service

    seen = []
    monkeypatch.setattr(service, "serve_config",
                        lambda guard_config, config, **kw: seen.append(config))
    main(["serve", "--checkpoint", str(checkpoint), "--port", "0"])
    main(["serve", "--checkpoint", str(checkpoint), "--port", "0", "--max-model-batch", "4"])
    proposed = EncoderClassifier.serving_defaults
    assert (seen[0].max_model_batch, seen[0].batch_wait_ms) == (
        proposed["max_model_batch"], proposed["batch_wait_ms"])
    assert seen[0].max_model_batch != service.ServiceConfig().max_model_batch
    assert (seen[1].max_model_batch, seen[1].batch_wait_ms) == (4, proposed["batch_wait_ms"])


def test_guard_runtime_is_asked_for_or_refused(checkpoint, tmp_path):
    from mhsafety.guard import Guard, GuardConfig

    def build_guard(folder, runtime=None):
        return Guard.from_config(GuardConfig(checkpoint=folder, runtime=runtime))

    plain = _copy(checkpoint, tmp_path / "plain")
    with pytest.raises(UsageError, match="no ONNX model"):
        build_guard(plain, runtime="onnx")  # refused at start-up, not per request
    folder = _copy(checkpoint, tmp_path / "exported")
    export_onnx(folder)
    assert build_guard(folder).classifier.runtime() == "onnx"  # present: used by default
    forced = build_guard(folder, runtime="torch")
    assert forced.classifier.runtime() == "torch"
    result = forced.check("[seeker]最近总是失眠", "[supporter]能说说发生了什么吗？")
    onnx_result = build_guard(folder, runtime="onnx").check("[seeker]最近总是失眠",
                                                            "[supporter]能说说发生了什么吗？")
    assert abs(result.p_safe - onnx_result.p_safe) < 1e-4
