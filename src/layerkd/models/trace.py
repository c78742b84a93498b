"""The Trace: everything a distillation objective may read from a model's forward pass.

Objectives never touch a model; models never know about objectives. A Hugging Face encoder,
a BiLSTM, a CNN and a cached teacher all produce a Trace — the cached one with only the fields
it stores. Asking for a field the producer did not fill raises a clear error instead of
training on a silently missing signal.

Conventions (B batch, T tokens, L blocks, d width, h heads, C classes):

* ``logits`` ``[B, C]`` (``C = 1`` for regression);
* ``hidden_states``: tuple of L+1 tensors ``[B, T, d]``, index 0 = embedding output;
* ``attentions``: tuple of L tensors ``[B, h, T, T]`` (probabilities; row = query);
* ``attention_mask`` ``[B, T]`` (1 = real token);
* layer vectors ``[B, L+1, d]`` per pooling (``cls``, ``mean``, ``max``, ``last``), computed from
  hidden states on demand or supplied directly (cache, RNN/CNN models); ``cls`` means the model's
  sentence vector (``sentence_pooling`` for models without a [CLS] token: ``last`` for decoders);
* ``head_logits`` ``[B, k, C]``: pseudo-classifier outputs of the layers in ``head_layers``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .pooling import pool_layers


class MissingSignalError(RuntimeError):
    """An objective asked a Trace for a field its producer did not compute."""


@dataclass
class Trace:
    logits: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    pooled: dict[str, torch.Tensor] = field(default_factory=dict)
    head_logits: torch.Tensor | None = None
    head_layers: tuple[int, ...] = ()
    # For models without a [CLS] token: the pooling that "cls" stands for (e.g. "max").
    sentence_pooling: str | None = None
    source: str = "model"

    # ----------------------------------------------------------------------------- accessors
    @property
    def num_layers(self) -> int:
        """Number of blocks L (layer vectors have L+1 rows)."""
        if self.hidden_states is not None:
            return len(self.hidden_states) - 1
        if self.pooled:
            return next(iter(self.pooled.values())).shape[1] - 1
        if self.attentions is not None:
            return len(self.attentions)
        raise MissingSignalError(f"{self.source}: trace has no per-layer signal")

    def require_logits(self) -> torch.Tensor:
        if self.logits is None:
            raise MissingSignalError(f"{self.source}: logits were not computed")
        return self.logits

    def require_hidden_states(self) -> tuple[torch.Tensor, ...]:
        if not self.hidden_states:
            raise MissingSignalError(
                f"{self.source}: all-token hidden states were not computed (they are never cached; "
                "the teacher must run live for this objective)"
            )
        return self.hidden_states

    def require_attentions(self) -> tuple[torch.Tensor, ...]:
        if not self.attentions:
            raise MissingSignalError(
                f"{self.source}: attention probabilities are missing (the model must run with eager "
                "attention; 'sdpa' returns none)"
            )
        return self.attentions

    def require_mask(self) -> torch.Tensor:
        if self.attention_mask is None:
            raise MissingSignalError(f"{self.source}: attention mask missing")
        return self.attention_mask

    def layer_vectors(self, pooling: str = "cls") -> torch.Tensor:
        """``[B, L+1, d]``: one vector per layer (row 0 = embeddings). ``cls`` is the model's sentence
        vector: position 0 of an encoder, ``sentence_pooling`` of a model without a [CLS] token (a
        decoder's last real token, a BiLSTM/CNN's max or mean). Vectors supplied under the name they
        were asked for (a teacher's Trace, the cache) are returned as they are."""
        if pooling in self.pooled:
            return self.pooled[pooling]
        requested = pooling
        if pooling == "cls" and self.sentence_pooling is not None:
            pooling = self.sentence_pooling
        if pooling in self.pooled:
            return self.pooled[pooling]
        if self.hidden_states:
            vecs = pool_layers(self.hidden_states, self.attention_mask, pooling)
            self.pooled[pooling] = vecs
            self.pooled[requested] = vecs
            return vecs
        have = ", ".join(self.pooled) or "none"
        raise MissingSignalError(f"{self.source}: no {pooling!r}-pooled layer vectors (have: {have})")

    def require_head_logits(self) -> torch.Tensor:
        if self.head_logits is None:
            raise MissingSignalError(
                f"{self.source}: pseudo-classifier outputs missing (the teacher needs fitted heads: "
                "run the fit-teacher-heads stage)"
            )
        return self.head_logits
