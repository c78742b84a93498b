"""Stage ``evaluate``: score any saved model on any labelled split or file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import atomic_write_text
from ..data.batching import ordered_batches
from ..data.encoding import EncodedSplit
from ..data.readers import read_file, read_split
from ..metrics import compute_metrics, predictions_from_outputs
from ..models.load import load_model
from ..tasks import Task


@torch.no_grad()
def predict(model, data: EncodedSplit, batch_size: int = 128) -> np.ndarray:
    model.eval()
    outs = np.zeros((len(data), model.info.num_labels), dtype=np.float32)
    for batch in ordered_batches(data, batch_size):
        outs[batch.index.numpy()] = model(batch.inputs["student"]).require_logits().float().numpy()
    return outs


def evaluate_model(
    model_dir: str,
    task: Task,
    *,
    data_dir: str | None = None,
    split: str = "dev",
    file: str | None = None,
    columns: str | None = None,
    max_length: int = 128,
    batch_size: int = 128,
    output: str | None = None,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    if file is not None:
        data = read_file(task, file, columns, split=Path(file).stem)
    else:
        data = read_split(task, split, data_dir=data_dir, columns=columns)
    model = load_model(model_dir, task, trust_remote_code=trust_remote_code)
    enc = EncodedSplit(data, {"student": model.text_encoder}, max_length)
    outputs = predict(model, enc, batch_size)
    preds = predictions_from_outputs(outputs, task.is_regression)
    metrics = compute_metrics(task.metrics, preds, np.asarray(data.labels()))
    result = {"task": task.name, "model": str(model_dir), "source": data.source, "rows": len(data), **metrics}
    if output is not None:
        out = Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(result, indent=2))
    return result
