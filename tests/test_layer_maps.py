"""Golden values and properties of the layer mappings (``layerkd.layer_maps``)."""

from __future__ import annotations

import itertools

import pytest
import torch

from layerkd import layer_maps as L
from layerkd.errors import PairError


# ----------------------------------------------------------------------------- golden values
def test_skip_golden():
    assert L.skip(12, 6) == [2, 4, 6, 8, 10]
    assert L.skip(6, 2) == [3]
    assert L.skip(12, 3) == [4, 8]
    assert L.skip(12, 4) == [3, 6, 9]
    assert L.skip(6, 6) == [1, 2, 3, 4, 5]
    assert L.skip(6, 1) == []


def test_last_golden():
    assert L.last(12, 6) == [7, 8, 9, 10, 11]
    assert L.last(6, 2) == [5]
    assert L.last(12, 3) == [10, 11]
    assert L.last(6, 6) == [1, 2, 3, 4, 5]


def test_uniform_golden():
    assert L.uniform(6, 2) == [3, 6]
    assert L.uniform(12, 4, include_embeddings=True) == [0, 3, 6, 9, 12]
    assert L.uniform(12, 6) == [2, 4, 6, 8, 10, 12]
    assert L.uniform(4, 2, include_embeddings=True) == [0, 2, 4]
    # half-up rounding on a non-divisible pair: 1.5 -> 2, 3 -> 3, 4.5 -> 5, 6 -> 6
    assert L.uniform(6, 4) == [2, 3, 5, 6]


def test_buckets_golden():
    assert L.buckets(6, 2, 0) == [[1, 2, 3], [4, 5, 6]]
    assert L.buckets(6, 2, 1) == [[1, 2, 3, 4], [3, 4, 5, 6]]
    assert L.buckets(12, 4, 0) == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]
    assert L.buckets(12, 4, 1) == [[1, 2, 3, 4], [3, 4, 5, 6, 7], [6, 7, 8, 9, 10], [9, 10, 11, 12]]
    assert L.buckets(4, 4, 0) == [[1], [2], [3], [4]]
    assert L.buckets(5, 1, 0) == [[1, 2, 3, 4, 5]]
    assert L.buckets(6, 2, 5) == [[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]]  # clipped to 1..n


# ----------------------------------------------------------------------------- properties
PAIRS = [(n, m) for n in range(1, 13) for m in range(1, n + 1)]


@pytest.mark.parametrize("n,m", PAIRS)
def test_maps_monotone_and_in_range(n, m):
    for name, out, lo in [("skip", L.skip(n, m), 1), ("last", L.last(n, m), 1), ("uniform", L.uniform(n, m), 1),
                          ("uniform0", L.uniform(n, m, include_embeddings=True), 0)]:
        assert all(a < b for a, b in itertools.pairwise(out)), (name, out)
        assert all(lo <= x <= n for x in out), (name, out)
    assert len(L.skip(n, m)) == m - 1 and len(L.last(n, m)) == m - 1
    assert len(L.uniform(n, m)) == m and L.uniform(n, m)[-1] == n
    groups = L.buckets(n, m, 0)
    assert len(groups) == m
    assert sum(groups, []) == list(range(1, n + 1))  # a partition of 1..n, in order
    for ov in (1, 2):
        wide = L.buckets(n, m, ov)
        for g0, g in zip(groups, wide, strict=True):
            assert g == list(range(g[0], g[-1] + 1))  # contiguous
            assert g[0] == max(1, g0[0] - ov) and g[-1] == min(n, g0[-1] + ov)


def test_uniform_6_4_strictly_increasing():
    out = L.uniform(6, 4)
    assert len(out) == 4 and all(a < b for a, b in itertools.pairwise(out)) and 1 <= out[0] and out[-1] == 6


def test_resolve():
    assert L.resolve("skip", 12, 6) == [2, 4, 6, 8, 10]
    assert L.resolve("last", 12, 6) == [7, 8, 9, 10, 11]
    assert L.resolve("uniform", 12, 6) == [2, 4, 6, 8, 10, 12]
    with pytest.raises(PairError, match="unknown layer mapping 'zigzag'"):
        L.resolve("zigzag", 12, 6)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("fn", [L.skip, L.last, L.uniform, L.buckets])
def test_student_deeper_than_teacher_is_a_pair_error(fn):
    with pytest.raises(PairError, match="deeper|cannot"):
        fn(6, 12)
    with pytest.raises(PairError):
        fn(3, 4)


@pytest.mark.parametrize("fn", [L.skip, L.last, L.uniform, L.buckets])
def test_empty_models_are_pair_errors(fn):
    with pytest.raises(PairError):
        fn(0, 1)
    with pytest.raises(PairError):
        fn(4, 0)


def test_negative_overlap_is_a_pair_error():
    with pytest.raises(PairError, match="overlap"):
        L.buckets(6, 2, -1)


# ----------------------------------------------------------------------------- bucket_mask
def test_bucket_mask_shape_and_content():
    groups = [[1, 2, 3, 4], [3, 4, 5, 6]]
    mask = L.bucket_mask(groups, [1, 2, 3, 4, 5, 6])
    assert mask.dtype == torch.bool and mask.shape == (2, 6)
    assert mask.tolist() == [[True, True, True, True, False, False], [False, False, True, True, True, True]]
    # with the embeddings as column 0 (teacher layers 0..n)
    mask0 = L.bucket_mask([[0, 1, 2], [3, 4]], [0, 1, 2, 3, 4])
    assert mask0.tolist() == [[True, True, True, False, False], [False, False, False, True, True]]
    # columns follow teacher_layers, not layer numbers
    mask_r = L.bucket_mask([[4], [2]], [2, 4])
    assert mask_r.tolist() == [[False, True], [True, False]]


# ----------------------------------------------------------------------------- random_sorted
def test_random_sorted_over_a_pool():
    pool = [2, 3, 5, 7, 11]
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(200):
        d = L.random_sorted(pool, 3, g)
        assert len(d) == 3 and len(set(d)) == 3 and d == sorted(d)
        assert set(d) <= set(pool)
        seen.update(d)
    assert seen == set(pool)
    assert L.random_sorted(pool, 5, g) == pool


def test_random_sorted_reproducible():
    a = L.random_sorted(list(range(1, 13)), 6, torch.Generator().manual_seed(3))
    b = L.random_sorted(list(range(1, 13)), 6, torch.Generator().manual_seed(3))
    assert a == b
    draws = {tuple(L.random_sorted(list(range(1, 13)), 6, torch.Generator().manual_seed(s))) for s in range(10)}
    assert len(draws) > 1


def test_random_sorted_too_many_is_a_pair_error():
    with pytest.raises(PairError, match="cannot draw 4"):
        L.random_sorted([1, 2, 3], 4, torch.Generator().manual_seed(0))
