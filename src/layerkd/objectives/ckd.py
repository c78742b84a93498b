"""``ckd``: Combinatorial KD (Wu et al., 2020) on layer vectors.

Teacher layers 1..n are grouped into m contiguous buckets (``no``: no overlap; ``po``: each
bucket widened by ``overlap`` layers on both sides, 6→2: [1..4], [3..6]); each bucket's layer
vectors are **concatenated** (|B_i|·d_T wide). A trainable Linear per student layer takes the
student vector *up* to that width (the CKD code's direction; the teacher side is not
projected). Both sides are L2-normalised and compared by MSE (mean over elements), summed over
student layers 1..m.

Choice: CKD's NMT code matches all tokens; on GLUE we match per-layer vectors (``cls`` by default)
as ALP-KD's CKD rows do, so the teacher side can be cached.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from .. import layer_maps
from ._proj import linear
from .base import Needs, Objective, Options
from .functional import l2_normalize
from .registry import register


class CKDOptions(Options):
    buckets: Literal["no", "po"] = Field("no", description="no-overlap or partial-overlap buckets")
    overlap: int = Field(1, ge=1, description="layers added on each side of a bucket for 'po'")
    pooling: Literal["cls", "mean"] = "cls"
    normalize: bool = True


@register
class CombinatorialKD(Objective):
    name = "ckd"
    summary = "teacher layers bucketed and concatenated; student projected up; L2 norm; MSE"
    Options = CKDOptions

    def __init__(self, options: CKDOptions, ctx):
        super().__init__(options, ctx)
        t = ctx.require_teacher("ckd")
        m, n = ctx.student.num_layers, t.num_layers
        overlap = options.overlap if options.buckets == "po" else 0
        self.groups = layer_maps.buckets(n, m, overlap)
        self.proj = nn.ModuleList([linear(ctx.student.hidden_size, len(g) * t.hidden_size) for g in self.groups])

    @property
    def needs(self) -> Needs:
        return Needs(student=frozenset({"layer_vectors"}), teacher=frozenset({"layer_vectors"}),
                     teacher_poolings=frozenset({self.options.pooling}))

    def forward(self, student, teacher, batch) -> torch.Tensor:
        s_all = student.layer_vectors(self.options.pooling)
        t_all = teacher.layer_vectors(self.options.pooling)
        total = torch.zeros((), device=s_all.device)
        for i, group in enumerate(self.groups):
            s = self.proj[i](s_all[:, i + 1])
            t = t_all[:, group].flatten(1)  # concatenate the bucket's layers
            if self.options.normalize:
                s, t = l2_normalize(s), l2_normalize(t)
            total = total + F.mse_loss(s.float(), t.float())
        return total
