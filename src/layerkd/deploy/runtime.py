"""An exported model directory, and scoring it with onnxruntime.

``layerkd export`` writes a directory (default ``RUN_DIR/onnx``)::

    model.onnx          the fp32 graph: inputs input_ids, attention_mask [, token_type_ids]
                        ([batch, sequence], int64), output logits ([batch, num_labels])
    model_int8.onnx     with --quantize int8: the dynamically quantised graph
    export.json         layerkd's metadata (format, kind, task, labels, max_length, inputs,
                        tokenizer kind) and the verification report (tolerance, max |diff|,
                        metrics, sizes, versions)
    tokenizer files     a transformer's or a teacher-tokenizer student's Hugging Face tokenizer,
    or vocab.json       or a BiLSTM/CNN word vocabulary (layerkd.models.vocab)
    config.json         transformers only: the model's Hugging Face config

A path is an exported model when it is such a directory (``model.onnx`` is scored) or one of its
``.onnx`` files (e.g. ``EXPORT_DIR/model_int8.onnx``). :func:`evaluate_exported` tokenises with
the saved tokenizer/vocabulary at the export's ``max_length`` (unless another is given) and runs
the graph on onnxruntime's CPU provider with as many threads as torch uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, LayerKDError, ModelError

EXPORT_FILE = "export.json"
FORMAT = "layerkd-onnx"
FORMAT_VERSION = 1
MODEL_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
INSTALL_HINT = "pip install 'layerkd[onnx]'"


class ExportError(LayerKDError):
    """An export that cannot be made or does not verify (exit code 2; nothing is written)."""


def require(module: str, what: str):
    """Import ``module`` (``onnx``, ``onnxruntime``, ``onnxruntime.quantization``) or stop with one
    line naming the extra that provides it."""
    import importlib  # noqa: PLC0415

    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise ConfigError(f"{what} needs the onnx extra: {top} is not installed ({INSTALL_HINT})") from None


# ------------------------------------------------------------------------------------- detection
def read_meta(directory: Path) -> dict[str, Any]:
    p = Path(directory) / EXPORT_FILE
    try:
        meta = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelError(f"{p}: not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelError(f"{p}: not a layerkd export (expected \"format\": \"{FORMAT}\")")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelError(f"{p}: format_version {meta['format_version']} is newer than this layerkd reads ({FORMAT_VERSION})")
    return meta


def find_export(path: str | Path) -> tuple[Path, Path] | None:
    """``(export directory, .onnx file)`` when ``path`` is an exported model, else None."""
    p = Path(str(path))
    if p.is_file() and p.suffix == ".onnx" and (p.parent / EXPORT_FILE).is_file():
        return p.parent, p
    if p.is_dir() and (p / EXPORT_FILE).is_file() and (p / MODEL_FILE).is_file():
        return p, p / MODEL_FILE
    return None


# ------------------------------------------------------------------------------------- running
def session(onnx_file: Path):
    """An onnxruntime CPU session (threads: torch's setting, so ``OMP_NUM_THREADS`` etc. apply alike)."""
    ort = require("onnxruntime", "running an ONNX model")
    import torch  # noqa: PLC0415

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    opts.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(onnx_file), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for a corrupt/foreign file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{onnx_file}: onnxruntime cannot load it ({first})") from None


def predict(sess, data, batch_size: int = 64, role: str = "student") -> np.ndarray:
    """Logits ``[rows, num_labels]`` of an :class:`~layerkd.data.encoding.EncodedSplit`, in row
    order, from the same length-grouped batches :func:`layerkd.stages.evaluate.predict` uses."""
    from ..data.batching import ordered_batches  # noqa: PLC0415

    names = [i.name for i in sess.get_inputs()]
    out = None
    for batch in ordered_batches(data, batch_size):
        fields = batch.inputs[role]
        missing = [n for n in names if n not in fields]
        if missing:
            raise ModelError(f"the ONNX graph wants input {missing[0]!r}, which this tokenizer does not produce")
        logits = sess.run(["logits"], {n: fields[n].numpy() for n in names})[0]
        if out is None:
            out = np.zeros((len(data), logits.shape[-1]), dtype=np.float32)
        out[batch.index.numpy()] = logits
    return np.zeros((0, 0), dtype=np.float32) if out is None else out


def text_encoder(directory: Path, meta: dict[str, Any]):
    """The saved tokenizer (``hf``) or word vocabulary (``word``) as a TextEncoder; its
    fingerprint must be the one recorded at export."""
    d = Path(directory)
    if meta.get("tokenizer") == "word":
        from ..models.vocab import WordTextEncoder, WordVocab  # noqa: PLC0415

        enc = WordTextEncoder(WordVocab.load(d))
    elif meta.get("tokenizer") == "hf":
        from transformers import AutoTokenizer  # noqa: PLC0415

        from ..data.encoding import HFTextEncoder  # noqa: PLC0415

        try:
            enc = HFTextEncoder(AutoTokenizer.from_pretrained(str(d)))
        except (OSError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"cannot load the tokenizer saved in {d}: {first}") from None
    else:
        raise ModelError(f"{d / EXPORT_FILE}: tokenizer must be 'hf' or 'word', got {meta.get('tokenizer')!r}")
    if meta.get("tokenizer_fingerprint") and enc.fingerprint != meta["tokenizer_fingerprint"]:
        raise ModelError(f"{d}: the tokenizer files differ from the ones the model was exported with")
    return enc


def label_columns(meta: dict[str, Any], task, where: str) -> list[int] | None:
    """Column order that puts the graph's outputs in ``task``'s label order (None: as they are).
    Labels are matched by name, never by position when names disagree."""
    n = int(meta.get("num_labels", 0))
    if n != task.num_labels:
        raise ModelError(f"{where} has {n} outputs but task {task.name} needs {task.num_labels}")
    saved = meta.get("labels")
    if not saved or task.labels is None or tuple(saved) == tuple(task.labels):
        return None
    if sorted(saved) != sorted(task.labels):
        raise ModelError(f"{where} was exported for labels {', '.join(saved)} but task {task.name} has "
                         f"{', '.join(task.labels)}")
    return [saved.index(name) for name in task.labels]


def evaluate_exported(path: str | Path, task, *, data_dir: str | None = None, split: str = "dev",
                      file: str | None = None, columns: str | None = None, max_length: int | None = None,
                      batch_size: int = 64, output: str | None = None) -> dict[str, Any]:
    """``layerkd evaluate`` for an exported model: the task's metrics from onnxruntime's logits
    (also written to ``output`` when given, checked before any work like a PyTorch model's)."""
    from ..data.encoding import EncodedSplit  # noqa: PLC0415
    from ..data.readers import read_file, read_split  # noqa: PLC0415
    from ..metrics import compute_metrics, predictions_from_outputs  # noqa: PLC0415
    from ..stages.preflight import check_max_length  # noqa: PLC0415

    found = find_export(path)
    if found is None:
        raise ModelError(f"{path}: not an exported model (no {EXPORT_FILE} and {MODEL_FILE})")
    directory, onnx_file = found
    meta = read_meta(directory)
    length = int(meta["max_length"]) if max_length is None else max_length
    check_max_length(length, "--max-length")
    limit = meta.get("positions_limit")
    if limit and length > int(limit):
        raise ConfigError(f"--max-length {length} is beyond the exported model's {limit} positions; set it to {limit} or less")
    order = label_columns(meta, task, str(path))
    if output is not None:
        from ..outputs import check_output_file, evaluation_inputs  # noqa: PLC0415

        check_output_file(output, evaluation_inputs(file, data_dir), model_dir=directory)
    if file is not None:
        data = read_file(task, file, columns, split=Path(file).stem)
    else:
        data = read_split(task, split, data_dir=data_dir, columns=columns)
    enc = text_encoder(directory, meta)
    sess = session(onnx_file)
    logits = predict(sess, EncodedSplit(data, {"student": enc}, length), batch_size)
    if order is not None:
        logits = logits[:, order]
    metrics = compute_metrics(task.metrics, predictions_from_outputs(logits, task.is_regression), np.asarray(data.labels()))
    result = {"task": task.name, "model": str(path), "source": data.source, "rows": len(data), "max_length": length,
              **metrics, "runtime": "onnxruntime", "onnx_file": onnx_file.name}
    if output is not None:
        from .. import jsonio  # noqa: PLC0415
        from ..checkpoint import atomic_write_text  # noqa: PLC0415

        Path(output).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(output), jsonio.dumps(result, indent=2))
    return result
