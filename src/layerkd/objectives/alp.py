"""``alp``: ALP-KD, attention-based layer projection (Passban et al., 2021).

For every student layer i (1..m) and every example, attention weights over the teacher's layer
vectors ``α_ij = softmax_j(h_S^i · h_T^j)`` (:func:`layer_attention`) fuse the teacher layers
into one target ``f_i = Σ_j α_ij h_T^j`` (:func:`fuse_layers`); the loss is the MSE between
``h_S^i`` and ``f_i`` (mean over elements), summed over student layers. The weights are
parameter-free and computed per example.

Variants (``buckets``): ``all`` — every teacher layer 1..n (ALP); ``no`` / ``po`` — student
layer i attends only within its non-/partially-overlapping bucket (ALP-NO / ALP-PO, the same
buckets as CKD).

Choices, each an option: ``scale`` divides the dot products by √d (the paper's attention is
unscaled as far as is known; raw BERT [CLS] vectors make unscaled softmaxes nearly one-hot, so
our presets scale); ``normalize`` L2-normalises both sides before the MSE (not in the paper;
off by default); ``detach_weights`` stops gradients through α. When widths differ, a trainable
Linear takes the student vectors to the teacher width before both the attention and the loss.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from .. import layer_maps
from ._proj import maybe_projection
from .base import Needs, Objective, Options
from .functional import fuse_layers, l2_normalize, layer_attention
from .registry import register


class ALPOptions(Options):
    buckets: Literal["all", "no", "po"] = Field("all", description="all teacher layers, or per-bucket (ALP-NO / ALP-PO)")
    overlap: int = Field(1, ge=1, description="bucket widening for 'po'")
    pooling: Literal["cls", "mean"] = "cls"
    scale: bool = Field(False, description="divide attention logits by sqrt(d)")
    normalize: bool = Field(False, description="L2-normalise student and fused vectors before the MSE")
    detach_weights: bool = Field(False, description="no gradient through the attention weights")
    include_embeddings: bool = Field(False, description="teacher layer 0 (embeddings) is also attended to")


@register
class ALPKD(Objective):
    name = "alp"
    summary = "each student layer vs an attention-weighted fusion of teacher layer vectors (ALP-KD); MSE"
    Options = ALPOptions

    def __init__(self, options: ALPOptions, ctx):
        super().__init__(options, ctx)
        t = ctx.require_teacher("alp")
        m, n = ctx.student.num_layers, t.num_layers
        self.student_layers = list(range(1, m + 1))
        self.teacher_layers = list(range(0 if options.include_embeddings else 1, n + 1))
        mask = None
        if options.buckets != "all":
            groups = layer_maps.buckets(n, m, options.overlap if options.buckets == "po" else 0)
            if options.include_embeddings:
                groups[0] = [0, *groups[0]]
            mask = layer_maps.bucket_mask(groups, self.teacher_layers)
        self.register_buffer("_mask", mask, persistent=False)
        self.register_buffer("_s", torch.tensor(self.student_layers), persistent=False)
        self.register_buffer("_t", torch.tensor(self.teacher_layers), persistent=False)
        self.proj = maybe_projection(ctx.student.hidden_size, t.hidden_size)

    @property
    def needs(self) -> Needs:
        return Needs(student=frozenset({"layer_vectors"}), teacher=frozenset({"layer_vectors"}),
                     teacher_poolings=frozenset({self.options.pooling}))

    def _vectors(self, student, teacher):
        s = self.proj(student.layer_vectors(self.options.pooling).index_select(1, self._s))
        t = teacher.layer_vectors(self.options.pooling).index_select(1, self._t)
        return s, t

    def _weights(self, s, t):
        return layer_attention(s, t, scale=self.options.scale, mask=self._mask)

    def forward(self, student, teacher, batch) -> torch.Tensor:
        s, t = self._vectors(student, teacher)
        w = self._weights(s, t)
        if self.options.detach_weights:
            w = w.detach()
        fused = fuse_layers(w, t)
        if self.options.normalize:
            s, fused = l2_normalize(s), l2_normalize(fused)
        # MSE per student layer (mean over batch and width), summed over layers
        return F.mse_loss(s.float(), fused, reduction="none").mean(dim=(0, 2)).sum()

    @torch.no_grad()
    def layer_weights(self, student, teacher) -> torch.Tensor:
        s, t = self._vectors(student, teacher)
        return self._weights(s, t)

    def diagnostic_axes(self):
        return {"student": self.student_layers, "teacher": self.teacher_layers}
