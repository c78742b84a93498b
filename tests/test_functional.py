"""Golden values for the functional core (``layerkd.objectives.functional``).

Every expected value is computed independently here — in NumPy float64 (with loops over examples
where masks are involved) or by hand — never by calling the function under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from layerkd.objectives import functional as Fn

SEEDS = [0, 1, 2]


# ----------------------------------------------------------------------------- NumPy references
def np_log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def np_softmax(x: np.ndarray) -> np.ndarray:
    return np.exp(np_log_softmax(x))


def np_kd_per_example(zs, zt, T):
    lt, ls = np_log_softmax(zt / T), np_log_softmax(zs / T)
    return (np.exp(lt) * (lt - ls)).sum(axis=-1) * T * T


def np_soft_ce(zs, zt, T):
    return float(-(np_softmax(zt / T) * np_log_softmax(zs / T)).sum(axis=-1).mean())


def np_l2n(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def np_attention_kl(a_s, a_t, lengths):
    """Loop over examples: crop to the real tokens, renormalise rows, KL per (head, query)."""
    vals = []
    for b, n in enumerate(lengths):
        t = a_t[b, :, :n, :n]
        s = a_s[b, :, :n, :n]
        t = t / t.sum(axis=-1, keepdims=True)
        s = s / s.sum(axis=-1, keepdims=True)
        vals.append((t * (np.log(t) - np.log(s))).sum(axis=-1).ravel())  # h*n values
    return float(np.concatenate(vals).mean())


def np_masked_mse(s, t, lengths):
    return float(np.concatenate([((s[b, :n] - t[b, :n]) ** 2).ravel() for b, n in enumerate(lengths)]).mean())


def np_attention_mse(s, t, lengths):
    return float(np.concatenate([((s[b, :, :n, :n] - t[b, :, :n, :n]) ** 2).ravel() for b, n in enumerate(lengths)]).mean())


def np_cosine_loss(s, t):
    cos = (s * t).sum(-1) / (np.linalg.norm(s, axis=-1) * np.linalg.norm(t, axis=-1))
    return float((1.0 - cos).mean())


# ----------------------------------------------------------------------------- helpers
def t32(x) -> torch.Tensor:
    return torch.tensor(np.asarray(x), dtype=torch.float32)


def f64(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().numpy()


def mask_from(lengths, T) -> torch.Tensor:
    return (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).long()


def rand_attn(rng, B, h, T) -> np.ndarray:
    """Row-stochastic random maps over all T keys (float32-representable)."""
    return np_softmax(rng.normal(size=(B, h, T, T)) * 2.0).astype(np.float32)


def close(actual: torch.Tensor, expected: float, rtol=1e-5, atol=1e-6):
    assert actual.dim() == 0
    assert actual.dtype == torch.float32
    np.testing.assert_allclose(float(actual), expected, rtol=rtol, atol=atol)


# ============================================================================ kd_loss / kd_per_example
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
def test_kd_loss_matches_numpy(seed, T):
    rng = np.random.default_rng(seed)
    zs, zt = (rng.normal(size=(5, 4)) * 3).astype(np.float32), (rng.normal(size=(5, 4)) * 3).astype(np.float32)
    expected = np_kd_per_example(zs.astype(np.float64), zt.astype(np.float64), T)
    close(Fn.kd_loss(t32(zs), t32(zt), T), float(expected.mean()))
    per = Fn.kd_per_example(t32(zs), t32(zt), T)
    assert per.shape == (5,)
    np.testing.assert_allclose(f64(per), expected, rtol=1e-5, atol=1e-6)


def test_kd_loss_hand_computed():
    # T = 1: p_T = (3/4, 1/4), p_S = (1/2, 1/2)
    zs, zt = t32([[0.0, 0.0]]), t32([[math.log(3.0), 0.0]])
    kl1 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    close(Fn.kd_loss(zs, zt, 1.0), kl1)
    # T = 2: p_T = (√3, 1)/(√3 + 1); the loss carries T² = 4
    r3 = math.sqrt(3.0)
    p = (r3 / (r3 + 1), 1 / (r3 + 1))
    kl2 = p[0] * math.log(p[0] / 0.5) + p[1] * math.log(p[1] / 0.5)
    close(Fn.kd_loss(zs, zt, 2.0), 4.0 * kl2)


def test_kd_loss_is_batch_mean_of_per_row_sums():
    zs = t32([[0.0, 0.0], [0.0, 0.0]])
    zt = t32([[math.log(3.0), 0.0], [0.0, 0.0]])  # second row: identical distributions -> 0
    kl1 = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    close(Fn.kd_loss(zs, zt, 1.0), kl1 / 2)


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
def test_kd_loss_zero_for_equal_logits(T):
    z = t32(np.random.default_rng(3).normal(size=(6, 5)) * 4)
    assert abs(float(Fn.kd_loss(z, z.clone(), T))) < 1e-6
    # softmax is shift-invariant: a constant offset per row is still zero loss
    assert abs(float(Fn.kd_loss(z + 5.0, z, T))) < 1e-5


@pytest.mark.parametrize("T", [2.0, 4.0])
def test_kd_loss_t_squared_factor(T):
    # scaling the logits by T and dividing by T gives the same distributions as T = 1,
    # so the only difference is the T² factor
    rng = np.random.default_rng(4)
    zs, zt = t32(rng.normal(size=(7, 3))), t32(rng.normal(size=(7, 3)))
    base = float(Fn.kd_loss(zs, zt, 1.0))
    assert base > 1e-3
    np.testing.assert_allclose(float(Fn.kd_loss(zs * T, zt * T, T)), T * T * base, rtol=1e-5)


def test_kd_loss_leading_dims_averaged():
    rng = np.random.default_rng(5)
    zs, zt = rng.normal(size=(2, 3, 4)).astype(np.float32), rng.normal(size=(2, 3, 4)).astype(np.float32)
    exp = np_kd_per_example(zs.astype(np.float64), zt.astype(np.float64), 2.0)
    assert Fn.kd_per_example(t32(zs), t32(zt), 2.0).shape == (2, 3)
    close(Fn.kd_loss(t32(zs), t32(zt), 2.0), float(exp.mean()))


# ============================================================================ soft_cross_entropy
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("T", [1.0, 3.0])
def test_soft_cross_entropy_matches_numpy(seed, T):
    rng = np.random.default_rng(seed)
    zs, zt = rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=(4, 5)).astype(np.float32)
    close(Fn.soft_cross_entropy(t32(zs), t32(zt), T), np_soft_ce(zs.astype(np.float64), zt.astype(np.float64), T))


def test_soft_cross_entropy_hand_computed():
    # uniform teacher over 2 classes, uniform student: H = ln 2; no T² factor
    close(Fn.soft_cross_entropy(t32([[1.0, 1.0]]), t32([[0.0, 0.0]]), 3.0), math.log(2.0))
    # one-hot-ish teacher (p_T = 3/4, 1/4), student (1/2, 1/2): H = ln 2
    close(Fn.soft_cross_entropy(t32([[0.0, 0.0]]), t32([[math.log(3.0), 0.0]])), math.log(2.0))
    # teacher uniform, student p_S = (3/4, 1/4): -(1/2)(ln 3/4 + ln 1/4)
    close(Fn.soft_cross_entropy(t32([[math.log(3.0), 0.0]]), t32([[0.0, 0.0]])), -0.5 * (math.log(0.75) + math.log(0.25)))


# ============================================================================ layer_attention / fuse / output_attention
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("scale", [False, True])
def test_layer_attention_matches_numpy(seed, scale):
    rng = np.random.default_rng(seed)
    s, t = rng.normal(size=(3, 2, 5)).astype(np.float32), rng.normal(size=(3, 4, 5)).astype(np.float32)
    logits = np.einsum("bmd,bnd->bmn", s.astype(np.float64), t.astype(np.float64))
    if scale:
        logits = logits / math.sqrt(5)
    w = Fn.layer_attention(t32(s), t32(t), scale=scale)
    assert w.shape == (3, 2, 4) and w.dtype == torch.float32
    np.testing.assert_allclose(f64(w), np_softmax(logits), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f64(w.sum(-1)), np.ones((3, 2)), atol=1e-6)


def test_layer_attention_scale_divides_by_sqrt_d():
    # one student vector, two teacher vectors; dot products 4 and 0, d = 4 -> scaled logits 2 and 0
    s = t32([[[1.0, 1.0, 1.0, 1.0]]])
    t = t32([[[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]])
    w_raw = Fn.layer_attention(s, t, scale=False)
    w_scaled = Fn.layer_attention(s, t, scale=True)
    np.testing.assert_allclose(f64(w_raw)[0, 0], [math.exp(4) / (math.exp(4) + 1), 1 / (math.exp(4) + 1)], rtol=1e-6)
    np.testing.assert_allclose(f64(w_scaled)[0, 0], [math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)], rtol=1e-6)


def test_layer_attention_bucket_mask():
    rng = np.random.default_rng(7)
    s, t = rng.normal(size=(2, 2, 3)).astype(np.float32), rng.normal(size=(2, 6, 3)).astype(np.float32)
    allowed = np.array([[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1]], dtype=bool)
    w = f64(Fn.layer_attention(t32(s), t32(t), scale=True, mask=torch.tensor(allowed)))
    assert np.all(w[:, ~allowed] == 0.0)  # exactly zero outside the bucket
    assert np.all(w[:, allowed] > 0.0)
    np.testing.assert_allclose(w.sum(-1), np.ones((2, 2)), atol=1e-6)
    logits = np.einsum("bmd,bnd->bmn", s.astype(np.float64), t.astype(np.float64)) / math.sqrt(3)
    for i in range(2):
        cols = np.flatnonzero(allowed[i])
        np.testing.assert_allclose(w[:, i, cols], np_softmax(logits[:, i, cols]), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("seed", SEEDS)
def test_fuse_layers_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    w = np_softmax(rng.normal(size=(3, 2, 4))).astype(np.float32)
    t = rng.normal(size=(3, 4, 5)).astype(np.float32)
    expected = np.stack([[sum(w[b, i, j] * t[b, j].astype(np.float64) for j in range(4)) for i in range(2)] for b in range(3)])
    out = Fn.fuse_layers(t32(w), t32(t))
    assert out.shape == (3, 2, 5)
    np.testing.assert_allclose(f64(out), expected, rtol=1e-5, atol=1e-6)


def test_fuse_layers_one_hot_weights_select():
    t = t32(np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2))
    w = torch.zeros(2, 2, 3)
    w[:, 0, 2] = 1.0
    w[:, 1, 0] = 1.0
    out = Fn.fuse_layers(w, t)
    assert torch.equal(out[:, 0], t[:, 2]) and torch.equal(out[:, 1], t[:, 0])


@pytest.mark.parametrize("seed", SEEDS)
def test_output_attention_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    zs, zt = rng.normal(size=(4, 3, 2)).astype(np.float32), rng.normal(size=(4, 5, 2)).astype(np.float32)
    expected = np_softmax(np.einsum("bmc,bnc->bmn", zs.astype(np.float64), zt.astype(np.float64)))
    w = Fn.output_attention(t32(zs), t32(zt))
    assert w.shape == (4, 3, 5)
    np.testing.assert_allclose(f64(w), expected, rtol=1e-5, atol=1e-6)
    # hand case: zs = (1, 0); zt rows (1, 0) and (0, 1) -> softmax(1, 0)
    w1 = Fn.output_attention(t32([[[1.0, 0.0]]]), t32([[[1.0, 0.0], [0.0, 1.0]]]))
    np.testing.assert_allclose(f64(w1)[0, 0], [math.e / (math.e + 1), 1 / (math.e + 1)], rtol=1e-6)


# ============================================================================ attention_kl
@pytest.mark.parametrize("seed", SEEDS)
def test_attention_kl_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    B, h, T, lengths = 3, 2, 5, [5, 3, 2]
    a_s, a_t = rand_attn(rng, B, h, T), rand_attn(rng, B, h, T)
    out = Fn.attention_kl(t32(a_s), t32(a_t), mask_from(lengths, T))
    close(out, np_attention_kl(a_s.astype(np.float64), a_t.astype(np.float64), lengths), rtol=1e-5)


def test_attention_kl_hand_computed():
    a_t = t32([[[[0.5, 0.5], [0.25, 0.75]]]])
    a_s = t32([[[[0.25, 0.75], [0.5, 0.5]]]])
    row0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    row1 = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    close(Fn.attention_kl(a_s, a_t, torch.ones(1, 2, dtype=torch.long)), (row0 + row1) / 2)
    assert abs(float(Fn.attention_kl(a_t, a_t, torch.ones(1, 2, dtype=torch.long)))) < 1e-7


def test_attention_kl_averages_over_real_queries_not_examples():
    # example 0: 1 real query with KL k0; example 1: 2 real queries with KL k1 each
    # -> (k0 + 2 k1) / 3, not (k0 + k1) / 2
    a_t = torch.zeros(2, 1, 2, 2)
    a_s = torch.zeros(2, 1, 2, 2)
    a_t[0, 0, 0] = torch.tensor([1.0, 0.0])
    a_s[0, 0, 0] = torch.tensor([1.0, 0.0])  # k0 = 0 after renormalisation over the 1 real key
    a_t[1, 0] = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    a_s[1, 0] = torch.tensor([[0.25, 0.75], [0.25, 0.75]])
    k1 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    mask = torch.tensor([[1, 0], [1, 1]])
    close(Fn.attention_kl(a_s, a_t, mask), 2 * k1 / 3)


def test_attention_kl_padding_invariance():
    rng = np.random.default_rng(11)
    B, h, T, lengths = 2, 3, 6, [6, 3]
    a_s, a_t = rand_attn(rng, B, h, T), rand_attn(rng, B, h, T)
    mask = mask_from(lengths, T)
    base = float(Fn.attention_kl(t32(a_s), t32(a_t), mask))
    # 1) other values in padded query rows
    s2, t2 = a_s.copy(), a_t.copy()
    s2[1, :, 3:, :] = rng.uniform(0.1, 5, size=(h, 3, T))
    t2[1, :, 3:, :] = rng.uniform(0.1, 5, size=(h, 3, T))
    np.testing.assert_allclose(float(Fn.attention_kl(t32(s2), t32(t2), mask)), base, rtol=1e-6)
    # 2) other values in padded key columns (so the rows no longer sum to 1)
    s3, t3 = a_s.copy(), a_t.copy()
    s3[1, :, :, 3:] = rng.uniform(0.0, 3, size=(h, T, 3))
    t3[1, :, :, 3:] = rng.uniform(0.0, 3, size=(h, T, 3))
    np.testing.assert_allclose(float(Fn.attention_kl(t32(s3), t32(t3), mask)), base, rtol=1e-6)
    # 3) more padding: embed in T = 9 with random values in the new positions
    T2 = 9
    s4, t4 = rng.uniform(0, 1, size=(B, h, T2, T2)), rng.uniform(0, 1, size=(B, h, T2, T2))
    s4[:, :, :T, :T], t4[:, :, :T, :T] = a_s, a_t
    np.testing.assert_allclose(float(Fn.attention_kl(t32(s4), t32(t4), mask_from(lengths, T2))), base, rtol=1e-6)
    # sanity: changing a real entry does change the loss
    s5 = a_s.copy()
    s5[1, 0, 0, :3] = [0.8, 0.1, 0.1]
    assert abs(float(Fn.attention_kl(t32(s5), t32(a_t), mask)) - base) > 1e-4


# ============================================================================ rail_draw
def test_rail_draw_properties():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        d = Fn.rail_draw(12, 6, g)
        assert len(d) == 6 and len(set(d)) == 6
        assert d == sorted(d)
        assert all(1 <= x <= 12 for x in d)
    assert Fn.rail_draw(4, 4, g) == [1, 2, 3, 4]


def test_rail_draw_reproducible_and_seed_dependent():
    def seq(seed):
        g = torch.Generator().manual_seed(seed)
        return [Fn.rail_draw(12, 4, g) for _ in range(8)]

    assert seq(5) == seq(5)
    assert seq(5) != seq(6)
    assert len({tuple(x) for x in seq(5)}) > 1  # successive draws differ


def test_rail_draw_covers_every_layer():
    g = torch.Generator().manual_seed(1)
    counts = np.zeros(13, dtype=int)
    for _ in range(300):
        for x in Fn.rail_draw(12, 3, g):
            counts[x] += 1
    assert counts[0] == 0
    assert np.all(counts[1:] > 0)
    # roughly uniform: expected 75 each
    assert counts[1:].min() > 30 and counts[1:].max() < 130


def test_rail_draw_rejects_impossible():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError):
        Fn.rail_draw(3, 4, g)
    with pytest.raises(ValueError):
        Fn.rail_draw(3, 0, g)


# ============================================================================ pkd_loss / distances
@pytest.mark.parametrize("seed", SEEDS)
def test_pkd_loss_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    s, t = rng.normal(size=(3, 4, 6)).astype(np.float32), rng.normal(size=(3, 4, 6)).astype(np.float32)
    expected = float(((np_l2n(s.astype(np.float64)) - np_l2n(t.astype(np.float64))) ** 2).mean())
    close(Fn.pkd_loss(t32(s), t32(t)), expected)


def test_pkd_loss_hand_computed_and_scale_invariant():
    # s/|s| = (.6, .8), t/|t| = (.8, .6): squared differences (.04, .04), mean over both elements
    close(Fn.pkd_loss(t32([[3.0, 4.0]]), t32([[4.0, 3.0]])), 0.04)
    close(Fn.pkd_loss(t32([[30.0, 40.0]]), t32([[0.4, 0.3]])), 0.04)
    # norms are over the last dim only: a second row that matches halves the mean
    close(Fn.pkd_loss(t32([[3.0, 4.0], [1.0, 0.0]]), t32([[4.0, 3.0], [2.0, 0.0]])), 0.02)


@pytest.mark.parametrize("seed", SEEDS)
def test_squared_distance_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    s, t = rng.normal(size=(3, 2, 5)).astype(np.float32), rng.normal(size=(3, 2, 5)).astype(np.float32)
    expected = float(((s.astype(np.float64) - t) ** 2).sum(-1).mean())
    close(Fn.squared_distance(t32(s), t32(t)), expected)


def test_squared_distance_hand_computed():
    # rows: |(1,2)|² = 5 and |(0,3)-(0,0)|² = 9 -> mean 7 (summed over width, averaged over rows)
    close(Fn.squared_distance(t32([[1.0, 2.0], [0.0, 3.0]]), t32([[0.0, 0.0], [0.0, 0.0]])), 7.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_masked_mse_matches_numpy_and_ignores_padding(seed):
    rng = np.random.default_rng(seed)
    lengths, T = [4, 2, 1], 4
    s, t = rng.normal(size=(3, T, 5)).astype(np.float32), rng.normal(size=(3, T, 5)).astype(np.float32)
    mask = mask_from(lengths, T)
    out = Fn.masked_mse(t32(s), t32(t), mask)
    close(out, np_masked_mse(s.astype(np.float64), t.astype(np.float64), lengths))
    s2, t2 = s.copy(), t.copy()
    s2[1, 2:] = 100.0
    t2[2, 1:] = -50.0
    np.testing.assert_allclose(float(Fn.masked_mse(t32(s2), t32(t2), mask)), float(out), rtol=1e-6)
    # more padding changes nothing either
    s3 = np.concatenate([s, rng.normal(size=(3, 3, 5)).astype(np.float32)], axis=1)
    t3 = np.concatenate([t, rng.normal(size=(3, 3, 5)).astype(np.float32)], axis=1)
    np.testing.assert_allclose(float(Fn.masked_mse(t32(s3), t32(t3), mask_from(lengths, T + 3))), float(out), rtol=1e-6)


def test_masked_mse_hand_computed():
    # one real token with diff (1, 3): (1 + 9)/2 = 5; the padded token is ignored
    s = t32([[[1.0, 3.0], [7.0, 7.0]]])
    t = t32([[[0.0, 0.0], [0.0, 0.0]]])
    close(Fn.masked_mse(s, t, torch.tensor([[1, 0]])), 5.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_attention_mse_matches_numpy_and_ignores_padding(seed):
    rng = np.random.default_rng(seed)
    B, h, T, lengths = 3, 2, 5, [5, 3, 2]
    a_s, a_t = rand_attn(rng, B, h, T), rand_attn(rng, B, h, T)
    mask = mask_from(lengths, T)
    out = Fn.attention_mse(t32(a_s), t32(a_t), mask)
    close(out, np_attention_mse(a_s.astype(np.float64), a_t.astype(np.float64), lengths))
    s2 = a_s.copy()
    s2[1, :, 3:, :] = 9.0  # padded query rows
    s2[2, :, :, 2:] = -9.0  # padded key columns
    np.testing.assert_allclose(float(Fn.attention_mse(t32(s2), t32(a_t), mask)), float(out), rtol=1e-6)
    s4, t4 = rng.uniform(size=(B, h, 8, 8)), rng.uniform(size=(B, h, 8, 8))
    s4[:, :, :T, :T], t4[:, :, :T, :T] = a_s, a_t
    np.testing.assert_allclose(float(Fn.attention_mse(t32(s4), t32(t4), mask_from(lengths, 8))), float(out), rtol=1e-6)


def test_attention_mse_hand_computed():
    # 2 heads, 1 real token: per-head squared diffs 0.25 and 0.01 -> mean 0.13
    s = torch.zeros(1, 2, 2, 2)
    t = torch.zeros(1, 2, 2, 2)
    s[0, 0, 0, 0], s[0, 1, 0, 0] = 0.5, 0.1
    s[0, :, 1, :] = 3.0
    close(Fn.attention_mse(s, t, torch.tensor([[1, 0]])), 0.13)


@pytest.mark.parametrize("seed", SEEDS)
def test_cosine_loss_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    s, t = rng.normal(size=(4, 3, 5)).astype(np.float32), rng.normal(size=(4, 3, 5)).astype(np.float32)
    close(Fn.cosine_loss(t32(s), t32(t)), np_cosine_loss(s.astype(np.float64), t.astype(np.float64)))


def test_cosine_loss_hand_computed():
    close(Fn.cosine_loss(t32([[1.0, 0.0]]), t32([[0.0, 2.0]])), 1.0)
    close(Fn.cosine_loss(t32([[1.0, 1.0]]), t32([[3.0, 3.0]])), 0.0, atol=1e-6)
    close(Fn.cosine_loss(t32([[1.0, 0.0]]), t32([[-5.0, 0.0]])), 2.0)
    close(Fn.cosine_loss(t32([[1.0, 0.0], [1.0, 0.0]]), t32([[0.0, 1.0], [1.0, 0.0]])), 0.5)


# ============================================================================ annealing_factor
def test_annealing_factor_fourteen_epochs():
    vals = [Fn.annealing_factor(e, 14, 7.0) for e in range(14)]
    assert vals[0] == pytest.approx(1 / 7)
    assert vals[13] == pytest.approx(1.0)
    assert all(b >= a for a, b in zip(vals, vals[1:], strict=False))
    # τ_e = 7 − ⌊e/2⌋: e = 2 -> τ 6 -> φ 2/7; e = 7 -> τ 4 -> φ 4/7
    assert vals[2] == pytest.approx(2 / 7)
    assert vals[7] == pytest.approx(4 / 7)
    assert all(1 / 7 - 1e-12 <= v <= 1.0 + 1e-12 for v in vals)


def test_annealing_factor_short_phase():
    assert [Fn.annealing_factor(e, 3, 7.0) for e in range(3)] == pytest.approx([1 / 7, 3 / 7, 1.0])
    assert Fn.annealing_factor(0, 1, 7.0) == pytest.approx(1.0)  # a one-epoch phase is its last epoch
    with pytest.raises(ValueError):
        Fn.annealing_factor(0, 0, 7.0)


# ============================================================================ l2_normalize
@pytest.mark.parametrize("seed", SEEDS)
def test_l2_normalize(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, 4, 5)).astype(np.float32)
    out = Fn.l2_normalize(t32(x))
    assert out.dtype == torch.float32
    np.testing.assert_allclose(f64(out), np_l2n(x.astype(np.float64)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(f64(out), axis=-1), np.ones((3, 4)), rtol=1e-5)
    np.testing.assert_allclose(f64(Fn.l2_normalize(t32([[3.0, 4.0]]))), [[0.6, 0.8]], rtol=1e-6)
    assert torch.equal(Fn.l2_normalize(torch.zeros(1, 3)), torch.zeros(1, 3))  # no NaN on a zero vector
    assert Fn.l2_normalize(t32(x).bfloat16()).dtype == torch.float32


# ============================================================================ bfloat16 inputs
def _bf16_cases(rng):
    lengths, T = [4, 2], 4
    z1, z2 = rng.normal(size=(3, 5)) * 2, rng.normal(size=(3, 5)) * 2
    v1, v2 = rng.normal(size=(2, 3, 6)), rng.normal(size=(2, 3, 6))
    h1, h2 = rng.normal(size=(2, T, 6)), rng.normal(size=(2, T, 6))
    a1, a2 = rand_attn(rng, 2, 2, T), rand_attn(rng, 2, 2, T)
    mask = mask_from(lengths, T)
    return [
        ("kd_loss", lambda a, b: Fn.kd_loss(a, b, 2.0), z1, z2, lambda a, b: np_kd_per_example(a, b, 2.0).mean()),
        ("soft_ce", lambda a, b: Fn.soft_cross_entropy(a, b, 2.0), z1, z2, lambda a, b: np_soft_ce(a, b, 2.0)),
        ("pkd", Fn.pkd_loss, v1, v2, lambda a, b: ((np_l2n(a) - np_l2n(b)) ** 2).mean()),
        ("sqdist", Fn.squared_distance, v1, v2, lambda a, b: ((a - b) ** 2).sum(-1).mean()),
        ("cos", Fn.cosine_loss, v1, v2, np_cosine_loss),
        ("masked_mse", lambda a, b: Fn.masked_mse(a, b, mask), h1, h2, lambda a, b: np_masked_mse(a, b, lengths)),
        ("attn_mse", lambda a, b: Fn.attention_mse(a, b, mask), a1, a2, lambda a, b: np_attention_mse(a, b, lengths)),
        ("attn_kl", lambda a, b: Fn.attention_kl(a, b, mask), a1, a2, lambda a, b: np_attention_kl(a, b, lengths)),
    ]


@pytest.mark.parametrize("case", range(8))
def test_bfloat16_inputs_give_float32_results(case):
    name, fn, x, y, ref = _bf16_cases(np.random.default_rng(21))[case]
    xb, yb = t32(x).bfloat16(), t32(y).bfloat16()
    out = fn(xb, yb)
    assert out.dtype == torch.float32, name
    assert out.dim() == 0
    # the same math on the bf16-rounded values, in float64: only float32 rounding apart
    np.testing.assert_allclose(float(out), float(ref(f64(xb), f64(yb))), rtol=1e-4, atol=1e-6, err_msg=name)
    # and close to the float32-input result
    np.testing.assert_allclose(float(out), float(fn(t32(x), t32(y))), rtol=3e-2, atol=1e-3, err_msg=name)


# ============================================================================ autocast
def test_einsum_based_functions_stay_float32_under_autocast():
    # autocast runs matmuls (einsum) in bf16 whatever the operands' dtype; the functional core must not
    rng = np.random.default_rng(31)
    s, t = rng.normal(size=(2, 3, 64)).astype(np.float32) * 3, rng.normal(size=(2, 5, 64)).astype(np.float32) * 3
    zs, zt = rng.normal(size=(2, 3, 4)).astype(np.float32) * 3, rng.normal(size=(2, 5, 4)).astype(np.float32) * 3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        w = Fn.layer_attention(t32(s), t32(t), scale=True)
        fused = Fn.fuse_layers(w, t32(t))
        wo = Fn.output_attention(t32(zs), t32(zt))
    w_ref = np_softmax(np.einsum("bmd,bnd->bmn", s.astype(np.float64), t.astype(np.float64)) / 8.0)
    assert w.dtype == fused.dtype == wo.dtype == torch.float32
    np.testing.assert_allclose(f64(w), w_ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(f64(fused), np.einsum("bmn,bnd->bmd", w_ref, t.astype(np.float64)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f64(wo), np_softmax(np.einsum("bmc,bnc->bmn", zs.astype(np.float64), zt.astype(np.float64))),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("case", range(8))
def test_losses_float32_under_autocast(case):
    name, fn, x, y, ref = _bf16_cases(np.random.default_rng(22))[case]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fn(t32(x), t32(y))
    assert out.dtype == torch.float32, name
    np.testing.assert_allclose(float(out), float(ref(x.astype(np.float64), y.astype(np.float64))), rtol=1e-4, atol=1e-6)
