"""``universal``: Universal-KD, output-grounded intermediate-layer KD (Wu et al., 2021).

Pseudo classifiers (one linear head on each intermediate layer's pooled vector) map every layer
into the **output space** (C logits). The teacher's heads are fitted first with the teacher
frozen (stage ``fit-teacher-heads``; they travel with the teacher's Trace and its cache); the
student's heads belong to this objective and train jointly with the student.

For each student layer i, attention over the teacher layers is computed *in output space*:
``α_ij = softmax_j(zS_i · zT_j)`` (:func:`output_attention`), and the fused teacher output
``ẑ_i = Σ_j α_ij zT_j`` is the target of a temperature KD term ``T²·KL(softmax(ẑ_i/T) ‖
softmax(zS_i/T))``; terms are summed over student layers. Because matching happens over C
classes, no projection is needed even across architectures (BiLSTM/CNN students).

Options: ``attention: losses`` is the paper's ablation "attention on losses"
(``Σ_j α_ij · KL_T(zT_j ‖ zS_i)``); ``include_final`` adds the final classifiers (student's as a
query, teacher's as a key; default on); ``head_ce`` adds gold-label CE on the student heads (not
in the paper as far as is known; default 0); ``detach_weights`` stops gradients through α.
Regression tasks (STS-B) use MSE to the fused 1-d output.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from ..errors import PairError
from ..models.heads import LayerHeads
from .base import Needs, Objective, Options
from .functional import fuse_layers, kd_per_example, output_attention
from .registry import register


class UniversalOptions(Options):
    temperature: float = Field(1.0, gt=0)
    attention: Literal["logits", "losses"] = Field("logits", description="fuse teacher logits (paper) or weight per-layer losses (ablation)")
    include_final: bool = Field(True, description="student final logits as a query, teacher final logits as a key")
    student_layers: Literal["intermediate", "all"] = Field("intermediate", description="student layers with a pseudo classifier")
    pooling: Literal["cls", "mean", "max"] = "cls"
    head_dropout: float = Field(0.1, ge=0, lt=1)
    head_ce: float = Field(0.0, ge=0, description="weight of a gold-label CE on the student heads")
    detach_weights: bool = False


@register
class UniversalKD(Objective):
    name = "universal"
    summary = "pseudo classifiers on every layer; output-space attention over teacher layers; KL to the fused output"
    Options = UniversalOptions

    def __init__(self, options: UniversalOptions, ctx):
        super().__init__(options, ctx)
        ctx.require_teacher("universal")
        m = ctx.student.num_layers
        layers = list(range(1, m)) if options.student_layers == "intermediate" else list(range(1, m + 1))
        if not layers and not options.include_final:
            raise PairError("universal: a 1-layer student has no intermediate layer; set include_final: true")
        if not ctx.teacher_head_layers:
            raise PairError("universal needs teacher pseudo classifiers (fit them with the fit-teacher-heads stage)")
        self.student_layers = layers
        self.heads = LayerHeads(layers, ctx.student.hidden_size, ctx.num_labels, pooling=options.pooling,
                                dropout=options.head_dropout) if layers else None
        self.teacher_layers = list(ctx.teacher_head_layers)
        t_n = ctx.teacher.num_layers
        if options.include_final and t_n not in self.teacher_layers:
            self.teacher_layers = self.teacher_layers + [t_n]
        self.query_layers = layers + ([m] if options.include_final and m not in layers else [])

    @property
    def needs(self) -> Needs:
        return Needs(student=frozenset({"logits", "layer_vectors"}), teacher=frozenset({"logits", "head_logits"}))

    # ------------------------------------------------------------------ outputs
    def _student_outputs(self, student) -> torch.Tensor:
        parts = []
        if self.heads is not None:
            parts.append(self.heads(student.layer_vectors(self.options.pooling)))
        if self.options.include_final and self.ctx.student.num_layers not in self.student_layers:
            parts.append(student.require_logits().unsqueeze(1))
        return torch.cat(parts, dim=1)

    def _teacher_outputs(self, teacher) -> torch.Tensor:
        z = teacher.require_head_logits()
        if self.options.include_final and len(self.teacher_layers) > z.shape[1]:
            z = torch.cat([z, teacher.require_logits().unsqueeze(1)], dim=1)
        return z

    def forward(self, student, teacher, batch) -> torch.Tensor:
        zs = self._student_outputs(student).float()  # [B, m', C]
        zt = self._teacher_outputs(teacher).float()  # [B, n', C]
        w = output_attention(zs, zt)
        if self.options.detach_weights:
            w = w.detach()
        reg, temp = self.ctx.regression, self.options.temperature
        if self.options.attention == "logits":
            fused = fuse_layers(w, zt)  # Σ_j α_ij zT_j (float32 even under autocast)
            if reg:
                loss = (zs - fused).pow(2).mean(dim=(0, 2)).sum()
            else:
                loss = kd_per_example(zs, fused, temp).mean(dim=0).sum()  # KD per student layer, summed
        else:  # ablation: attention-weighted per-layer losses, all (i, j) pairs at once
            zs_b, zt_b = zs[:, :, None, :], zt[:, None, :, :]
            if reg:
                per = (zs_b - zt_b).pow(2).mean(dim=-1)
            else:
                per = kd_per_example(zs_b.expand(-1, -1, zt.shape[1], -1), zt_b.expand(-1, zs.shape[1], -1, -1), temp)
            loss = (w * per).sum(dim=2).mean(dim=0).sum()
        if self.options.head_ce > 0 and self.heads is not None and batch.labels is not None:
            zh = zs[:, : len(self.student_layers)]
            if reg:
                ce = F.mse_loss(zh[..., 0], batch.labels.float()[:, None].expand_as(zh[..., 0]))
            else:
                ce = F.cross_entropy(zh.flatten(0, 1), batch.labels.repeat_interleave(zh.shape[1]))
            loss = loss + self.options.head_ce * ce
        return loss

    @torch.no_grad()
    def layer_weights(self, student, teacher) -> torch.Tensor:
        return output_attention(self._student_outputs(student).float(), self._teacher_outputs(teacher).float())

    def diagnostic_axes(self):
        return {"student": self.query_layers, "teacher": self.teacher_layers}

