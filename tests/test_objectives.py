"""Every objective on hand-built Traces, against an independent NumPy (float64) computation of its
documented formula — projections included (their weights are read out of the module and applied
in NumPy). Also: gradients against finite differences, the pair checks, option parsing and the
needs declarations.

Layer maps are written out by hand here (e.g. uniform 4→2 = [2, 4]); nothing below calls the
functional core or ``layer_maps`` to compute an expected value.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from layerkd.data.batching import Batch
from layerkd.errors import ConfigError, PairError
from layerkd.models.base import ModelInfo
from layerkd.models.trace import Trace
from layerkd.objectives import OBJECTIVES
from layerkd.objectives.base import BuildContext, Needs
from layerkd.objectives.registry import build_objective, get_objective_class, parse_options


# ============================================================================ NumPy references
def np_log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def np_softmax(x):
    return np.exp(np_log_softmax(x))


def np_kd(zs, zt, T):
    """T²·KL(softmax(zt/T) ‖ softmax(zs/T)) per row."""
    lt, ls = np_log_softmax(zt / T), np_log_softmax(zs / T)
    return (np.exp(lt) * (lt - ls)).sum(axis=-1) * T * T


def np_l2n(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def np_masked_mse(s, t, lengths):
    return np.concatenate([((s[b, :n] - t[b, :n]) ** 2).ravel() for b, n in enumerate(lengths)]).mean()


def np_attention_mse(s, t, lengths):
    return np.concatenate([((s[b, :, :n, :n] - t[b, :, :n, :n]) ** 2).ravel() for b, n in enumerate(lengths)]).mean()


def np_attention_kl(a_s, a_t, lengths):
    vals = []
    for b, n in enumerate(lengths):
        t = a_t[b, :, :n, :n] / a_t[b, :, :n, :n].sum(-1, keepdims=True)
        s = a_s[b, :, :n, :n] / a_s[b, :, :n, :n].sum(-1, keepdims=True)
        vals.append((t * (np.log(t) - np.log(s))).sum(-1).ravel())
    return np.concatenate(vals).mean()


def np_cos_loss(s, t):
    return (1 - (s * t).sum(-1) / (np.linalg.norm(s, axis=-1) * np.linalg.norm(t, axis=-1))).mean()


# ============================================================================ builders
def t32(x) -> torch.Tensor:
    return torch.tensor(np.asarray(x), dtype=torch.float32)


def f64(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().numpy()


def r32(rng, *shape, scale=1.0) -> np.ndarray:
    """Random float32 values, returned as float64 (exactly the values the tensors will hold)."""
    return (rng.normal(size=shape) * scale).astype(np.float32).astype(np.float64)


def rand_attn(rng, B, h, T) -> np.ndarray:
    return np_softmax(rng.normal(size=(B, h, T, T)) * 2.0).astype(np.float32).astype(np.float64)


def mask_from(lengths, T) -> torch.Tensor:
    return (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).long()


def info(layers, hidden, *, heads=2, kind="transformer", tok="tok-A", labels=3) -> ModelInfo:
    return ModelInfo(kind=kind, num_layers=layers, hidden_size=hidden, num_labels=labels, tokenizer_fingerprint=tok,
                     num_heads=heads if kind == "transformer" else None)


_NO = object()


def make_ctx(m=2, d_s=4, n=4, d_t=6, *, student=None, teacher=_NO, labels=3, regression=False, head_layers=(),
             seed=0) -> BuildContext:
    return BuildContext(student=student or info(m, d_s, labels=labels),
                        teacher=info(n, d_t, labels=labels) if teacher is _NO else teacher,
                        num_labels=labels, regression=regression, seed=seed, teacher_head_layers=tuple(head_layers))


def build(name, options=None, **ctx_kw):
    torch.manual_seed(0)
    return build_objective(name, dict(options or {}), make_ctx(**ctx_kw))


def batch(B, labels=None) -> Batch:
    return Batch(index=torch.arange(B), labels=labels, inputs={})


def params(obj) -> dict[str, np.ndarray]:
    return {k: f64(v).copy() for k, v in obj.named_parameters()}


def value(obj, s, t, b) -> float:
    out = obj(s, t, b)
    assert out.dim() == 0 and out.dtype == torch.float32
    return float(out.detach())


def assert_close(actual: float, expected: float, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(actual, float(expected), rtol=rtol, atol=atol)


@dataclass
class VecPair:
    """Layer-vector traces ``[B, L+1, d]`` (as a cache or a BiLSTM would supply them)."""

    s: Trace
    t: Trace
    vs: np.ndarray
    vt: np.ndarray


def vec_pair(seed, B=4, m=2, d_s=4, n=4, d_t=6, pooling="cls", scale=1.0) -> VecPair:
    rng = np.random.default_rng(seed)
    vs, vt = r32(rng, B, m + 1, d_s, scale=scale), r32(rng, B, n + 1, d_t, scale=scale)
    return VecPair(Trace(pooled={pooling: t32(vs)}), Trace(pooled={pooling: t32(vt)}), vs, vt)


@dataclass
class TokPair:
    """All-token traces: hidden states, attention probabilities and a padding mask."""

    s: Trace
    t: Trace
    hs: list
    ht: list
    a_s: list
    a_t: list
    lengths: list


def tok_traces(hs, ht, a_s, a_t, lengths):
    T = hs[0].shape[1]
    mask = mask_from(lengths, T)
    s = Trace(hidden_states=tuple(t32(x) for x in hs), attentions=tuple(t32(x) for x in a_s), attention_mask=mask)
    t = Trace(hidden_states=tuple(t32(x) for x in ht), attentions=tuple(t32(x) for x in a_t), attention_mask=mask)
    return s, t


def tok_pair(seed, B=3, T=5, lengths=(5, 3, 2), m=2, d_s=4, n=4, d_t=6, h=2) -> TokPair:
    rng = np.random.default_rng(seed)
    hs = [r32(rng, B, T, d_s) for _ in range(m + 1)]
    ht = [r32(rng, B, T, d_t) for _ in range(n + 1)]
    a_s = [rand_attn(rng, B, h, T) for _ in range(m)]
    a_t = [rand_attn(rng, B, h, T) for _ in range(n)]
    s, t = tok_traces(hs, ht, a_s, a_t, list(lengths))
    return TokPair(s, t, hs, ht, a_s, a_t, list(lengths))


def repad(p: TokPair, rng) -> TokPair:
    """The same real tokens with other values at every padded position (states, query rows, key columns)."""
    def junk(x, seq_axis_sets):
        x = x.copy()
        for b, n in enumerate(p.lengths):
            for axes in seq_axis_sets:
                idx = [b] + [slice(None)] * (x.ndim - 1)
                idx[axes] = slice(n, None)
                x[tuple(idx)] = rng.uniform(0.05, 3.0, size=x[tuple(idx)].shape)
        return x

    hs = [junk(x, [1]) for x in p.hs]
    ht = [junk(x, [1]) for x in p.ht]
    a_s = [junk(x, [2, 3]) for x in p.a_s]
    a_t = [junk(x, [2, 3]) for x in p.a_t]
    s, t = tok_traces(hs, ht, a_s, a_t, p.lengths)
    return TokPair(s, t, hs, ht, a_s, a_t, p.lengths)


def check_grads(obj, ref, s, t, b, *, entries=3, rtol=2e-3, atol=2e-5):
    """Autograd vs (1) central differences of the float64 NumPy reference (eps 1e-6) and (2) central
    differences of the objective itself with the parameter perturbed in float32 (eps 1e-3); and every
    trainable parameter receives a non-zero gradient."""
    named = dict(obj.named_parameters())
    assert named, "objective has no trainable parameters"
    obj.zero_grad()
    obj(s, t, b).backward()
    P = params(obj)
    rng = np.random.default_rng(0)
    for name, p in named.items():
        assert p.grad is not None, f"no gradient reaches {name}"
        assert float(p.grad.abs().sum()) > 0, f"zero gradient for {name}"
        g = f64(p.grad)
        for _ in range(entries):
            idx = tuple(int(rng.integers(0, k)) for k in p.shape)
            eps = 1e-6
            hi, lo = {k: v.copy() for k, v in P.items()}, {k: v.copy() for k, v in P.items()}
            hi[name][idx] += eps
            lo[name][idx] -= eps
            fd = (ref(hi) - ref(lo)) / (2 * eps)
            assert abs(g[idx] - fd) <= atol + rtol * abs(fd), (name, idx, g[idx], fd)
            with torch.no_grad():
                orig = p[idx].item()
                p[idx] = orig + 1e-3
                up = float(obj(s, t, b))
                p[idx] = orig - 1e-3
                down = float(obj(s, t, b))
                p[idx] = orig
            fd32 = (up - down) / 2e-3
            assert abs(g[idx] - fd32) <= 2e-3 + 2e-2 * abs(fd32), (name, idx, g[idx], fd32)


# ============================================================================ ce
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_ce_classification(smoothing):
    rng = np.random.default_rng(0)
    z, y = r32(rng, 5, 3, scale=2), np.array([0, 2, 1, 1, 0])
    obj = build("ce", {"label_smoothing": smoothing})
    ls = np_log_softmax(z)
    nll = -ls[np.arange(5), y]
    expected = ((1 - smoothing) * nll + smoothing * (-ls.mean(axis=-1))).mean()
    assert_close(value(obj, Trace(logits=t32(z)), None, batch(5, torch.tensor(y))), expected)


def test_ce_hand_computed_and_regression():
    obj = build("ce")
    # logits (ln 3, 0) with label 0: -ln(3/4)
    assert_close(value(obj, Trace(logits=t32([[math.log(3.0), 0.0]])), None, batch(1, torch.tensor([0]))), -math.log(0.75))
    reg = build("ce", regression=True, labels=1)
    z, y = np.array([[1.0], [2.5], [-1.0]]), np.array([0.5, 2.5, 1.0])
    assert_close(value(reg, Trace(logits=t32(z)), None, batch(3, t32(y))), ((z[:, 0] - y) ** 2).mean())  # (0.25+0+4)/3
    with pytest.raises(RuntimeError, match="gold labels"):
        obj(Trace(logits=t32(z)), None, batch(3))


# ============================================================================ kd
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
def test_kd_classification(seed, T):
    rng = np.random.default_rng(seed)
    zs, zt = r32(rng, 6, 3, scale=2), r32(rng, 6, 3, scale=2)
    obj = build("kd", {"temperature": T})
    assert_close(value(obj, Trace(logits=t32(zs)), Trace(logits=t32(zt)), batch(6)), np_kd(zs, zt, T).mean())


def test_kd_regression_is_mse():
    zs, zt = np.array([[1.0], [2.0], [0.0]]), np.array([[0.0], [2.0], [3.0]])
    obj = build("kd", {"temperature": 4.0}, regression=True, labels=1)
    assert_close(value(obj, Trace(logits=t32(zs)), Trace(logits=t32(zt)), batch(3)), (1 + 0 + 9) / 3)


# ============================================================================ pkd
def ref_pkd(P, vs, vt, t_layers, normalize):
    s = vs[:, [1, 2]]  # student layers 1..m-1 for m = 3
    if "proj.weight" in P:
        s = s @ P["proj.weight"].T
    t = vt[:, t_layers]
    if normalize:
        s, t = np_l2n(s), np_l2n(t)
    return ((s - t) ** 2).mean()


PKD_MAPS = {"skip": [2, 4], "last": [4, 5]}  # 6 -> 3 by hand: skip round(i*6/3); last n-m+1..n-1


@pytest.mark.parametrize("mapping", ["skip", "last"])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("widths", [(5, 5), (4, 6)])
def test_pkd(mapping, normalize, widths):
    d_s, d_t = widths
    p = vec_pair(0, m=3, d_s=d_s, n=6, d_t=d_t)
    obj = build("pkd", {"mapping": mapping, "normalize": normalize}, m=3, d_s=d_s, n=6, d_t=d_t)
    P = params(obj)
    if d_s == d_t:
        assert P == {}  # no projection when widths agree
    else:
        assert P["proj.weight"].shape == (d_t, d_s)
    assert_close(value(obj, p.s, p.t, batch(4)), ref_pkd(P, p.vs, p.vt, PKD_MAPS[mapping], normalize))


def test_pkd_mean_pooling_reads_mean_vectors():
    p = vec_pair(1, m=3, d_s=5, n=6, d_t=5, pooling="mean")
    obj = build("pkd", {"pooling": "mean"}, m=3, d_s=5, n=6, d_t=5)
    assert_close(value(obj, p.s, p.t, batch(4)), ref_pkd({}, p.vs, p.vt, [2, 4], True))
    assert obj.needs.teacher_poolings == frozenset({"mean"})


def test_pkd_gradients():
    p = vec_pair(2, m=3, d_s=4, n=6, d_t=6)
    obj = build("pkd", {}, m=3, d_s=4, n=6, d_t=6)
    check_grads(obj, lambda P: ref_pkd(P, p.vs, p.vt, [2, 4], True), p.s, p.t, batch(4))


# ============================================================================ tinybert
HID_MAP = [(0, 0), (1, 2), (2, 4)]  # uniform 4 -> 2 with embeddings
ATT_MAP = [(0, 1), (1, 3)]  # student attention of layer i ↔ teacher layer 2i (0-based tuple index)


def ref_tinybert(P, p: TokPair, hidden=True, attention=True, embeddings=True):
    total = 0.0
    W = P.get("fit_dense.weight")
    if hidden:
        for i, j in HID_MAP[(0 if embeddings else 1):]:
            s = p.hs[i] @ W.T if W is not None else p.hs[i]
            total += np_masked_mse(s, p.ht[j], p.lengths)
    if attention:
        for i, j in ATT_MAP:
            total += np_attention_mse(p.a_s[i], p.a_t[j], p.lengths)
    return total


@pytest.mark.parametrize("opts", [{}, {"attention": False}, {"hidden": False}, {"embeddings": False}])
def test_tinybert(opts):
    p = tok_pair(0)
    obj = build("tinybert", opts)
    P = params(obj)
    assert P["fit_dense.weight"].shape == (6, 4)
    expected = ref_tinybert(P, p, opts.get("hidden", True), opts.get("attention", True), opts.get("embeddings", True))
    assert_close(value(obj, p.s, p.t, batch(3)), expected)


def test_tinybert_same_width_has_no_projection():
    p = tok_pair(1, d_s=6, d_t=6)
    obj = build("tinybert", {}, d_s=6, d_t=6)
    assert params(obj) == {}
    assert_close(value(obj, p.s, p.t, batch(3)), ref_tinybert({}, p))


def test_tinybert_masked_positions_change_nothing():
    p = tok_pair(2)
    obj = build("tinybert")
    base = value(obj, p.s, p.t, batch(3))
    q = repad(p, np.random.default_rng(5))
    assert not np.allclose(q.hs[2], p.hs[2])  # the padded values really changed
    assert_close(value(obj, q.s, q.t, batch(3)), base, rtol=1e-6)


def test_tinybert_gradients():
    p = tok_pair(3)
    obj = build("tinybert")
    check_grads(obj, lambda P: ref_tinybert(P, p), p.s, p.t, batch(3))


# ============================================================================ ckd
CKD_GROUPS = {"no": [[1, 2, 3], [4, 5, 6]], "po": [[1, 2, 3, 4], [3, 4, 5, 6]]}  # 6 -> 2 by hand


def ref_ckd(P, vs, vt, groups, normalize):
    total = 0.0
    for i, g in enumerate(groups):
        s = vs[:, i + 1] @ P[f"proj.{i}.weight"].T
        t = np.concatenate([vt[:, j] for j in g], axis=-1)  # concatenation in layer order
        if normalize:
            s, t = np_l2n(s), np_l2n(t)
        total += ((s - t) ** 2).mean()
    return total


@pytest.mark.parametrize("buckets", ["no", "po"])
@pytest.mark.parametrize("normalize", [True, False])
def test_ckd(buckets, normalize):
    p = vec_pair(0, m=2, d_s=4, n=6, d_t=3)
    obj = build("ckd", {"buckets": buckets, "normalize": normalize}, m=2, d_s=4, n=6, d_t=3)
    P = params(obj)
    for i, g in enumerate(CKD_GROUPS[buckets]):
        assert P[f"proj.{i}.weight"].shape == (len(g) * 3, 4)  # student projected up to the concatenation
    assert_close(value(obj, p.s, p.t, batch(4)), ref_ckd(P, p.vs, p.vt, CKD_GROUPS[buckets], normalize))


def test_ckd_concatenation_order_matters():
    # swapping two teacher layers inside a bucket changes the target (concatenation, not a sum)
    p = vec_pair(1, m=2, d_s=4, n=6, d_t=3)
    obj = build("ckd", {}, m=2, d_s=4, n=6, d_t=3)
    vt2 = p.vt.copy()
    vt2[:, [1, 2]] = p.vt[:, [2, 1]]
    base, swapped = value(obj, p.s, p.t, batch(4)), value(obj, p.s, Trace(pooled={"cls": t32(vt2)}), batch(4))
    assert_close(swapped, ref_ckd(params(obj), p.vs, vt2, CKD_GROUPS["no"], True))
    assert abs(base - swapped) > 1e-4


@pytest.mark.parametrize("buckets", ["no", "po"])
def test_ckd_gradients(buckets):
    p = vec_pair(2, m=2, d_s=4, n=6, d_t=3)
    obj = build("ckd", {"buckets": buckets}, m=2, d_s=4, n=6, d_t=3)
    check_grads(obj, lambda P: ref_ckd(P, p.vs, p.vt, CKD_GROUPS[buckets], True), p.s, p.t, batch(4))


# ============================================================================ alp
ALP_ALLOWED = {  # 6 -> 2 by hand
    "all": np.ones((2, 6), dtype=bool),
    "no": np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=bool),
    "po": np.array([[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1]], dtype=bool),
}


def ref_alp_parts(P, vs, vt, allowed, scale, first_teacher=1):
    s = vs[:, 1:3]
    if "proj.weight" in P:
        s = s @ P["proj.weight"].T
    t = vt[:, first_teacher:]
    logits = np.einsum("bmd,bnd->bmn", s, t)
    if scale:
        logits = logits / math.sqrt(s.shape[-1])
    w = np_softmax(np.where(allowed[None], logits, -np.inf))
    return s, t, w


def ref_alp(P, vs, vt, allowed, scale, normalize, first_teacher=1):
    s, t, w = ref_alp_parts(P, vs, vt, allowed, scale, first_teacher)
    fused = np.einsum("bmn,bnd->bmd", w, t)
    if normalize:
        s, fused = np_l2n(s), np_l2n(fused)
    return ((s - fused) ** 2).mean(axis=(0, 2)).sum()  # MSE per student layer, summed


@pytest.mark.parametrize("buckets", ["all", "no", "po"])
@pytest.mark.parametrize("scale", [False, True])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("widths", [(5, 5), (4, 5)])
def test_alp(buckets, scale, normalize, widths):
    d_s, d_t = widths
    p = vec_pair(0, m=2, d_s=d_s, n=6, d_t=d_t, scale=0.5)
    obj = build("alp", {"buckets": buckets, "scale": scale, "normalize": normalize}, m=2, d_s=d_s, n=6, d_t=d_t)
    P = params(obj)
    assert (P == {}) == (d_s == d_t)
    assert_close(value(obj, p.s, p.t, batch(4)), ref_alp(P, p.vs, p.vt, ALP_ALLOWED[buckets], scale, normalize))


@pytest.mark.parametrize("buckets", ["all", "po"])
def test_alp_layer_weights(buckets):
    p = vec_pair(1, m=2, d_s=4, n=6, d_t=5)
    obj = build("alp", {"buckets": buckets, "scale": True}, m=2, d_s=4, n=6, d_t=5)
    w = f64(obj.layer_weights(p.s, p.t))
    assert w.shape == (4, 2, 6)
    np.testing.assert_allclose(w.sum(-1), np.ones((4, 2)), atol=1e-6)
    _, _, w_ref = ref_alp_parts(params(obj), p.vs, p.vt, ALP_ALLOWED[buckets], True)
    np.testing.assert_allclose(w, w_ref, rtol=1e-5, atol=1e-7)
    assert np.all(w[:, ~ALP_ALLOWED[buckets]] == 0.0)
    assert np.abs(w[0] - w[1]).max() > 1e-3  # weights are per example
    assert obj.diagnostic_axes() == {"student": [1, 2], "teacher": [1, 2, 3, 4, 5, 6]}


def test_alp_include_embeddings():
    p = vec_pair(2, m=2, d_s=5, n=6, d_t=5, scale=0.5)
    obj = build("alp", {"buckets": "no", "include_embeddings": True, "scale": True}, m=2, d_s=5, n=6, d_t=5)
    allowed = np.array([[1, 1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1]], dtype=bool)  # layer 0 joins bucket 1
    assert_close(value(obj, p.s, p.t, batch(4)), ref_alp({}, p.vs, p.vt, allowed, True, False, first_teacher=0))
    assert obj.diagnostic_axes()["teacher"] == [0, 1, 2, 3, 4, 5, 6]


def test_alp_detach_weights_same_value_different_gradient():
    p = vec_pair(3, m=2, d_s=4, n=6, d_t=5)
    grads = []
    for detach in (False, True):
        obj = build("alp", {"detach_weights": detach, "scale": True}, m=2, d_s=4, n=6, d_t=5)
        loss = obj(p.s, p.t, batch(4))
        assert_close(float(loss.detach()), ref_alp(params(obj), p.vs, p.vt, ALP_ALLOWED["all"], True, False))
        loss.backward()
        grads.append(f64(obj.proj.weight.grad))
    assert np.abs(grads[0] - grads[1]).max() > 1e-5


@pytest.mark.parametrize("buckets", ["all", "no"])
def test_alp_gradients(buckets):
    p = vec_pair(4, m=2, d_s=4, n=6, d_t=5)
    obj = build("alp", {"buckets": buckets, "scale": True}, m=2, d_s=4, n=6, d_t=5)
    check_grads(obj, lambda P: ref_alp(P, p.vs, p.vt, ALP_ALLOWED[buckets], True, False), p.s, p.t, batch(4))


# ============================================================================ rail
def ref_rail(P, vs, vt, draw, variant, normalize=True, s_layers=(1, 2)):
    s, t = vs[:, list(s_layers)], vt[:, list(draw)]
    if variant == "layerwise":
        ps = np.stack([s[:, i] @ P["proj_s.weight"][i] for i in range(len(s_layers))], axis=1)
        pt = np.stack([t[:, i] @ P["proj_t.weight"][i] for i in range(len(s_layers))], axis=1)
    else:
        ps = s.reshape(len(s), -1) @ P["proj_s.weight"].T
        pt = t.reshape(len(t), -1) @ P["proj_t.weight"].T
    if normalize:
        ps, pt = np_l2n(ps), np_l2n(pt)
    d = ((ps - pt) ** 2).sum(axis=-1)  # squared distance over the width
    return d.mean(axis=0).sum()  # layerwise: mean over batch per layer, summed; concat: mean over batch


RAIL_KW = dict(m=2, d_s=4, n=6, d_t=5)


def assert_valid_draw(draw, pool, k=2):
    assert len(draw) == k and len(set(draw)) == k and draw == sorted(draw) and set(draw) <= set(pool)


@pytest.mark.parametrize("variant", ["layerwise", "concat"])
@pytest.mark.parametrize("normalize", [True, False])
def test_rail(variant, normalize):
    p = vec_pair(0, pooling="mean", **{k: v for k, v in RAIL_KW.items()})
    obj = build("rail", {"variant": variant, "proj_dim": 3, "normalize": normalize}, **RAIL_KW)
    P = params(obj)
    if variant == "layerwise":
        assert P["proj_s.weight"].shape == (2, 4, 3) and P["proj_t.weight"].shape == (2, 5, 3)
    else:
        assert P["proj_s.weight"].shape == (3, 8) and P["proj_t.weight"].shape == (3, 10)
    for epoch in (0, 3):
        obj.start_epoch(epoch)
        assert_valid_draw(obj.draw, range(1, 7))
        assert_close(value(obj, p.s, p.t, batch(4)), ref_rail(P, p.vs, p.vt, obj.draw, variant, normalize))


def test_rail_loss_follows_the_draw():
    p = vec_pair(1, pooling="mean", **RAIL_KW)
    obj = build("rail", {"proj_dim": 3}, **RAIL_KW)
    losses = {}
    for e in range(12):
        obj.start_epoch(e)
        losses[tuple(obj.draw)] = value(obj, p.s, p.t, batch(4))
    assert len(losses) > 1 and len(set(np.round(list(losses.values()), 6))) == len(losses)


def test_rail_draw_changes_by_epoch_and_is_reproducible():
    def draws(seed_opt=None, ctx_seed=0, epochs=range(15)):
        opts = {"proj_dim": 3} | ({} if seed_opt is None else {"seed": seed_opt})
        obj = build("rail", opts, seed=ctx_seed, **RAIL_KW)
        out = []
        for e in epochs:
            log = obj.start_epoch(e)
            assert log == {"draw": obj.draw, "resample": "epoch"}
            assert_valid_draw(obj.draw, range(1, 7))
            out.append(tuple(obj.draw))
        assert obj.history == {e: list(d) for e, d in zip(epochs, out, strict=True)}
        return out

    a = draws()
    assert len(set(a)) > 1  # the draw changes between epochs
    assert draws() == a  # same seed: same draws
    assert draws(ctx_seed=7) != a  # the run's seed matters
    assert draws(seed_opt=7, ctx_seed=0) == draws(ctx_seed=7)  # options.seed overrides the run's seed
    # the draw of an epoch depends on (seed, epoch) only, not on what happened before
    assert draws(epochs=[9, 3]) == [a[9], a[3]]


def test_rail_pool_covers_all_teacher_layers_and_intermediate_excludes_last():
    obj = build("rail", {"proj_dim": 3}, **RAIL_KW)
    seen = set()
    for e in range(60):
        obj.start_epoch(e)
        seen.update(obj.draw)
    assert seen == {1, 2, 3, 4, 5, 6}
    obj = build("rail", {"proj_dim": 3, "teacher_pool": "intermediate", "student_layers": "intermediate"}, m=3, d_s=4, n=6, d_t=5)
    seen = set()
    for e in range(60):
        obj.start_epoch(e)
        assert_valid_draw(obj.draw, range(1, 6))
        seen.update(obj.draw)
    assert seen == {1, 2, 3, 4, 5}
    p = vec_pair(2, pooling="mean", m=3, d_s=4, n=6, d_t=5)
    assert_close(value(obj, p.s, p.t, batch(4)), ref_rail(params(obj), p.vs, p.vt, obj.draw, "layerwise"))


def test_rail_resample_batch():
    obj = build("rail", {"proj_dim": 3, "resample": "batch"}, **RAIL_KW)
    obj.start_epoch(0)
    steps = []
    for _ in range(10):
        obj.start_step()
        assert_valid_draw(obj.draw, range(1, 7))
        steps.append(tuple(obj.draw))
    assert len(set(steps)) > 1
    epoch_obj = build("rail", {"proj_dim": 3}, **RAIL_KW)
    epoch_obj.start_epoch(0)
    before = list(epoch_obj.draw)
    for _ in range(5):
        epoch_obj.start_step()
    assert epoch_obj.draw == before  # resample: epoch keeps the draw for the whole epoch
    # a batch-resampling run is reproducible too
    again = build("rail", {"proj_dim": 3, "resample": "batch"}, **RAIL_KW)
    again.start_epoch(0)
    redo = []
    for _ in range(10):
        again.start_step()
        redo.append(tuple(again.draw))
    assert redo == steps


def test_rail_extra_state_round_trip():
    obj = build("rail", {"proj_dim": 3, "resample": "batch"}, **RAIL_KW)
    obj.start_epoch(0)
    obj.start_epoch(1)
    obj.start_step()
    obj.start_step()
    state = json.loads(json.dumps(obj.extra_state_dict()))  # must survive a JSON checkpoint
    expected_next = []
    for _ in range(6):
        obj.start_step()
        expected_next.append(list(obj.draw))
    fresh = build("rail", {"proj_dim": 3, "resample": "batch"}, **RAIL_KW)
    fresh.start_epoch(5)  # some other state, to be overwritten
    fresh.load_extra_state_dict(state)
    assert fresh.draw == state["draw"]
    assert fresh.history == {0: obj.history[0], 1: obj.history[1]}
    got = []
    for _ in range(6):
        fresh.start_step()
        got.append(list(fresh.draw))
    assert got == expected_next
    fresh.load_extra_state_dict({})  # an empty state (old checkpoint) is a no-op
    assert fresh.draw == got[-1]


@pytest.mark.parametrize("variant", ["layerwise", "concat"])
def test_rail_gradients(variant):
    p = vec_pair(3, pooling="mean", **RAIL_KW)
    obj = build("rail", {"variant": variant, "proj_dim": 3}, **RAIL_KW)
    obj.start_epoch(2)
    check_grads(obj, lambda P: ref_rail(P, p.vs, p.vt, obj.draw, variant), p.s, p.t, batch(4))


# ============================================================================ universal
@dataclass
class OutPair:
    s: Trace
    t: Trace
    vs: np.ndarray
    zs: np.ndarray
    zh: np.ndarray
    zt: np.ndarray


def out_pair(seed, B=4, m=3, d_s=4, n_heads=3, C=3) -> OutPair:
    """Student: layer vectors + final logits; teacher: pseudo-classifier outputs + final logits."""
    rng = np.random.default_rng(seed)
    vs, zs = r32(rng, B, m + 1, d_s), r32(rng, B, C)
    zh, zt = r32(rng, B, n_heads, C), r32(rng, B, C)
    s = Trace(logits=t32(zs), pooled={"cls": t32(vs)})
    t = Trace(logits=t32(zt), head_logits=t32(zh), head_layers=tuple(range(1, n_heads + 1)))
    return OutPair(s, t, vs, zs, zh, zt)


def ref_universal(P, p: OutPair, *, attention="logits", include_final=True, T=1.0, regression=False, s_layers=(1, 2),
                  head_ce=0.0, labels=None):
    W, b = P["heads.weight"], P["heads.bias"]
    zs = [p.vs[:, layer] @ W[k] + b[k] for k, layer in enumerate(s_layers)]
    zs_heads = np.stack(zs, axis=1)
    if include_final:
        zs.append(p.zs)
    zs = np.stack(zs, axis=1)  # [B, m', C]
    zt = np.concatenate([p.zh, p.zt[:, None]], axis=1) if include_final else p.zh
    w = np_softmax(np.einsum("bmc,bnc->bmn", zs, zt))
    m_q, n_k = zs.shape[1], zt.shape[1]
    if attention == "logits":
        fused = np.einsum("bmn,bnc->bmc", w, zt)
        if regression:
            loss = sum(((zs[:, i] - fused[:, i]) ** 2).mean() for i in range(m_q))
        else:
            loss = sum(np_kd(zs[:, i], fused[:, i], T).mean() for i in range(m_q))
    else:
        loss = 0.0
        for i in range(m_q):
            per = np.stack([((zs[:, i] - zt[:, j]) ** 2).mean(-1) if regression else np_kd(zs[:, i], zt[:, j], T)
                            for j in range(n_k)], axis=1)  # [B, n']
            loss += (w[:, i] * per).sum(-1).mean()
    if head_ce:
        ls = np_log_softmax(zs_heads)
        loss += head_ce * -np.mean([ls[bb, k, labels[bb]] for bb in range(len(labels)) for k in range(len(s_layers))])
    return loss


UNI_KW = dict(m=3, d_s=4, n=4, d_t=6, head_layers=(1, 2, 3))


def _universal(opts, rng_seed=0, **kw):
    obj = build("universal", {"head_dropout": 0.0} | opts, **(UNI_KW | kw))
    with torch.no_grad():  # heads big enough that the attention is not uniform
        obj.heads.weight.copy_(t32(np.random.default_rng(rng_seed + 100).normal(size=obj.heads.weight.shape)))
        obj.heads.bias.copy_(t32(np.random.default_rng(rng_seed + 200).normal(size=obj.heads.bias.shape) * 0.5))
    return obj


@pytest.mark.parametrize("attention", ["logits", "losses"])
@pytest.mark.parametrize("include_final", [True, False])
@pytest.mark.parametrize("T", [1.0, 2.0])
def test_universal(attention, include_final, T):
    p = out_pair(0)
    obj = _universal({"attention": attention, "include_final": include_final, "temperature": T})
    P = params(obj)
    assert P["heads.weight"].shape == (2, 4, 3) and P["heads.bias"].shape == (2, 3)
    expected = ref_universal(P, p, attention=attention, include_final=include_final, T=T)
    assert_close(value(obj, p.s, p.t, batch(4)), expected)
    w = f64(obj.layer_weights(p.s, p.t))
    assert w.shape == (4, 3 if include_final else 2, 4 if include_final else 3)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
    assert obj.diagnostic_axes() == ({"student": [1, 2, 3], "teacher": [1, 2, 3, 4]} if include_final
                                     else {"student": [1, 2], "teacher": [1, 2, 3]})


@pytest.mark.parametrize("attention", ["logits", "losses"])
def test_universal_regression(attention):
    p = out_pair(1, C=1)
    obj = _universal({"attention": attention}, regression=True, labels=1)
    assert_close(value(obj, p.s, p.t, batch(4)), ref_universal(params(obj), p, attention=attention, regression=True))


def test_universal_head_ce():
    p = out_pair(2)
    y = np.array([0, 2, 1, 0])
    obj = _universal({"head_ce": 0.5})
    expected = ref_universal(params(obj), p, head_ce=0.5, labels=y)
    assert_close(value(obj, p.s, p.t, batch(4, torch.tensor(y))), expected)
    assert abs(expected - ref_universal(params(obj), p)) > 1e-3


def test_universal_all_student_layers():
    p = out_pair(3)
    obj = _universal({"student_layers": "all"})
    assert params(obj)["heads.weight"].shape == (3, 4, 3)
    # layer 3 is answered by its own head (not the final logits); the teacher still adds its final classifier
    P = params(obj)
    W, b = P["heads.weight"], P["heads.bias"]
    zs = np.stack([p.vs[:, layer] @ W[k] + b[k] for k, layer in enumerate((1, 2, 3))], axis=1)
    zt = np.concatenate([p.zh, p.zt[:, None]], axis=1)
    w = np_softmax(np.einsum("bmc,bnc->bmn", zs, zt))
    fused = np.einsum("bmn,bnc->bmc", w, zt)
    assert_close(value(obj, p.s, p.t, batch(4)), sum(np_kd(zs[:, i], fused[:, i], 1.0).mean() for i in range(3)))
    assert obj.diagnostic_axes() == {"student": [1, 2, 3], "teacher": [1, 2, 3, 4]}


@pytest.mark.parametrize("attention", ["logits", "losses"])
def test_universal_gradients(attention):
    p = out_pair(4)
    obj = _universal({"attention": attention, "temperature": 2.0})
    check_grads(obj, lambda P: ref_universal(P, p, attention=attention, T=2.0), p.s, p.t, batch(4))


# ============================================================================ internal
INT_MAP = {1: 2, 2: 4}  # uniform 4 -> 2


def ref_internal(P, p: TokPair, active, kl_w=1.0, cos_w=1.0):
    total = 0.0
    W = P.get("proj.weight")
    for i in active:
        total += kl_w * np_attention_kl(p.a_s[i - 1], p.a_t[INT_MAP[i] - 1], p.lengths)
        s = p.hs[i][:, 0] @ W.T if W is not None else p.hs[i][:, 0]  # [CLS] vector, projected
        total += cos_w * np_cos_loss(s, p.ht[INT_MAP[i]][:, 0])
    return total


@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.5, 2.0)])
def test_internal(weights):
    p = tok_pair(0)
    obj = build("internal", {"kl_weight": weights[0], "cos_weight": weights[1], "schedule": "none"})
    P = params(obj)
    assert P["proj.weight"].shape == (6, 4)
    assert_close(value(obj, p.s, p.t, batch(3)), ref_internal(P, p, [1, 2], *weights))


def test_internal_phase_layers():
    p = tok_pair(1)
    obj = build("internal")
    P = params(obj)
    full = value(obj, p.s, p.t, batch(3))
    obj.set_phase_options(layers=[1])
    only1 = value(obj, p.s, p.t, batch(3))
    assert_close(only1, ref_internal(P, p, [1]))
    obj.set_phase_options(layers=[2])
    assert_close(value(obj, p.s, p.t, batch(3)), ref_internal(P, p, [2]))
    obj.set_phase_options(layers="all")
    assert_close(value(obj, p.s, p.t, batch(3)), full)
    assert_close(full, ref_internal(P, p, [1, 2]))
    built = build("internal", {"layers": [2]})
    assert_close(value(built, p.s, p.t, batch(3)), ref_internal(params(built), p, [2]))
    for bad in ([3], [0], [1, 5]):
        with pytest.raises(PairError, match="out of range 1..2"):
            obj.set_phase_options(layers=bad)
    with pytest.raises(PairError, match="unknown phase option 'depth'"):
        obj.set_phase_options(depth=1)
    with pytest.raises(PairError, match="out of range"):
        build("internal", {"layers": [3]})


def test_internal_padding_and_single_terms():
    p = tok_pair(2)
    obj = build("internal")
    base = value(obj, p.s, p.t, batch(3))
    q = repad(p, np.random.default_rng(9))
    assert_close(value(obj, q.s, q.t, batch(3)), base, rtol=1e-6)
    kl_only = build("internal", {"cos_weight": 0.0})
    assert params(kl_only)["proj.weight"].shape == (6, 4)
    expected_kl = sum(np_attention_kl(p.a_s[i - 1], p.a_t[INT_MAP[i] - 1], p.lengths) for i in (1, 2))
    assert_close(value(kl_only, p.s, p.t, batch(3)), expected_kl)
    same_width = tok_pair(3, d_s=6, d_t=6)
    cos_only = build("internal", {"kl_weight": 0.0}, d_s=6, d_t=6)
    assert params(cos_only) == {}
    expected_cos = sum(np_cos_loss(same_width.hs[i][:, 0], same_width.ht[INT_MAP[i]][:, 0]) for i in (1, 2))
    assert_close(value(cos_only, same_width.s, same_width.t, batch(3)), expected_cos)


def test_internal_mean_pooling_matches_masked_token_means():
    """pooling: mean — the cosine term reads each layer's mean over the real tokens (padding left out)."""
    obj = build("internal", {"kl_weight": 0.0, "pooling": "mean"}, d_s=6, d_t=6)
    assert obj.needs.teacher_poolings == frozenset({"mean"})
    q = tok_pair(5, d_s=6, d_t=6)

    def masked_mean(h):
        return np.stack([h[b, :n].mean(axis=0) for b, n in enumerate(q.lengths)])

    expected = sum(np_cos_loss(masked_mean(q.hs[i]), masked_mean(q.ht[INT_MAP[i]])) for i in (1, 2))
    assert_close(value(obj, q.s, q.t, batch(3)), expected)
    cls_value = value(build("internal", {"kl_weight": 0.0}, d_s=6, d_t=6), q.s, q.t, batch(3))
    assert abs(cls_value - expected) > 1e-3  # the option changes what is matched
    r = repad(q, np.random.default_rng(3))
    assert_close(value(obj, r.s, r.t, batch(3)), expected, rtol=1e-6)


def test_internal_gradients():
    p = tok_pair(4)
    obj = build("internal")
    check_grads(obj, lambda P: ref_internal(P, p, [1, 2]), p.s, p.t, batch(3))


# ============================================================================ dih
@pytest.mark.parametrize("include_final", [True, False])
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_dih(include_final, reduce):
    p = out_pair(0)
    obj = build("dih", {"include_final": include_final, "reduce": reduce, "temperature": 4.0}, **UNI_KW)
    targets = [p.zh[:, j] for j in range(3)] + ([p.zt] if include_final else [])
    terms = [np_kd(p.zs, z, 4.0).mean() for z in targets]
    expected = sum(terms) / (len(terms) if reduce == "mean" else 1)
    assert params(obj) == {}
    assert_close(value(obj, p.s, p.t, batch(4)), expected)


def test_dih_regression():
    p = out_pair(1, C=1)
    obj = build("dih", {}, regression=True, labels=1, **UNI_KW)
    targets = [p.zh[:, j] for j in range(3)] + [p.zt]
    assert_close(value(obj, p.s, p.t, batch(4)), sum(((p.zs - z) ** 2).mean() for z in targets))


# ============================================================================ annealing
def test_annealing():
    rng = np.random.default_rng(0)
    zs, zt = r32(rng, 5, 3, scale=2), r32(rng, 5, 3, scale=2)
    s, t = Trace(logits=t32(zs)), Trace(logits=t32(zt))
    obj = build("annealing", {"max_temperature": 7.0})

    def expected(phi):
        return ((zs - phi * zt) ** 2).sum(-1).mean()

    assert obj.factor == pytest.approx(1 / 7)  # before any epoch
    assert_close(value(obj, s, t, batch(5)), expected(1 / 7))
    for phase_epoch, phase_epochs, phi in [(0, 14, 1 / 7), (2, 14, 2 / 7), (13, 14, 1.0), (1, 3, 3 / 7), (2, 3, 1.0)]:
        log = obj.start_epoch(40, phase_epoch=phase_epoch, phase_epochs=phase_epochs)
        assert log == {"factor": pytest.approx(phi)}
        assert_close(value(obj, s, t, batch(5)), expected(phi))
    obj.start_epoch(0, phase_epoch=1, phase_epochs=3)
    state = json.loads(json.dumps(obj.extra_state_dict()))
    other = build("annealing", {"max_temperature": 7.0})
    other.load_extra_state_dict(state)
    assert other.factor == pytest.approx(3 / 7)
    # hand case: zs = (1, 1), zt = (7, 0), φ = 1/7 -> (1-1)² + (1-0)² = 1
    fresh = build("annealing", {"max_temperature": 7.0})
    assert_close(value(fresh, Trace(logits=t32([[1.0, 1.0]])), Trace(logits=t32([[7.0, 0.0]])), batch(1)), 1.0)


# ============================================================================ pair checks
def test_needs_a_teacher():
    for name in ("kd", "pkd", "tinybert", "ckd", "alp", "rail", "universal", "internal", "dih", "annealing"):
        with pytest.raises(PairError, match=f"{name} needs a teacher"):
            build(name, {}, teacher=None, head_layers=(1, 2))
    assert build("ce", {}, teacher=None).needs.needs_teacher is False


@pytest.mark.parametrize("name", ["tinybert", "internal"])
def test_token_aligned_methods_refuse_impossible_pairs(name):
    with pytest.raises(PairError, match="head by head: teacher has 4 heads, student 2"):
        build(name, {}, teacher=info(4, 6, heads=4))
    with pytest.raises(PairError, match="share one tokenizer"):
        build(name, {}, teacher=info(4, 6, tok="tok-B"))
    with pytest.raises(PairError, match="bilstm student"):
        build(name, {}, student=info(2, 4, kind="bilstm"))
    with pytest.raises(PairError, match="cnn teacher"):
        build(name, {}, teacher=info(4, 6, kind="cnn"))


def test_head_count_only_matters_for_attention_terms():
    t4 = info(4, 6, heads=4)
    assert build("tinybert", {"attention": False}, teacher=t4).needs.same_heads is False
    assert build("internal", {"kl_weight": 0.0}, teacher=t4).needs.same_heads is False
    with pytest.raises(PairError, match="at least one of hidden and attention"):
        build("tinybert", {"attention": False, "hidden": False})


def test_other_pair_errors():
    with pytest.raises(PairError, match="1-layer student has none"):
        build("pkd", {}, m=1)
    with pytest.raises(PairError, match="deeper"):
        build("pkd", {"mapping": "last"}, m=6, n=4)
    with pytest.raises(PairError, match="deeper"):
        build("pkd", {"mapping": "skip"}, m=6, n=4)
    for name in ("universal", "dih"):
        with pytest.raises(PairError, match=f"{name} needs teacher pseudo classifiers"):
            build(name, {}, head_layers=())
    with pytest.raises(PairError, match="cannot map 5 student layers to 4 distinct teacher layers"):
        build("rail", {}, m=5, n=4)
    with pytest.raises(PairError, match="cannot map 4 student layers to 3"):
        build("rail", {"teacher_pool": "intermediate"}, m=4, n=4)
    with pytest.raises(PairError, match="no layer for a 1-layer student"):
        build("rail", {"student_layers": "intermediate"}, m=1)
    with pytest.raises(PairError, match="1-layer student"):
        build("universal", {"include_final": False}, m=1, head_layers=(1, 2))
    with pytest.raises(PairError):
        build("ckd", {}, m=6, n=4)
    with pytest.raises(PairError):
        build("tinybert", {}, m=6, n=4)
    build("rail", {"teacher_pool": "intermediate"}, m=3, n=4)  # 3 of 3: possible


# ============================================================================ options
@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_unknown_option_key_is_a_config_error(name):
    with pytest.raises(ConfigError) as exc:
        parse_options(name, {"bogus_key": 1}, where="recipe.objectives[0]")
    msg = str(exc.value)
    assert msg.startswith(f"recipe.objectives[0] ({name}): unknown option 'bogus_key'")
    for field in get_objective_class(name).Options.model_fields:
        assert field in msg


def test_option_messages_golden():
    with pytest.raises(ConfigError, match=r"^objective \(kd\): unknown option 'temp' \(expected one of: temperature, weight, key\)$"):
        parse_options("kd", {"temp": 2})
    with pytest.raises(ConfigError, match=r"expected one of: mapping, normalize, pooling, weight, key"):
        parse_options("pkd", {"map": "skip"})
    with pytest.raises(ConfigError, match=r"option 'temperature'.*\(got 0\)"):
        parse_options("kd", {"temperature": 0})
    with pytest.raises(ConfigError, match=r"option 'mapping'.*'zigzag'"):
        build_objective("pkd", {"mapping": "zigzag"}, make_ctx())
    with pytest.raises(ConfigError, match=r"unknown objective 'nope'; expected one of: .*alp.*rail"):
        build_objective("nope", {}, make_ctx())
    assert parse_options("kd", {}).temperature == 2.0
    assert parse_options("rail", {"proj_dim": 8}).proj_dim == 8


# ============================================================================ needs
CTX_ALL = dict(m=2, d_s=4, n=4, d_t=6, head_layers=(1, 2, 3))


@pytest.mark.parametrize("name,opts,cacheable,student,teacher", [
    ("ce", {}, True, {"logits", "labels"}, set()),
    ("kd", {}, True, {"logits"}, {"logits"}),
    ("annealing", {}, True, {"logits"}, {"logits"}),
    ("pkd", {}, True, {"layer_vectors"}, {"layer_vectors"}),
    ("ckd", {}, True, {"layer_vectors"}, {"layer_vectors"}),
    ("alp", {}, True, {"layer_vectors"}, {"layer_vectors"}),
    ("rail", {}, True, {"layer_vectors"}, {"layer_vectors"}),
    ("universal", {}, True, {"logits", "layer_vectors"}, {"logits", "head_logits"}),
    ("dih", {}, True, {"logits"}, {"logits", "head_logits"}),
    ("tinybert", {}, False, {"hidden_states", "attentions"}, {"hidden_states", "attentions"}),
    ("tinybert", {"attention": False}, False, {"hidden_states"}, {"hidden_states"}),
    ("internal", {}, False, {"layer_vectors", "attentions"}, {"layer_vectors", "attentions"}),
    ("internal", {"kl_weight": 0.0}, True, {"layer_vectors"}, {"layer_vectors"}),
    ("internal", {"cos_weight": 0.0}, False, {"attentions"}, {"attentions"}),
])
def test_needs_declarations(name, opts, cacheable, student, teacher):
    needs = build(name, opts, **CTX_ALL).needs
    assert needs.teacher_cacheable is cacheable
    assert needs.student == frozenset(student)
    assert needs.teacher == frozenset(teacher)
    assert needs.needs_teacher is bool(teacher)
    # internal needs aligned tokens only for its attention KL (cosine-only works across architectures)
    assert needs.token_aligned is (name == "tinybert" or (name == "internal" and opts.get("kl_weight", 1.0) > 0))
    assert needs.student_hidden is bool(set(student) & {"layer_vectors", "hidden_states"})


def test_needs_poolings_and_flags():
    assert build("pkd", {}, **CTX_ALL).needs.teacher_poolings == {"cls"}
    assert build("rail", {}, **CTX_ALL).needs.teacher_poolings == {"mean"}
    assert build("alp", {"pooling": "mean"}, **CTX_ALL).needs.teacher_poolings == {"mean"}
    assert build("ckd", {"pooling": "mean"}, **CTX_ALL).needs.teacher_poolings == {"mean"}
    assert build("internal", {}, **CTX_ALL).needs.teacher_poolings == {"cls"}
    assert build("tinybert", {}, **CTX_ALL).needs.same_heads is True
    assert build("internal", {}, **CTX_ALL).needs.same_heads is True
    assert build("kd", {}, **CTX_ALL).needs.same_heads is False


def test_needs_union():
    a = Needs(student=frozenset({"logits"}), teacher=frozenset({"logits"}), teacher_poolings=frozenset({"cls"}))
    b = Needs(student=frozenset({"hidden_states"}), teacher=frozenset({"attentions"}), teacher_poolings=frozenset({"mean"}),
              token_aligned=True)
    c = Needs(same_heads=True)
    u = a | b | c
    assert u.student == {"logits", "hidden_states"}
    assert u.teacher == {"logits", "attentions"}
    assert u.teacher_poolings == {"cls", "mean"}
    assert u.token_aligned is True and u.same_heads is True
    assert a.teacher_cacheable is True and u.teacher_cacheable is False  # one live-only signal spoils the cache
    assert (a | Needs()) == a and (Needs() | Needs()) == Needs()
    assert Needs().needs_teacher is False and a.needs_teacher is True
    assert (a | b) == (b | a)
    assert Needs.union([a, b, c]) == u and Needs.union([]) == Needs() and Needs.union(iter([b])) == b
    assert a.student_hidden is False and u.student_hidden is True
    kd = build("kd", {}, **CTX_ALL).needs
    tb = build("tinybert", {}, **CTX_ALL).needs
    both = kd | tb
    assert both.teacher == {"logits", "hidden_states", "attentions"} and both.teacher_cacheable is False


# ============================================================================ autocast
AUTOCAST_CASES = [  # name, options, ctx keywords, inputs
    ("kd", {}, {}, "out"), ("dih", {}, UNI_KW, "out"), ("annealing", {}, {}, "out"), ("universal", {"head_dropout": 0.0}, UNI_KW, "out"),
    ("pkd", {"normalize": False}, dict(m=3, n=6), "vec"), ("ckd", {"normalize": False}, {}, "vec"), ("alp", {}, {}, "vec"),
    ("rail", {"normalize": False, "proj_dim": 3}, {}, "vec_mean"), ("rail", {"variant": "concat", "normalize": False}, {}, "vec_mean"),
    ("tinybert", {}, {}, "tok"), ("internal", {}, {}, "tok"),
]


@pytest.mark.parametrize("case", range(len(AUTOCAST_CASES)))
def test_objectives_return_float32_under_autocast(case):
    name, opts, kw, kind = AUTOCAST_CASES[case]
    obj = build(name, opts, **kw)
    if kind == "out":
        p = out_pair(0)
    elif kind == "tok":
        p = tok_pair(0)
    else:
        p = vec_pair(0, pooling="mean" if kind == "vec_mean" else "cls", **{k: kw[k] for k in ("m", "n") if k in kw})
    reference = value(obj, p.s, p.t, batch(4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = obj(p.s, p.t, batch(4))
    assert out.dtype == torch.float32 and out.dim() == 0
    # projections/heads may run in bf16 under autocast; the loss must stay near the float32 value
    np.testing.assert_allclose(float(out.detach()), reference, rtol=5e-2, atol=1e-3)
