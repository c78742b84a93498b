"""Trainable projections shared by the hidden-space objectives (one place for the init rule)."""

from __future__ import annotations

from torch import nn


def linear(d_in: int, d_out: int, *, bias: bool = False) -> nn.Linear:
    """A Linear map, Xavier-initialised."""
    layer = nn.Linear(d_in, d_out, bias=bias)
    nn.init.xavier_uniform_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


def maybe_projection(d_student: int, d_teacher: int, force: bool = False) -> nn.Module:
    """Student → teacher width when they differ (or when ``force``); identity otherwise."""
    if d_student == d_teacher and not force:
        return nn.Identity()
    return linear(d_student, d_teacher)


class PerLayer(nn.Module):
    """One projection per mapped layer, applied to ``[B, k, d]`` in a single batched einsum."""

    def __init__(self, k: int, d_in: int, d_out: int):
        super().__init__()
        import torch  # noqa: PLC0415

        w = torch.empty(k, d_in, d_out)
        for i in range(k):
            nn.init.xavier_uniform_(w[i].T)
        self.weight = nn.Parameter(w)

    def forward(self, x):
        import torch  # noqa: PLC0415

        return torch.einsum("bkd,kde->bke", x, self.weight.to(x.dtype))
