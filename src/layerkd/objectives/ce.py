"""``ce``: the task loss on gold labels (cross-entropy; MSE for regression).

Reduction: mean over the batch. For regression the single output is compared with the float
target (``F.mse_loss``, mean over the batch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from ..data.batching import Batch
from ..models.trace import Trace
from .base import Needs, Objective, Options
from .registry import register


class CEOptions(Options):
    label_smoothing: float = Field(0.0, ge=0, lt=1)


@register
class CrossEntropy(Objective):
    name = "ce"
    summary = "gold labels: cross-entropy (MSE for regression)"
    Options = CEOptions

    @property
    def needs(self) -> Needs:
        return Needs(student=frozenset({"logits", "labels"}))

    def forward(self, student: Trace, teacher: Trace | None, batch: Batch) -> torch.Tensor:
        logits = student.require_logits().float()
        if batch.labels is None:
            raise RuntimeError("ce needs gold labels in the batch")
        if self.ctx.regression:
            return F.mse_loss(logits.view(-1), batch.labels.float().view(-1))
        return F.cross_entropy(logits, batch.labels, label_smoothing=self.options.label_smoothing)
