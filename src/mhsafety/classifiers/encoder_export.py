"""``export_onnx``: add an ONNX model to an encoder checkpoint folder.

Kept apart from :mod:`.encoder_onnx` (the graph steps and the runtime scorer, which the
encoder classifier imports) because it loads an :class:`~.encoder.EncoderClassifier`: the
classifier needs the runtime, the export needs the classifier, and neither module imports the
other's importer.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError
from ..io import sha256_file, write_json
from .base import read_manifest
from .encoder import EncoderClassifier
from .encoder_onnx import (
    FP32_FILE,
    INT8_FILE,
    MANIFEST_KEY,
    OPSET,
    QUANTIZE,
    _export_graph,
    _fuse,
    _quiet_root_logger,
    _require_onnx,
)

__all__ = ["FP32_FILE", "INT8_FILE", "export_onnx"]


def export_onnx(checkpoint: str | os.PathLike[str], quantize: str | None = None) -> Path:
    """Add an ONNX model to an encoder checkpoint; returns the file the runtime will use.

    The fp32 model is always written; ``quantize="int8"`` also writes its dynamically
    quantized copy and makes it the one used. Files appear atomically (written under a
    temporary name, then renamed) and the manifest is rewritten last, so an interrupted
    export leaves the checkpoint as it was.
    """
    if quantize is not None and quantize not in QUANTIZE:
        raise UsageError(f"unknown quantization {quantize!r}; expected one of "
                         f"{', '.join(QUANTIZE)}")
    _require_onnx()
    folder = Path(checkpoint)
    manifest = read_manifest(folder)
    if manifest["kind"] != "encoder":
        raise UsageError(f"{folder}: is a {manifest['kind']!r} checkpoint; only encoder "
                         "checkpoints export to ONNX")
    clf = EncoderClassifier.load_from(folder, manifest)
    model = clf.torch_model()
    names = clf.input_names()
    tmp = folder / f".{FP32_FILE}.tmp"
    try:
        exporter = _export_graph(model, names, len(clf.tokenizer), tmp)
        fused = _fuse(tmp, model.backbone.config)
        used = folder / FP32_FILE
        if quantize == "int8":
            from onnx import TensorProto
            from onnxruntime.quantization import QuantType, quantize_dynamic

            tmp8 = folder / f".{INT8_FILE}.tmp"
            try:
                with _quiet_root_logger():  # its advice to pre-process is not for us
                    # Fused nodes (com.microsoft ops) defeat the quantizer's type inference;
                    # every tensor of this graph is float, so say so.
                    quantize_dynamic(str(tmp), str(tmp8), weight_type=QuantType.QInt8,
                                     extra_options={"DefaultTensorType": TensorProto.FLOAT})
                tmp8.replace(folder / INT8_FILE)
            finally:
                tmp8.unlink(missing_ok=True)
            used = folder / INT8_FILE
        tmp.replace(folder / FP32_FILE)
    finally:
        tmp.unlink(missing_ok=True)
    import onnxruntime

    extra = dict(manifest.get("extra") or {})
    extra[MANIFEST_KEY] = {
        "file": used.name, "precision": quantize or "fp32", "inputs": names,
        "opset": OPSET, "exporter": exporter, "fused": fused, "onnxruntime": onnxruntime.__version__,
        "sha256": sha256_file(used),
    }
    manifest["extra"] = extra
    write_json(folder / "manifest.json", manifest)
    return used
