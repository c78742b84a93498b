"""Dynamic int8 quantisation of an exported graph (``layerkd export --quantize int8``).

What it does: onnxruntime's ``quantize_dynamic`` stores the weights of the quantisable operators
(MatMul/Gemm, Attention, LSTM, Conv, Gather — the embedding tables — and the like) as signed
8-bit integers with one scale per tensor, and quantises activations to unsigned 8 bits *at run
time*, per batch, from their observed range. No calibration data is needed and nothing is
retrained; LayerNorm, softmax, GELU and the additions stay in fp32. It shrinks the file (the
weights dominate it) and usually speeds up CPU inference, at some cost in accuracy: the export
reports the int8 model's metric change against the fp32 graph on the same rows, which is the
number to look at before shipping it (no tolerance is enforced on it).

Before quantising, the graph goes through onnxruntime's ``quant_pre_process`` (symbolic shape
inference and graph optimisation), as onnxruntime recommends. Symbolic shape inference does not
complete on every graph (Hugging Face encoders traced with dynamic axes often stop it); then the
optimisation runs alone, and where that fails too the raw graph is quantised. ``export.json``
records which (``quantization.pre_processed``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .runtime import ExportError, require


@contextmanager
def _quiet():
    """onnxruntime's quantiser logs warnings on the root logger for every tensor it skips."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


@contextmanager
def _working_dir(path: str):
    """onnxruntime's pre-processing writes scratch files (``sym_shape_infer_temp.onnx``, external
    ``<uuid>.data`` tensors) into the *current* directory: keep them in our temporary one."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def quantize_int8(src: Path, dst: Path) -> dict[str, object]:
    """Write the dynamically int8-quantised ``src`` to ``dst``; returns how it was done."""
    q = require("onnxruntime.quantization", "--quantize int8")
    src, dst = Path(src).resolve(), Path(dst).resolve()
    pre_processed: str | bool = False
    with _quiet(), tempfile.TemporaryDirectory(prefix="layerkd-quant-", dir=dst.parent) as tmp, _working_dir(tmp):
        pre = Path(tmp) / "pre.onnx"
        from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415

        for skip_symbolic, how in ((False, "symbolic shape inference + optimisation"), (True, "optimisation")):
            try:
                quant_pre_process(str(src), str(pre), skip_symbolic_shape=skip_symbolic)
                pre_processed = how
                break
            except Exception:  # noqa: BLE001, S112 - optional steps; the raw graph quantises too
                continue
        try:
            q.quantize_dynamic(str(pre if pre_processed else src), str(dst), weight_type=q.QuantType.QInt8,
                               per_channel=False, reduce_range=False)
        except Exception as exc:  # onnxruntime's own errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"int8 quantisation of {src.name} failed: {first[:300]}") from None
    return {"method": "onnxruntime.quantization.quantize_dynamic", "weight_type": "QInt8", "activations": "QUInt8 (dynamic)",
            "per_channel": False, "reduce_range": False, "pre_processed": pre_processed}
