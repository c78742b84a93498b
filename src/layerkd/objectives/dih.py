"""``dih``: Distilling via Intermediate Heads (Asadian & Salehi-Abari, 2021).

The student's *final* logits are distilled from every teacher pseudo classifier (fitted with the
teacher frozen) and, with ``include_final``, from the teacher's own classifier:
``Σ_j T²·KL(softmax(zT_j/T) ‖ softmax(zS/T))`` (``reduce: mean`` averages instead of summing).
DIH's code adds a CE term per head; here the gold-label term is the recipe's ``ce`` objective.
Regression: MSE to each head's output.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from ..errors import PairError
from .base import Needs, Objective, Options
from .kd import logit_distill
from .registry import register


class DIHOptions(Options):
    temperature: float = Field(4.0, gt=0)
    include_final: bool = True
    reduce: Literal["sum", "mean"] = "sum"


@register
class DistillIntermediateHeads(Objective):
    name = "dih"
    summary = "student logits distilled from every teacher pseudo-classifier head (sum of KD terms)"
    Options = DIHOptions

    def __init__(self, options: DIHOptions, ctx):
        super().__init__(options, ctx)
        ctx.require_teacher("dih")
        if not ctx.teacher_head_layers:
            raise PairError("dih needs teacher pseudo classifiers (fit them with the fit-teacher-heads stage)")

    @property
    def needs(self) -> Needs:
        return Needs(student=frozenset({"logits"}), teacher=frozenset({"logits", "head_logits"}))

    def forward(self, student, teacher, batch) -> torch.Tensor:
        zs = student.require_logits()
        zt = teacher.require_head_logits()
        if self.options.include_final:
            zt = torch.cat([zt, teacher.require_logits().unsqueeze(1)], dim=1)
        k = zt.shape[1]
        # all heads at once: the mean over (batch, head) of the per-head KD terms is their mean
        mean = logit_distill(zs.unsqueeze(1).expand_as(zt), zt, self.options.temperature, self.ctx.regression)
        return mean if self.options.reduce == "mean" else mean * k
