"""``tinybert``: TinyBERT's intermediate-layer losses (Jiao et al., 2020).

Uniform map: student layer i ↔ teacher layer i·n/m (and embeddings 0 ↔ 0).

* hidden: MSE of all-token hidden states over real tokens (padding masked, so dynamic padding
  changes nothing), the student states taken through one trainable ``fit_dense`` Linear to the
  teacher's width when widths differ (TinyBERT's ``W_h``); the embedding output is rep 0, through
  the same map. Summed over the mapped reps.
* attention: MSE of attention maps over real (query, key) pairs, per head, summed over mapped
  layers. **Choice**: TinyBERT compares *pre-softmax* scores; Hugging Face models expose only
  probabilities, so we compare probabilities (as TextBrewer's ``attention_mse`` does).

Needs all-token states and attention maps from both models (the teacher runs live), the same
tokenizer (token positions must align) and, for the attention term, the same number of heads.
The prediction-layer step of TinyBERT is the ``kd`` objective (use ``temperature: 1``).
"""

from __future__ import annotations

import torch
from pydantic import Field

from .. import layer_maps
from ..errors import PairError
from ._proj import maybe_projection
from .base import Needs, Objective, Options, check_same_heads, check_token_aligned
from .functional import attention_mse, masked_mse
from .registry import register


class TinyBERTOptions(Options):
    hidden: bool = Field(True, description="all-token hidden-state MSE")
    attention: bool = Field(True, description="attention-map MSE (needs equal head counts)")
    embeddings: bool = Field(True, description="include the embedding output (rep 0 ↔ 0) in the hidden term")


@register
class TinyBERT(Objective):
    name = "tinybert"
    summary = "all-token hidden states (+embeddings) and attention maps, uniform map, trainable W_h; MSE"
    Options = TinyBERTOptions
    requires_token_alignment = True

    def __init__(self, options: TinyBERTOptions, ctx):
        super().__init__(options, ctx)
        t = ctx.require_teacher("tinybert")
        check_token_aligned("tinybert", ctx)
        if not (options.hidden or options.attention):
            raise PairError("tinybert: enable at least one of hidden and attention")
        if options.attention:
            check_same_heads("tinybert", ctx)
        m, n = ctx.student.num_layers, t.num_layers
        self.layer_map = layer_maps.uniform(n, m, include_embeddings=True)  # index i = student rep i
        self.fit_dense = maybe_projection(ctx.student.hidden_size, t.hidden_size)

    @property
    def needs(self) -> Needs:
        fields = set()
        if self.options.hidden:
            fields.add("hidden_states")
        if self.options.attention:
            fields.add("attentions")
        f = frozenset(fields)
        return Needs(student=f, teacher=f, token_aligned=True, same_heads=self.options.attention)

    def forward(self, student, teacher, batch) -> torch.Tensor:
        mask = student.require_mask()
        total = torch.zeros((), device=mask.device)
        if self.options.hidden:
            hs, ht = student.require_hidden_states(), teacher.require_hidden_states()
            start = 0 if self.options.embeddings else 1
            for i in range(start, len(self.layer_map)):
                total = total + masked_mse(self.fit_dense(hs[i]), ht[self.layer_map[i]], mask)
        if self.options.attention:
            a_s, a_t = student.require_attentions(), teacher.require_attentions()
            for i in range(1, len(self.layer_map)):
                total = total + attention_mse(a_s[i - 1], a_t[self.layer_map[i] - 1], mask)
        return total
