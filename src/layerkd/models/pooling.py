"""Pooling of token states into one vector per example: the one place this math lives."""

from __future__ import annotations

import torch

POOLINGS = ("cls", "mean", "max", "last")


def pool(hidden: torch.Tensor, mask: torch.Tensor | None, mode: str) -> torch.Tensor:
    """Pool ``hidden[..., T, d]`` over tokens with ``mask[B, T]`` (1 = real token).

    ``hidden`` may have extra leading dims after the batch (e.g. ``[B, L, T, d]`` for all layers
    at once). ``cls`` takes position 0; ``mean`` is the masked mean (padding ignored); ``max``
    the masked max; ``last`` the last real token (a decoder's sentence vector,
    :mod:`layerkd.models.decoder`): the rightmost position whose mask is 1, so left and right
    padding give the same vector.
    """
    if mode not in POOLINGS:
        raise ValueError(f"unknown pooling {mode!r}; expected one of {POOLINGS}")
    if mode == "cls":
        return hidden[..., 0, :]
    if mode == "last":
        return _at(hidden, last_token_index(mask, hidden.shape[-2], hidden.device))
    if mask is None:
        return hidden.mean(dim=-2) if mode == "mean" else hidden.amax(dim=-2)
    m = mask.to(hidden.dtype)
    while m.dim() < hidden.dim() - 1:  # [B, T] -> [B, 1, ..., T]
        m = m.unsqueeze(1)
    m = m.unsqueeze(-1)
    if mode == "mean":
        return (hidden * m).sum(dim=-2) / m.sum(dim=-2).clamp_min(1.0)
    return hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).amax(dim=-2)  # "max"


def last_token_index(mask: torch.Tensor | None, length: int, device=None) -> torch.Tensor:
    """``[B]``: the position of each row's last real token (``mask`` 1 = real token; no mask: the
    last position). A row without any real token gives 0."""
    if mask is None:
        return torch.full((1,), length - 1, dtype=torch.long, device=device)
    positions = torch.arange(mask.shape[-1], device=mask.device)
    return (positions * (mask != 0)).argmax(dim=-1)


def _at(hidden: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``hidden[b, ..., index[b], :]`` for every row ``b`` (extra dims after the batch kept)."""
    if index.numel() == 1 and hidden.shape[0] != 1:
        index = index.expand(hidden.shape[0])
    view = index.view(-1, *([1] * (hidden.dim() - 1)))
    view = view.expand(*hidden.shape[:-2], 1, hidden.shape[-1])
    return hidden.gather(-2, view).squeeze(-2)


def pool_layers(hidden_states: tuple[torch.Tensor, ...], mask: torch.Tensor | None, mode: str) -> torch.Tensor:
    """Per-layer vectors ``[B, L+1, d]`` from per-layer token states (index 0 = embeddings)."""
    if mode == "cls":
        return torch.stack([h[:, 0] for h in hidden_states], dim=1)
    return torch.stack([pool(h, mask, mode) for h in hidden_states], dim=1)
