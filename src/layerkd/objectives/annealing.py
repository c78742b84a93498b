"""``annealing``: Annealing-KD (Jafari et al., 2021), a capacity-gap baseline.

Phase 1: the student's logits regress onto the teacher's logits scaled by a factor φ that grows
from 1/T_max to 1 over the phase (:func:`annealing_factor`; the temperature steps down from
``max_temperature`` to 1): ``‖zS − φ·zT‖²`` summed over classes, averaged over the batch.
Phase 2: fine-tuning on gold labels with the recipe's ``ce`` objective.

Both phases share ``train.epochs``: phase 1 takes ``phase1_epochs`` (default: ``phase1_fraction``
of the total, Annealing-KD's GLUE command uses 14 of 18 epochs). Choice: phase 2 continues from
the end of phase 1 rather than reloading phase 1's best checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import Field

from ..errors import ConfigError
from .base import Needs, Objective, Options
from .functional import annealing_factor
from .registry import register


class AnnealingOptions(Options):
    max_temperature: float = Field(7.0, ge=1)
    phase1_epochs: int | None = Field(None, ge=1)
    phase1_fraction: float = Field(0.75, gt=0, lt=1)


@register
class AnnealingKD(Objective):
    name = "annealing"
    summary = "capacity-gap baseline: logits regress onto φ·teacher logits, φ annealed to 1; then gold-label fine-tuning"
    Options = AnnealingOptions

    def __init__(self, options: AnnealingOptions, ctx):
        super().__init__(options, ctx)
        ctx.require_teacher("annealing")
        self.factor = 1.0 / options.max_temperature

    @property
    def needs(self) -> Needs:
        return Needs(student=frozenset({"logits"}), teacher=frozenset({"logits"}))

    def start_epoch(self, epoch: int, *, phase_epoch: int = 0, phase_epochs: int | None = None) -> dict[str, Any]:
        self.factor = annealing_factor(phase_epoch, phase_epochs or 1, self.options.max_temperature)
        return {"factor": self.factor}

    def extra_state_dict(self) -> dict[str, Any]:
        return {"factor": self.factor}

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.factor = float(state["factor"])

    def forward(self, student, teacher, batch) -> torch.Tensor:
        zs, zt = student.require_logits().float(), teacher.require_logits().float()
        return (zs - self.factor * zt).pow(2).sum(dim=-1).mean()

    @classmethod
    def schedule(cls, options, key, weight, others, ctx, total_epochs):
        final = {k: w for k, w in others.items() if w > 0}
        if not final:
            raise ConfigError("annealing ends with a gold-label phase: add a ce objective to the recipe")
        e1 = options.phase1_epochs or max(1, math.floor(options.phase1_fraction * total_epochs + 0.5))
        return [{"name": "annealing", "epochs": e1, "use": {key: weight}},
                {"name": "fine-tune", "epochs": None, "use": final}]
