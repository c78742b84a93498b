"""``layerkd export RUN_DIR --format onnx [--quantize int8]``: export, verify, quantise, report.

Order of work, so that a failure writes nothing:

1. read the run (its ``config.yaml`` names the task, the data and ``max_length``; ``--task``,
   ``--data-dir/--split``, ``--file/--columns`` and ``--max-length`` override it), check the output
   directory (default ``RUN_DIR/onnx``; never the run directory itself or around it, never over or
   inside the data; an existing one only with ``--overwrite`` and only if layerkd made it);
2. load the model and score the verification rows with PyTorch (fp32);
3. in a temporary directory: export the graph, run it with onnxruntime on the same rows and
   compare logits — **the largest absolute difference must be at most the tolerance** (default
   :data:`DEFAULT_TOLERANCE`), else the export stops with exit code 2 and nothing is written;
   with ``--quantize int8`` quantise and score the int8 graph (reported, not enforced);
4. move the files into the output directory with ``export.json`` (metadata + this report).
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, jsonio
from ..checkpoint import atomic_write_text
from ..errors import ConfigError, DataError, ModelError
from . import DEFAULT_TOLERANCE
from .runtime import EXPORT_FILE, FORMAT, FORMAT_VERSION, INT8_FILE, MODEL_FILE, ExportError, find_export

FORMATS = ("onnx",)
QUANTIZE = ("int8",)


def _run_config(run_dir: Path):
    from ..config import read_yaml, validate_run_config  # noqa: PLC0415

    p = run_dir / "config.yaml"
    if not p.is_file():
        return None
    return validate_run_config(read_yaml(p), where=f"config {p}")


def verification_data(task, cfg, run_dir: Path, *, data_dir: str | None, split: str | None, file: str | None,
                      columns: str | None):
    """The rows the export is checked on: ``--file`` or ``--data-dir`` (split ``--split``, default
    dev) when given, else the run's evaluation split (``data.eval_split`` of its data_dir / dataset,
    or its ``dev_file``)."""
    from ..data.readers import read_file, read_split  # noqa: PLC0415

    if file is not None and data_dir is not None:
        raise ConfigError("export: give --data-dir or --file, not both")
    if file is not None:
        return read_file(task, file, columns, split=Path(file).stem)
    if data_dir is not None:
        return read_split(task, split or "dev", data_dir=data_dir, columns=columns)
    if cfg is None:
        raise ConfigError(f"export: {run_dir} has no config.yaml naming its data; give --data-dir or --file")
    d = cfg.data
    try:
        if d.data_dir is not None or d.hf_dataset is not None:
            return read_split(task, split or d.eval_split, data_dir=d.data_dir, hf_dataset=d.hf_dataset,
                              hf_config=d.hf_config, columns=d.columns)
        if d.dev_file is None:
            raise ConfigError(f"export: {run_dir}/config.yaml names no evaluation data; give --data-dir or --file")
        return read_file(task, d.dev_file, d.columns, split="dev")
    except DataError as exc:
        raise DataError(f"{exc} (the evaluation data named in {run_dir}/config.yaml; give --data-dir or --file)") from None


def _data_inputs(cfg, data_dir: str | None, file: str | None):
    from ..outputs import Input  # noqa: PLC0415

    paths = [("the data file", file), ("the data directory", data_dir)]
    if cfg is not None and file is None and data_dir is None:
        paths += [("the data directory", cfg.data.data_dir), ("the dev file", cfg.data.dev_file),
                  ("the dataset directory", cfg.data.hf_dataset)]
    return [Input(label, Path(p)) for label, p in paths if p and os.path.lexists(p)]


def check_output(out: Path, run_dir: Path, inputs, *, overwrite: bool) -> None:
    """Before any work: a new directory, or with ``overwrite`` one that layerkd made (checked again
    under the lock when the files are moved in). Never the run directory or a directory around it."""
    from ..outputs import OWN_FILES, check_location, check_writable, is_marked  # noqa: PLC0415

    real_out, real_run = Path(os.path.realpath(out)), Path(os.path.realpath(run_dir))
    if real_out == real_run or real_out in real_run.parents:
        rel = "is" if real_out == real_run else "contains"
        raise ConfigError(f"export --output {out} {rel} the run directory {run_dir}; give a new directory "
                          f"(default {run_dir / 'onnx'})")
    check_location(out, inputs, "export --output")
    check_writable(out, "export --output")
    if out.is_dir() and any(c.name not in OWN_FILES for c in out.iterdir()):
        if not is_marked(out):
            raise ConfigError(f"export --output {out} exists, is not empty and was not made by layerkd; choose another directory")
        if not overwrite:
            raise ConfigError(f"export --output {out} already holds an export; pass --overwrite to replace it")


def _size(p: Path) -> int:
    return p.stat().st_size if p.is_file() else 0


def _weights_size(run_dir: Path) -> int:
    return sum(_size(f) for pattern in ("*.safetensors", "*.bin") for f in run_dir.glob(pattern))


def versions(exporter: str) -> dict[str, str | None]:
    import onnx  # noqa: PLC0415
    import onnxruntime  # noqa: PLC0415
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415

    out = {"layerkd": __version__, "python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
    if exporter == "dynamo":
        import onnxscript  # noqa: PLC0415

        out["onnxscript"] = getattr(onnxscript, "__version__", None)
    return out


def _metrics(task, logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from ..metrics import compute_metrics, predictions_from_outputs  # noqa: PLC0415

    return compute_metrics(task.metrics, predictions_from_outputs(logits, task.is_regression), labels)


def _agreement(a: np.ndarray, b: np.ndarray, regression: bool) -> float | None:
    return None if regression or not len(a) else float((a.argmax(-1) == b.argmax(-1)).mean())


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| (inf when either holds a non-finite value where the other does not)."""
    if a.shape != b.shape:
        return float("inf")
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(np.nanmax(np.where(np.isnan(d), np.inf, d))) if d.size else 0.0


def _int8(tmp: Path, enc, fp32_logits: np.ndarray, task, labels: np.ndarray, batch_size: int,
          metrics: dict[str, Any]) -> dict[str, Any]:
    """Quantise ``tmp/model.onnx`` to ``tmp/model_int8.onnx``, score it (into ``metrics["onnx_int8"]``)
    and report it against the fp32 graph (no tolerance: :mod:`layerkd.deploy.quantize`)."""
    from .quantize import quantize_int8  # noqa: PLC0415
    from .runtime import predict, session  # noqa: PLC0415

    how = quantize_int8(tmp / MODEL_FILE, tmp / INT8_FILE)
    q = predict(session(tmp / INT8_FILE), enc, batch_size)
    metrics["onnx_int8"] = _metrics(task, q, labels)
    return {
        "max_abs_diff_vs_fp32": max_abs_diff(q, fp32_logits),
        "argmax_agreement_vs_fp32": _agreement(q, fp32_logits, task.is_regression),
        "metric_change": {k: metrics["onnx_int8"][k] - metrics["onnx"][k] for k in metrics["onnx"]},
        "quantization": how,
    }


def _save_tokenizer(model, tmp: Path) -> str:
    from ..models.vocab import WordTextEncoder  # noqa: PLC0415

    enc = model.text_encoder
    if isinstance(enc, WordTextEncoder):
        enc.vocab.save(tmp)
        return "word"
    enc.tokenizer.save_pretrained(str(tmp))
    if getattr(model, "kind", "") == "transformer":
        model.config.save_pretrained(str(tmp))
    return "hf"


def export_run(run_dir: str | Path, *, fmt: str = "onnx", quantize: str | None = None, output: str | Path | None = None,
               task: str | None = None, data_dir: str | None = None, split: str | None = None, file: str | None = None,
               columns: str | None = None, max_length: int | None = None, tolerance: float = DEFAULT_TOLERANCE,
               batch_size: int = 64, exporter: str = "torchscript", opset: int | None = None, overwrite: bool = False,
               trust_remote_code: bool = False) -> dict[str, Any]:
    """Export ``run_dir``'s model (see the module docstring); returns the contents of ``export.json``."""
    from ..data.encoding import EncodedSplit  # noqa: PLC0415
    from ..models.load import load_model  # noqa: PLC0415
    from ..outputs import run_directory  # noqa: PLC0415
    from ..stages.evaluate import predict as torch_predict  # noqa: PLC0415
    from ..stages.preflight import check_max_length, positions_limit  # noqa: PLC0415
    from ..tasks import get_task, task_from_config  # noqa: PLC0415
    from .onnx_graph import DEFAULT_OPSET, EXPORTERS, export_onnx, sample_inputs  # noqa: PLC0415
    from .runtime import predict, require, session  # noqa: PLC0415

    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZE:
        raise ConfigError(f"--quantize {quantize!r}: expected one of {', '.join(QUANTIZE)}")
    if exporter not in EXPORTERS:
        raise ConfigError(f"--exporter {exporter!r}: expected one of {', '.join(EXPORTERS)}")
    if not (tolerance >= 0 and np.isfinite(tolerance)):
        raise ConfigError(f"--tolerance {tolerance}: expected a finite number ≥ 0")
    require("onnx", "layerkd export")
    require("onnxruntime", "layerkd export")
    run = Path(str(run_dir))
    if not run.is_dir():
        raise ModelError(f"{run}: not a run or model directory")
    if find_export(run) is not None:
        raise ModelError(f"{run} is already an exported model; export the run directory it came from")
    cfg = _run_config(run)
    if task is not None:
        t = get_task(task)
    elif cfg is not None:
        t = task_from_config(cfg.task)
    else:
        raise ConfigError(f"export: {run} has no config.yaml naming its task; give --task")
    length = max_length if max_length is not None else (cfg.train.max_length if cfg is not None else 128)
    check_max_length(length, "--max-length")
    out = Path(output) if output is not None else run / "onnx"
    inputs = _data_inputs(cfg, data_dir, file)
    check_output(out, run, inputs, overwrite=overwrite)
    data = verification_data(t, cfg, run, data_dir=data_dir, split=split, file=file, columns=columns)
    if not len(data):
        raise DataError(f"export: the verification data {data.source} has no rows")

    model = load_model(run, t, trust_remote_code=trust_remote_code)
    check_max_length(length, "--max-length", model=model)
    model.float().eval()
    enc = EncodedSplit(data, {"student": model.text_encoder}, length)
    labels = np.asarray(data.labels())
    ref = torch_predict(model, enc, batch_size)
    opset = opset or DEFAULT_OPSET

    anchor = out.parent  # beside the output (same file system: the files are renamed in), never inside it
    while not anchor.exists():
        anchor = anchor.parent
    tmp = Path(tempfile.mkdtemp(prefix=".layerkd-export-", dir=anchor))
    try:
        export_onnx(model, sample_inputs(enc), tmp / MODEL_FILE, exporter=exporter, opset=opset)
        sess = session(tmp / MODEL_FILE)
        got = predict(sess, enc, batch_size)
        diff = max_abs_diff(got, ref)
        if not diff <= tolerance:
            raise ExportError(f"export of {run}: the ONNX logits differ from PyTorch's by up to {diff:.3g} on {len(data)} rows "
                              f"of {data.source}, beyond the tolerance {tolerance:g} (--tolerance); nothing was written")
        graph_inputs = [i.name for i in sess.get_inputs()]
        tokenizer = _save_tokenizer(model, tmp)
        metrics = {"pytorch": _metrics(t, ref, labels), "onnx": _metrics(t, got, labels)}
        verification: dict[str, Any] = {
            "data": data.source, "rows": len(data), "batch_size": batch_size, "tolerance": {"max_abs_logit_diff": tolerance},
            "max_abs_diff": diff, "passed": True, "argmax_agreement": _agreement(got, ref, t.is_regression),
            "main_metric": t.main_metric, "metrics": metrics,
        }
        files = {"fp32": MODEL_FILE}
        if quantize == "int8":
            verification["int8"] = _int8(tmp, enc, got, t, labels, batch_size, metrics)
            files["int8"] = INT8_FILE
        sizes = {"pytorch_weights": _weights_size(run), **{name: _size(tmp / name) for name in files.values()}}
        meta = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "source": str(run), "kind": model.info.kind,
            "name": model.info.name, "task": t.name, "labels": None if t.labels is None else list(t.labels),
            "num_labels": t.num_labels, "regression": t.is_regression, "max_length": length,
            "positions_limit": positions_limit(model), "pooling": getattr(model, "pooling", None),
            "tokenizer": tokenizer, "tokenizer_fingerprint": model.text_encoder.fingerprint,
            "inputs": graph_inputs, "outputs": ["logits"], "files": files, "exporter": exporter, "opset": opset,
            "verification": verification, "sizes": sizes, "versions": versions(exporter),
        }
        atomic_write_text(tmp / EXPORT_FILE, jsonio.dumps(meta, indent=2))
        with run_directory(out, overwrite=overwrite, inputs=inputs, what="export --output") as final:
            for child in sorted(tmp.iterdir()):
                shutil.move(str(child), str(final / child.name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    meta["output"] = str(out)
    return meta
