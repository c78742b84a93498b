"""Pooling (``layerkd.models.pooling``), Trace layer vectors and pseudo-classifier heads, against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from layerkd.models.heads import LayerHeads
from layerkd.models.pooling import pool, pool_layers
from layerkd.models.trace import MissingSignalError, Trace

SEEDS = [0, 1, 2]


def t32(x) -> torch.Tensor:
    return torch.tensor(np.asarray(x), dtype=torch.float32)


def f64(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().numpy()


def mask_from(lengths, T) -> torch.Tensor:
    return (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).long()


def np_pool(h: np.ndarray, lengths, mode: str) -> np.ndarray:
    """Loop over examples; ``h`` is ``[B, T, d]``."""
    out = []
    for b, n in enumerate(lengths):
        real = h[b, :n]
        out.append({"cls": h[b, 0], "mean": real.mean(axis=0), "max": real.max(axis=0)}[mode])
    return np.stack(out)


# ----------------------------------------------------------------------------- pool
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", ["cls", "mean", "max"])
def test_pool_matches_numpy(seed, mode):
    rng = np.random.default_rng(seed)
    lengths, T = [5, 3, 1], 5
    h = rng.normal(size=(3, T, 4)).astype(np.float32)
    out = pool(t32(h), mask_from(lengths, T), mode)
    assert out.shape == (3, 4)
    np.testing.assert_allclose(f64(out), np_pool(h.astype(np.float64), lengths, mode), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["mean", "max"])
def test_pool_ignores_padding(mode):
    rng = np.random.default_rng(4)
    lengths, T = [4, 2], 4
    h = rng.normal(size=(2, T, 3)).astype(np.float32)
    base = pool(t32(h), mask_from(lengths, T), mode)
    h2 = h.copy()
    h2[1, 2:] = 1e4  # would dominate a max or a mean if not masked
    assert torch.allclose(pool(t32(h2), mask_from(lengths, T), mode), base)
    h3 = np.concatenate([h, np.full((2, 3, 3), 1e4, dtype=np.float32)], axis=1)  # more padding
    assert torch.allclose(pool(t32(h3), mask_from(lengths, T + 3), mode), base)


def test_pool_hand_computed():
    h = t32([[[1.0, -2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool(h, mask, "cls").tolist() == [[1.0, -2.0]]
    assert pool(h, mask, "mean").tolist() == [[2.0, 1.0]]
    assert pool(h, mask, "max").tolist() == [[3.0, 4.0]]
    np.testing.assert_allclose(f64(pool(h, None, "mean")), [[104 / 3, 34.0]], rtol=1e-6)
    assert pool(h, None, "max").tolist() == [[100.0, 100.0]]


def test_pool_all_layers_at_once():
    rng = np.random.default_rng(5)
    lengths, T = [3, 2], 3
    h = rng.normal(size=(2, 4, T, 5)).astype(np.float32)  # [B, L, T, d]
    for mode in ("mean", "max"):
        out = pool(t32(h), mask_from(lengths, T), mode)
        assert out.shape == (2, 4, 5)
        for layer in range(4):
            np.testing.assert_allclose(f64(out[:, layer]), np_pool(h[:, layer].astype(np.float64), lengths, mode), rtol=1e-6)


@pytest.mark.parametrize("mask", [None, torch.ones(2, 3, dtype=torch.long)])
def test_pool_unknown_mode_raises(mask):
    with pytest.raises(ValueError, match="unknown pooling 'median'"):
        pool(torch.zeros(2, 3, 4), mask, "median")
    with pytest.raises(ValueError, match="unknown pooling"):
        pool_layers((torch.zeros(2, 3, 4),), mask, "median")


@pytest.mark.parametrize("mode", ["cls", "mean", "max"])
def test_pool_layers_matches_numpy(mode):
    rng = np.random.default_rng(6)
    lengths, T, L = [4, 2, 3], 4, 3
    hs = [rng.normal(size=(3, T, 2)).astype(np.float32) for _ in range(L + 1)]
    out = pool_layers(tuple(t32(h) for h in hs), mask_from(lengths, T), mode)
    assert out.shape == (3, L + 1, 2)
    for i, h in enumerate(hs):
        np.testing.assert_allclose(f64(out[:, i]), np_pool(h.astype(np.float64), lengths, mode), rtol=1e-6)


def test_pool_bfloat16_max_masks_padding():
    h = t32([[[1.0, 2.0], [-5.0, 9.0]]]).bfloat16()
    out = pool(h, torch.tensor([[1, 0]]), "max")
    assert out.dtype == torch.bfloat16 and out.float().tolist() == [[1.0, 2.0]]


# ----------------------------------------------------------------------------- Trace
def _trace(rng, lengths=(4, 2), T=4, L=2, d=3, **kw):
    hs = tuple(t32(rng.normal(size=(len(lengths), T, d))) for _ in range(L + 1))
    return Trace(hidden_states=hs, attention_mask=mask_from(list(lengths), T), **kw), hs


def test_trace_layer_vectors_from_hidden_states():
    rng = np.random.default_rng(7)
    tr, hs = _trace(rng)
    assert tr.num_layers == 2
    cls = tr.layer_vectors("cls")
    mean = tr.layer_vectors("mean")
    assert cls.shape == mean.shape == (2, 3, 3)
    for i, h in enumerate(hs):
        np.testing.assert_allclose(f64(cls[:, i]), f64(h)[:, 0])
        np.testing.assert_allclose(f64(mean[:, i]), np_pool(f64(h), [4, 2], "mean"), rtol=1e-6)
    assert tr.layer_vectors("mean") is mean  # computed once per pooling


def test_trace_sentence_pooling_stands_for_cls():
    rng = np.random.default_rng(8)
    tr, hs = _trace(rng, sentence_pooling="max")
    out = tr.layer_vectors("cls")
    for i, h in enumerate(hs):
        np.testing.assert_allclose(f64(out[:, i]), np_pool(f64(h), [4, 2], "max"), rtol=1e-6)


def test_trace_supplied_vectors_and_missing_signals():
    v = torch.randn(2, 4, 3)
    tr = Trace(pooled={"cls": v}, source="cache")
    assert tr.num_layers == 3
    assert tr.layer_vectors("cls") is v
    with pytest.raises(MissingSignalError, match="cache: no 'mean'-pooled layer vectors \\(have: cls\\)"):
        tr.layer_vectors("mean")
    for req in (tr.require_logits, tr.require_hidden_states, tr.require_attentions, tr.require_mask,
                tr.require_head_logits):
        with pytest.raises(MissingSignalError, match="^cache: "):
            req()
    with pytest.raises(MissingSignalError):
        _ = Trace().num_layers
    assert Trace(attentions=(torch.ones(1, 1, 2, 2),) * 5).num_layers == 5


# ----------------------------------------------------------------------------- LayerHeads
def test_layer_heads_match_numpy():
    rng = np.random.default_rng(9)
    heads = LayerHeads([1, 3], 4, 2, dropout=0.5)
    with torch.no_grad():
        heads.bias.copy_(t32(rng.normal(size=(2, 2))))
    v = rng.normal(size=(3, 5, 4)).astype(np.float32)  # [B, L+1, d]
    heads.eval()  # no dropout at evaluation
    out = heads(t32(v))
    assert out.shape == (3, 2, 2)
    W, b = f64(heads.weight), f64(heads.bias)
    for k, layer in enumerate([1, 3]):
        np.testing.assert_allclose(f64(out[:, k]), v[:, layer].astype(np.float64) @ W[k] + b[k], rtol=1e-5, atol=1e-6)
    heads.train()
    torch.manual_seed(0)
    assert not torch.allclose(heads(t32(v)), out)  # dropout active in training
    with pytest.raises(ValueError, match="model has 2 layers"):
        heads(torch.zeros(1, 3, 4))
    with pytest.raises(ValueError):
        LayerHeads([], 4, 2)
