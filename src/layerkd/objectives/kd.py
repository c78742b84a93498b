"""``kd``: Hinton et al. (2015) logit distillation.

Classification: ``T² · KL(softmax(zT/T) ‖ softmax(zS/T))`` summed over classes and averaged over
the batch (``batchmean``) — the T² factor is included (TextBrewer omits it; we do not).
Regression: ``MSE(zS, zT)`` averaged over the batch (the temperature does not apply).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from ..data.batching import Batch
from ..models.trace import Trace
from .base import Needs, Objective, Options
from .functional import kd_loss
from .registry import register


class KDOptions(Options):
    temperature: float = Field(2.0, gt=0, description="softmax temperature T")


def logit_distill(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float, regression: bool) -> torch.Tensor:
    """KD for classification, MSE of outputs for regression (shared by kd, dih, universal)."""
    if regression:
        return F.mse_loss(student_logits.float(), teacher_logits.float())
    return kd_loss(student_logits, teacher_logits, temperature)


@register
class HintonKD(Objective):
    name = "kd"
    summary = "final logits: T²·KL(teacher ‖ student) with temperature (MSE for regression)"
    Options = KDOptions

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        ctx.require_teacher("kd")

    @property
    def needs(self) -> Needs:
        return Needs(student=frozenset({"logits"}), teacher=frozenset({"logits"}))

    def forward(self, student: Trace, teacher: Trace | None, batch: Batch) -> torch.Tensor:
        return logit_distill(student.require_logits(), teacher.require_logits(), self.options.temperature, self.ctx.regression)
