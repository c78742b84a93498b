"""Scoring a split: run a model's outputs over every example exactly once — sharded across
processes when several run, gathered as ``(index, output)`` pairs and put back in dataset order —
and compute the task's metrics. Used by the training loop for dev and extra evaluation sets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from . import faults
from .data.batching import Batch, ordered_batches
from .data.encoding import EncodedSplit
from .metrics import compute_metrics, predictions_from_outputs
from .progress import track
from .tasks import Task


@dataclass
class EvalResult:
    metrics: dict[str, float]  # the task's metrics, plus "_main" = the main metric
    outputs: np.ndarray  # [N, C] in dataset order
    predictions: np.ndarray  # [N] class ids or regression values

    @property
    def main(self) -> float:
        return self.metrics["_main"]


@torch.no_grad()
def score_split(data: EncodedSplit, outputs_fn: Callable[[Batch], torch.Tensor], model: nn.Module, *, task: Task,
                accelerator: Any, batch_size: int, metric_prefix: str = "", progress: bool = False,
                label: str = "eval") -> EvalResult:
    """Run ``outputs_fn(batch) -> [B, C]`` over ``data`` with ``model`` in eval mode (restored
    afterwards), each process taking every ``world``-th batch, and score the gathered outputs.

    Raises ``RuntimeError`` if the gathered rows are not exactly the split's rows once each.
    ``metric_prefix`` is prepended to every metric name except ``_main``; ``progress``: show the
    pass as ``label`` (:mod:`layerkd.progress`, main process only)."""
    was_training = model.training
    model.eval()
    world, rank = accelerator.num_processes, accelerator.process_index
    idx_parts, out_parts = [], []
    with track(label, len(data), unit="row", enabled=progress and accelerator.is_main_process, summary=False) as bar:
        for batch in ordered_batches(data, batch_size, accelerator.device, rank=rank, world=world):
            with accelerator.autocast():
                out = outputs_fn(batch)
            idx_parts.append(batch.index.cpu().numpy())
            out_parts.append(out.float().cpu().numpy())
            if len(idx_parts) == 1:
                faults.point("eval")  # mid-evaluation: after the first batch
            bar.update(advance=len(idx_parts[-1]) * world)
    local = (np.concatenate(idx_parts) if idx_parts else np.zeros(0, np.int64),
             np.concatenate(out_parts) if out_parts else np.zeros((0, 0), np.float32))
    if world > 1:
        from accelerate.utils import gather_object  # noqa: PLC0415

        parts = [p for p in gather_object([local]) if len(p[0])]
        index = np.concatenate([p[0] for p in parts])
        outputs = np.concatenate([p[1] for p in parts])
    else:
        index, outputs = local
    order = np.argsort(index, kind="stable")
    index, outputs = index[order], outputs[order]
    if len(index) != len(data) or not np.array_equal(index, np.arange(len(data))):
        raise RuntimeError(f"evaluation covered {len(index)} rows of {len(data)} (duplicates or gaps)")
    preds = predictions_from_outputs(outputs, task.is_regression)
    metrics = compute_metrics(task.metrics, preds, data.labels.numpy())
    metrics["_main"] = metrics[task.main_metric]
    if metric_prefix:
        metrics = {f"{metric_prefix}{k}" if k != "_main" else k: v for k, v in metrics.items()}
    if was_training:
        model.train()
    return EvalResult(metrics, outputs, preds)
