"""Layer mappings shared by every method: which teacher layer(s) each student layer learns from.

Layers are 1-based blocks; 0 is the embedding output. With a teacher of ``n`` and a student of
``m`` blocks:

* :func:`skip` — PKD-skip: student layers 1..m−1 ↔ teacher layers ``round(i·n/m)``
  (12→6: 2,4,6,8,10);
* :func:`last` — PKD-last: student layers 1..m−1 ↔ teacher layers n−m+1 .. n−1 (12→6: 7..11);
* :func:`uniform` — TinyBERT / internal KD: student layer i ↔ teacher ``round(i·n/m)`` for
  i = 1..m (and 0 ↔ 0 when embeddings are included);
* :func:`buckets` — CKD / ALP-NO / ALP-PO: teacher layers 1..n cut into m contiguous groups,
  optionally widened by ``overlap`` layers on each side (6→2, overlap 1: [1..4], [3..6]);
* :func:`bucket_mask` — the same as a boolean ``[m, n]`` matrix for attention;
* :func:`random_sorted` — RAIL-KD: m distinct teacher layers drawn at random, sorted.

Rounding is half-up (``⌊x + ½⌋``) and results are validated to be strictly increasing and in
range, so non-divisible depths (6→4) still give a monotone map.
"""

from __future__ import annotations

import math

import torch

from .errors import PairError


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


def _check(n: int, m: int, who: str) -> None:
    if n < 1 or m < 1:
        raise PairError(f"{who}: teacher and student need at least one layer each (got n={n}, m={m})")


def _validated(out: list[int], n: int, who: str, lo: int = 1) -> list[int]:
    """The promise of the module docstring: strictly increasing and within ``lo..n``."""
    if any(not lo <= x <= n for x in out) or any(a >= b for a, b in zip(out, out[1:], strict=False)):
        raise PairError(f"{who}: {out} is not a strictly increasing map into teacher layers {lo}..{n}")
    return out


def skip(n: int, m: int) -> list[int]:
    _check(n, m, "skip mapping")
    if m > n:
        raise PairError(f"skip mapping: the student ({m} layers) is deeper than the teacher ({n})")
    return _validated([_round(i * n / m) for i in range(1, m)], n, "skip mapping")


def last(n: int, m: int) -> list[int]:
    _check(n, m, "last mapping")
    if m > n:
        raise PairError(f"last mapping: the student ({m} layers) is deeper than the teacher ({n})")
    return list(range(n - m + 1, n))


def uniform(n: int, m: int, *, include_embeddings: bool = False) -> list[int]:
    """Teacher layer for each student layer 1..m (0..m with embeddings)."""
    _check(n, m, "uniform mapping")
    start = 0 if include_embeddings else 1
    if m > n:
        raise PairError(f"uniform mapping: the student ({m} layers) is deeper than the teacher ({n})")
    return _validated([_round(i * n / m) for i in range(start, m + 1)], n, "uniform mapping", lo=start)


def buckets(n: int, m: int, overlap: int = 0) -> list[list[int]]:
    """m contiguous buckets of teacher layers 1..n, each widened by ``overlap`` on both sides."""
    _check(n, m, "bucket mapping")
    if m > n:
        raise PairError(f"bucket mapping: {m} student layers cannot each get a bucket of {n} teacher layers")
    if overlap < 0:
        raise PairError("bucket mapping: overlap must be ≥ 0")
    bounds = [_round(i * n / m) for i in range(m + 1)]  # 0 = b0 < b1 < ... < bm = n
    out = []
    for i in range(m):
        lo = max(1, bounds[i] + 1 - overlap)
        hi = min(n, bounds[i + 1] + overlap)
        out.append(list(range(lo, hi + 1)))
    return out


def bucket_mask(groups: list[list[int]], teacher_layers: list[int]) -> torch.Tensor:
    """``[m, len(teacher_layers)]`` bool: True where teacher layer j is in student layer i's bucket."""
    index = {layer: j for j, layer in enumerate(teacher_layers)}
    mask = torch.zeros(len(groups), len(teacher_layers), dtype=torch.bool)
    for i, group in enumerate(groups):
        for layer in group:
            mask[i, index[layer]] = True
    return mask


def rail_draw(n_teacher_layers: int, m: int, generator: torch.Generator) -> list[int]:
    """RAIL-KD: ``m`` distinct teacher layers from ``1..n``, sorted ascending."""
    if not 1 <= m <= n_teacher_layers:
        raise ValueError(f"cannot draw {m} distinct layers from {n_teacher_layers}")
    perm = torch.randperm(n_teacher_layers, generator=generator)[:m]
    return sorted(int(i) + 1 for i in perm)


def random_sorted(pool: list[int], m: int, generator: torch.Generator) -> list[int]:
    """RAIL-KD: m distinct layers of ``pool`` (sorted ascending), drawn with ``generator``."""
    if m > len(pool):
        raise PairError(f"random mapping: cannot draw {m} distinct teacher layers from {len(pool)}")
    picks = rail_draw(len(pool), m, generator)
    return [pool[i - 1] for i in picks]


def resolve(name: str, n: int, m: int) -> list[int]:
    """A named one-to-one mapping for student layers (skip/last: 1..m−1; uniform: 1..m)."""
    if name == "skip":
        return skip(n, m)
    if name == "last":
        return last(n, m)
    if name == "uniform":
        return uniform(n, m)
    raise PairError(f"unknown layer mapping {name!r}; expected skip, last or uniform")
