"""What the pipeline needs to know about a model to check a teacher/student pair."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelInfo:
    """Static facts about a model, used by the needs check before training starts.

    ``num_layers`` counts the blocks (layers 1..num_layers); layer 0 is the embedding output.
    ``hidden_size`` is the width of every layer's vectors. ``num_heads`` is None for models
    without self-attention. ``has_cls`` says whether position 0 is a summary token ([CLS]);
    models without one define "cls" pooling as their own sentence pooling.
    """

    kind: str
    num_layers: int
    hidden_size: int
    num_labels: int
    tokenizer_fingerprint: str
    num_heads: int | None = None
    has_cls: bool = True
    supports_attentions: bool = False
    name: str = ""

    def describe(self) -> str:
        heads = f", {self.num_heads} heads" if self.num_heads else ""
        return f"{self.kind} ({self.num_layers} layers, width {self.hidden_size}{heads})"
