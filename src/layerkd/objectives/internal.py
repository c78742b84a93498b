"""``internal``: KD from internal representations (Aguilar et al., 2020).

On mapped layers (student i ↔ teacher round(i·n/m), uniform map) two terms:

* KL between the teacher's and the student's self-attention probabilities, per head and query
  position, over key positions (:func:`attention_kl`; padding masked; averaged over batch, heads
  and real queries) — needs equal head counts and a shared tokenizer;
* ``1 − cos`` between the layers' [CLS] vectors (``pooling: cls``, the paper's) or their masked token
  means (``pooling: mean``, for encoders trained with mean pooling, whose lower [CLS] states barely
  vary); a trainable Linear takes the student to the teacher's width when they differ.

Per layer: ``kl_weight·KL + cos_weight·(1 − cos)``, summed over the active layers.

Schedules (``schedule``), each followed by a soft-label phase that trains the classifier with the
recipe's other objectives (``kd``, optionally ``ce``), all within ``train.epochs``:

* ``all`` — every mapped layer at once for m·stage_epochs epochs;
* ``progressive`` (PID) — one layer at a time, bottom-up, ``stage_epochs`` each;
* ``stacked`` (SID, Algorithm 1) — layers 1..k at stage k;
* ``none`` — no schedule: the term is used as is in a single phase.

The move to the next stage happens after ``stage_epochs`` epochs, or earlier when
``advance: plateau`` and the stage's training loss stops improving by ``min_delta`` (relative)
for ``patience`` epochs. Lower layers are not frozen (the paper's rule was not found).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from .. import layer_maps
from ..errors import ConfigError, PairError
from ._proj import maybe_projection
from .base import Needs, Objective, Options, check_layers_in_range, check_same_heads, check_token_aligned
from .functional import attention_kl, cosine_loss
from .registry import register


class InternalOptions(Options):
    kl_weight: float = Field(1.0, ge=0)
    cos_weight: float = Field(1.0, ge=0)
    layers: list[int] | None = Field(None, description="active student layers (default: all); set per phase by schedules")
    schedule: Literal["none", "all", "progressive", "stacked"] = "stacked"
    stage_epochs: int = Field(1, ge=1, description="epochs per stage (the maximum when advance: plateau)")
    advance: Literal["epochs", "plateau"] = "epochs"
    patience: int = Field(1, ge=1)
    min_delta: float = Field(0.01, ge=0)
    pooling: Literal["cls", "mean"] = Field("cls", description="the layer vector of the cosine term")


@register
class InternalKD(Objective):
    name = "internal"
    summary = "attention-probability KL per head/query + (1-cos) of [CLS] (or mean) vectors on mapped layers; all/progressive/stacked schedules"
    Options = InternalOptions
    requires_token_alignment = True

    def __init__(self, options: InternalOptions, ctx):
        super().__init__(options, ctx)
        t = ctx.require_teacher("internal")
        if options.kl_weight > 0:  # attention maps must align token by token and head by head
            check_token_aligned("internal", ctx)
            check_same_heads("internal", ctx)
        m, n = ctx.student.num_layers, t.num_layers
        self.layer_map = dict(zip(range(1, m + 1), layer_maps.uniform(n, m), strict=True))
        self.active = list(range(1, m + 1))
        if options.layers is not None:
            self.set_phase_options(layers=options.layers)
        self.proj = maybe_projection(ctx.student.hidden_size, t.hidden_size)

    def set_phase_options(self, **options: Any) -> None:
        unknown = set(options) - {"layers"}
        if unknown:
            raise PairError(f"internal: unknown phase option {sorted(unknown)[0]!r} (expected: layers)")
        layers = options.get("layers")
        if layers is None or layers == "all":
            self.active = list(self.layer_map)
            return
        check_layers_in_range("internal", layers, len(self.layer_map), "student")
        self.active = sorted(int(i) for i in layers)

    @property
    def needs(self) -> Needs:
        fields = {"layer_vectors"} if self.options.cos_weight > 0 else set()
        if self.options.kl_weight > 0:
            fields.add("attentions")
        f = frozenset(fields)
        return Needs(student=f, teacher=f, teacher_poolings=frozenset({self.options.pooling}), token_aligned=self.options.kl_weight > 0,
                     same_heads=self.options.kl_weight > 0)

    def forward(self, student, teacher, batch) -> torch.Tensor:
        mask = student.require_mask()
        total = torch.zeros((), device=mask.device)
        if self.options.kl_weight > 0:
            a_s, a_t = student.require_attentions(), teacher.require_attentions()
            for i in self.active:
                total = total + self.options.kl_weight * attention_kl(a_s[i - 1], a_t[self.layer_map[i] - 1], mask)
        if self.options.cos_weight > 0:
            s = self.proj(student.layer_vectors(self.options.pooling))
            t = teacher.layer_vectors(self.options.pooling)
            for i in self.active:
                total = total + self.options.cos_weight * cosine_loss(s[:, i], t[:, self.layer_map[i]])
        return total

    @classmethod
    def schedule(cls, options, key, weight, others, ctx, total_epochs):
        if options.schedule == "none":
            return None
        final = {k: w for k, w in others.items() if w > 0}
        if not final:
            raise ConfigError(f"internal schedule {options.schedule!r} ends with a soft-label phase: add a kd objective to the recipe")
        m = ctx.student.num_layers
        stage = {"advance": options.advance, "patience": options.patience, "min_delta": options.min_delta}
        phases: list[dict] = []
        if options.schedule == "all":
            phases.append({"name": "internal-all", "epochs": m * options.stage_epochs, "use": {key: weight},
                           "options": {key: {"layers": list(range(1, m + 1))}}, **stage})
        else:
            for k in range(1, m + 1):
                layers = [k] if options.schedule == "progressive" else list(range(1, k + 1))
                phases.append({"name": f"internal-{options.schedule}-{k}", "epochs": options.stage_epochs,
                               "use": {key: weight}, "options": {key: {"layers": layers}}, **stage})
        phases.append({"name": "soft-labels", "epochs": None, "use": final, "options": {key: {"layers": "all"}}})
        return phases
