"""An encoder checkpoint's ONNX model: the export's graph steps and ONNX Runtime scoring.

:func:`mhsafety.classifiers.encoder_export.export_onnx` adds ``model.onnx`` (and with ``quantize="int8"`` also ``model.int8.onnx``) to
an encoder checkpoint folder and records the one to use under ``extra.onnx`` in its manifest.
The export goes through ``torch.onnx`` (the TorchScript exporter, with the graph exporter as a
fallback): the graph is the project's own model, backbone and head in one, so nothing needs
Optimum's per-architecture export recipes, which know only stock Hugging Face heads, and no
further dependency beyond ``onnx`` / ``onnxruntime`` is needed. int8 is ONNX Runtime's dynamic
quantization (weights stored as int8, activations quantized per batch at run time), which
needs no calibration data.

:class:`OnnxScorer` runs the model with ONNX Runtime; the encoder classifier uses it when the
checkpoint has an ONNX model and its runtime setting is ``onnx`` (or ``auto`` on CPU).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, missing_extra

MANIFEST_KEY = "onnx"
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
QUANTIZE = ("int8",)
OPSET = 18
# Two items, the second padded: tracing with an all-ones mask would let the library skip
# building the attention mask and bake that branch into the graph.
_DUMMY_LENGTHS = (16, 10)


def onnx_info(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest's record of the checkpoint's ONNX model, or None."""
    info = (manifest.get("extra") or {}).get(MANIFEST_KEY)
    return dict(info) if isinstance(info, dict) and info.get("file") else None


def _require_onnx() -> None:
    for package in ("onnx", "onnxruntime"):
        try:
            __import__(package)
        except ModuleNotFoundError:
            raise missing_extra(package, "onnx") from None


class _Graph:
    """The classifier's forward pass with positional tensors, as the exporter wants it."""

    def __new__(cls, model: Any, names: list[str]) -> Any:
        import torch

        class Graph(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
                return self.model(**dict(zip(names, tensors)))

        return Graph()


def _export_graph(model: Any, names: list[str], vocab_size: int, path: Path) -> str:
    import torch

    graph = _Graph(model, names).eval()
    width = max(_DUMMY_LENGTHS)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, max(vocab_size, 6), (len(_DUMMY_LENGTHS), width), generator=gen)
    mask = torch.zeros_like(ids)
    for row, length in enumerate(_DUMMY_LENGTHS):
        mask[row, :length] = 1
    values = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    dummy = tuple(values[n] for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(graph, dummy, str(path), input_names=names,
                              output_names=["logits"], dynamic_axes=axes,
                              opset_version=OPSET, dynamo=False)
            return "torch.onnx (TorchScript)"
        except Exception:  # noqa: BLE001 - a torch without the TorchScript exporter
            torch.onnx.export(graph, dummy, str(path), input_names=names,
                              output_names=["logits"], dynamic_axes=axes,
                              opset_version=OPSET, dynamo=True)
            return "torch.onnx (dynamo)"


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _fuse(path: Path, config: Any) -> dict[str, int]:
    """Fuse the graph's transformer patterns in place (LayerNorm with residual, bias with
    GELU, ...; ONNX Runtime's transformer optimizer), so the runtime, and the int8 copy made
    from it, run fewer, larger kernels. Returns the fused operator counts."""
    from onnxruntime.transformers.optimizer import optimize_model

    heads = int(getattr(config, "num_attention_heads", 0) or 0)
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    with _quiet_root_logger():
        optimized = optimize_model(str(path), model_type="bert", num_heads=heads,
                                   hidden_size=hidden)
        counts = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
        optimized.save_model_to_file(str(path))
    return counts


class OnnxScorer:
    """Logits from a checkpoint's ONNX model with ONNX Runtime (CPU)."""

    def __init__(self, folder: Path, info: dict[str, Any]) -> None:
        try:
            import onnxruntime as ort
        except ModuleNotFoundError:
            raise missing_extra("onnxruntime", "onnx") from None
        path = folder / str(info["file"])
        if not path.exists():
            raise DataError(f"{path}: the checkpoint's manifest names this ONNX model but the "
                            "file is missing; rerun mhsafety export")
        options = ort.SessionOptions()
        # Logs only errors: the optimizer's notes about unused initializers are noise.
        options.log_severity_level = 3
        # Idle threads sleep instead of spinning: on a CPU shared with other work (a web
        # server's event loop, other processes) spinning threads steal the cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.precision = str(info.get("precision", "fp32"))

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        feed = {name: np.asarray(batch[name], dtype=np.int64) for name in self.inputs}
        return self.session.run(None, feed)[0]
