"""Stage ``evaluate``: score any saved model on any labelled split or file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import jsonio
from ..checkpoint import atomic_write_text
from ..config import TrainConfig, read_yaml
from ..data.batching import ordered_batches
from ..data.encoding import EncodedSplit
from ..data.readers import read_file, read_split
from ..errors import ConfigError
from ..metrics import compute_metrics, predictions_from_outputs
from ..models.load import load_model
from ..outputs import check_output_file, evaluation_inputs
from ..progress import format_eval, track
from ..tasks import Task
from .preflight import check_max_length

log = logging.getLogger("layerkd")


@torch.no_grad()
def predict(model, data: EncodedSplit, batch_size: int = 128, label: str = "evaluate") -> np.ndarray:
    model.eval()
    outs = np.zeros((len(data), model.info.num_labels), dtype=np.float32)
    with track(label, len(data), unit="row", summary=False) as bar:  # layerkd.progress
        for batch in ordered_batches(data, batch_size):
            outs[batch.index.numpy()] = model(batch.inputs["student"]).require_logits().float().numpy()
            bar.update(advance=len(batch.index))
    return outs


def trained_max_length(model_dir: str) -> tuple[int, str]:
    """The max length ``model_dir`` was trained with: ``train.max_length`` of the layerkd run
    config saved beside the model (``config.yaml``), else the config default; and where it came from."""
    default = TrainConfig.model_fields["max_length"].default
    path = Path(model_dir) / "config.yaml"
    if not path.is_file():
        return default, "the default; the model has no config.yaml"
    try:
        train = read_yaml(path).get("train")
    except ConfigError as exc:
        log.warning("warning: %s; evaluating at max length %d (--max-length sets it)", exc, default)
        return default, "the default"
    value = train.get("max_length") if isinstance(train, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value, f"train.max_length of {path}"
    return default, f"the default; {path} has no train.max_length"


def evaluate_model(
    model_dir: str,
    task: Task,
    *,
    data_dir: str | None = None,
    split: str = "dev",
    file: str | None = None,
    columns: str | None = None,
    max_length: int | None = None,  # None: the model's training max length (trained_max_length)
    batch_size: int = 128,
    output: str | None = None,
    trust_remote_code: bool = False,
    hf_dataset: str | None = None,
    hf_config: str | None = None,
) -> dict[str, Any]:
    from ..deploy.runtime import evaluate_exported, find_export  # noqa: PLC0415

    if find_export(model_dir) is not None:  # a `layerkd export` directory or .onnx file: scored with onnxruntime
        return evaluate_exported(model_dir, task, data_dir=data_dir, split=split, file=file, columns=columns,
                                 max_length=max_length, batch_size=batch_size, output=output)
    if max_length is None:
        max_length, where = trained_max_length(model_dir)
        log.info("evaluate: max length %d (%s)", max_length, where)
    check_max_length(max_length, "--max-length")
    if output is not None:  # checked before any work: never over an input, and writable
        check_output_file(output, evaluation_inputs(file, data_dir), model_dir=model_dir)
    if file is not None:
        data = read_file(task, file, columns, split=Path(file).stem)
    else:
        data = read_split(task, split, data_dir=data_dir, columns=columns, hf_dataset=hf_dataset, hf_config=hf_config)
    model = load_model(model_dir, task, trust_remote_code=trust_remote_code)
    check_max_length(max_length, "--max-length", model=model)
    enc = EncodedSplit(data, {"student": model.text_encoder}, max_length)
    outputs = predict(model, enc, batch_size, label=f"evaluate {data.name}")
    preds = predictions_from_outputs(outputs, task.is_regression)
    metrics = compute_metrics(task.metrics, preds, np.asarray(data.labels()))
    log.info(format_eval(f"evaluate {model_dir}", data.name, len(data), metrics, main=task.main_metric))
    result = {"task": task.name, "model": str(model_dir), "source": data.source, "rows": len(data), "max_length": max_length,
              **metrics}
    if output is not None:
        out = Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, jsonio.dumps(result, indent=2))
    return result
