"""``pkd``: Patient KD (Sun et al., 2019).

Matches the layer vectors of the student's intermediate layers 1..m−1 (the last layer is left to
the logit KD term, as in the PKD code) with teacher layers chosen by the ``skip`` map (teacher
2,4,… for 12→6) or the ``last`` map (the top teacher layers). Loss: :func:`pkd_loss` — mean over
all elements of the squared difference of L2-normalised vectors (PKD's ``F.mse_loss`` convention);
with ``normalize: false`` the plain MSE. When widths differ, a trainable linear map takes the
student vectors to the teacher's width (PKD itself never needs one).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from .. import layer_maps
from ..errors import PairError
from ._proj import maybe_projection
from .base import Needs, Objective, Options
from .functional import pkd_loss
from .registry import register


class PKDOptions(Options):
    mapping: Literal["skip", "last"] = "skip"
    pooling: Literal["cls", "mean"] = "cls"
    normalize: bool = Field(True, description="L2-normalise the vectors before the MSE (PKD's --normalize_patience)")


@register
class PatientKD(Objective):
    name = "pkd"
    summary = "layer vectors of student layers 1..m-1 vs skip/last teacher layers; MSE of L2-normalised vectors"
    Options = PKDOptions

    def __init__(self, options: PKDOptions, ctx):
        super().__init__(options, ctx)
        t = ctx.require_teacher("pkd")
        m, n = ctx.student.num_layers, t.num_layers
        if m < 2:
            raise PairError(f"pkd matches student layers 1..m-1; a {m}-layer student has none (use kd, alp or rail)")
        self.student_layers = list(range(1, m))
        self.teacher_layers = layer_maps.resolve(options.mapping, n, m)
        self.proj = maybe_projection(ctx.student.hidden_size, t.hidden_size)
        self.register_buffer("_s", torch.tensor(self.student_layers), persistent=False)
        self.register_buffer("_t", torch.tensor(self.teacher_layers), persistent=False)

    @property
    def needs(self) -> Needs:
        p = frozenset({self.options.pooling})
        return Needs(student=frozenset({"layer_vectors"}), teacher=frozenset({"layer_vectors"}), teacher_poolings=p)

    def forward(self, student, teacher, batch) -> torch.Tensor:
        s = student.layer_vectors(self.options.pooling).index_select(1, self._s)
        t = teacher.layer_vectors(self.options.pooling).index_select(1, self._t)
        s = self.proj(s)
        if self.options.normalize:
            return pkd_loss(s, t)
        return F.mse_loss(s.float(), t.float())
