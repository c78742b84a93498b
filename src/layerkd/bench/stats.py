"""Statistics for the bench report: mean ± std over seeds and a paired bootstrap test.

**Spread over seeds.** :func:`mean_std` returns the mean and the *sample* standard deviation
(``ddof=1``, the unbiased variance's square root) of the per-seed scores; with one seed the std is
NaN (shown as no spread, never as 0).

**Paired bootstrap test** (:func:`paired_bootstrap`). Two systems A (a method) and B (the
baseline) are compared on the same N evaluation examples, each with S paired training seeds (seed
s of A with seed s of B; only seeds both have). The statistic is

    δ(I) = mean over s of [ metric(A_s on I) − metric(B_s on I) ]

where I is a multiset of example indices and ``metric`` the task's main metric (F1, Matthews,
Pearson … computed on the examples of I, not averaged per example). The observed δ uses every
example once. Each of ``n_boot`` bootstrap samples I* draws N indices uniformly with replacement
— the *same* indices for every seed and for both systems, so the pairing of examples and of
seeds is kept — and gives δ*. Then, following Koehn (2004) and Berg-Kirkpatrick, Burkett &
Klein (2012, §2), the one-sided test of H0: δ ≤ 0 against H1: δ > 0 uses the bootstrap
distribution shifted to mean zero under H0 ("shift method"):

    p = (1 + #{ b : δ*_b − δ ≥ δ }) / (n_boot + 1)      i.e. the fraction of samples with δ* ≥ 2δ

with ties counted against H1 and the add-one correction (Davison & Hinkley 1997), so that p is
never exactly 0 and identical systems (δ* = δ = 0 for every sample) give p = 1. A negative
observed δ gives p ≥ 0.5. The 95 % confidence interval of δ is the percentile interval of the
δ* (2.5th and 97.5th percentiles). For a metric where lower is better (``mse``) the sign is
flipped: δ is always "improvement of A over B".

**Speed.** A bootstrap sample is represented by its count vector w (how often each example was
drawn, summing to N). Every metric the library knows is a function of a few weighted sums
(confusion counts for accuracy/F1/Matthews, first and second moments for Pearson, and ranks of
the resampled values for Spearman), so a whole block of samples is scored with matrix products
``W @ X`` — 10 000 samples × 408 examples × 3 seeds × 2 systems takes well under a second.
:func:`resampled_scores` is exact: for the multiset I with counts w it returns what
:func:`layerkd.metrics.compute_metrics` returns on ``pred[I], gold[I]`` (tested).

**Two levels: seeds and examples** (``resample_seeds=True``, what the report uses by default).
The test above holds the training seeds fixed, so its p-value ignores seed-to-seed training
variance: three seeds whose differences are −0.5, +3.8 and +2.9 give p < 0.001 when the examples
are many. The two-level test resamples both crossed factors (Owen 2007's "pigeonhole"
bootstrap; Bouthillier et al. 2021 on seed variance in ML benchmarks): each resample draws S
seed indices with replacement (count vector c, summing to S; the same seeds for both systems,
paired by seed number) and, independently, N example indices with replacement (the same for
every seed and both systems), and

    δ* = Σ_s c_s · [ metric(A_s on I*) − metric(B_s on I*) ] / S

— the metric is computed on each seed's whole resampled example set (F1, MCC, Pearson are not
per-example means), then averaged over the drawn seeds. The observed δ, the p-value and the
interval are computed exactly as above. Example draws come from ``default_rng(seed)`` as in the
one-level test and seed draws from a second generator, ``default_rng([seed, 1])``, so with
``resample_seeds=False`` the result is bit-identical to the one-level test. With one seed the
training variance cannot be estimated: the two-level p-value and interval are NaN. With few
seeds the seed bootstrap is coarse (S = 3 has 10 distinct seed multisets) and, like every
bootstrap, understates the seed variance by a factor (S − 1)/S: more seeds, not more resamples,
sharpen it.

**Alternatives** (``alternative``): ``greater`` (H1: the method beats the baseline, the default),
``less`` (H1: it is worse: p counts δ* − δ ≤ δ) and ``two-sided`` (p counts |δ* − δ| ≥ |δ|).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..metrics import compute_metrics

LOWER_IS_BETTER = frozenset({"mse"})

TEST_DESCRIPTION = (
    "paired bootstrap over dev examples, pooling seeds (Koehn 2004; Berg-Kirkpatrick et al. 2012): "
    "each of B resamples draws N example indices with replacement, the same for every seed and for both "
    "systems; δ* = mean over the seeds both systems have of [main metric(method) − main metric(baseline)] "
    "on the resample; one-sided H0: δ ≤ 0, p = (1 + #{δ* − δ ≥ δ}) / (B + 1) (shift method, i.e. the "
    "fraction of resamples with δ* ≥ 2δ, add-one corrected); 95 % CI = 2.5th–97.5th percentiles of δ*"
)

TWO_LEVEL_DESCRIPTION = (
    "two-level paired bootstrap over training seeds and dev examples: each of B resamples draws the seeds with "
    "replacement (the same for both systems, paired by seed number) and, independently, N example indices with "
    "replacement (the same for every seed and both systems); δ* = mean over the drawn seeds of [main metric(method) "
    "− main metric(baseline)], each computed on the whole resampled example set; one-sided H0: δ ≤ 0, "
    "p = (1 + #{δ* − δ ≥ δ}) / (B + 1) (shift method, add-one corrected); 95 % CI = 2.5th–97.5th percentiles of "
    "δ*; no p with a single seed (the training variance cannot be estimated)"
)

#: ``levels`` names of the report (``--bootstrap``): the two-level test, or examples only (the old one)
BOOTSTRAP_LEVELS = {"two-level": True, "examples": False}
ALTERNATIVES = ("greater", "less", "two-sided")


# ---------------------------------------------------------------------------------------------- spread
def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof=1; NaN for fewer than two values) and count.

    NaN values are ignored (a metric a run did not report)."""
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return float("nan"), float("nan"), 0
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else float("nan")
    return mean, std, n


# ---------------------------------------------------------------------------------------------- resampling
def bootstrap_weights(n: int, n_boot: int, rng: np.random.Generator, *, max_cells: int = 4_000_000):
    """Yield blocks of bootstrap count vectors, shape ``[b, n]`` (float64, each row sums to ``n``).

    Row j counts how often each example occurs among ``n`` indices drawn uniformly with
    replacement. Blocks keep ``b * n`` under ``max_cells`` so memory stays bounded for big dev sets."""
    if n <= 0:
        raise ValueError("bootstrap over an empty evaluation set")
    block = max(1, min(n_boot, max_cells // n))
    done = 0
    while done < n_boot:
        b = min(block, n_boot - done)
        idx = rng.integers(0, n, size=(b, n))
        idx += (np.arange(b) * n)[:, None]
        w = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        done += b
        yield w


def _onehot(labels: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((labels.shape[0], k), dtype=np.float64)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _weighted_ranks(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties averaged) of each example's value within each resample.

    ``values`` [N]; ``w`` [B, N] counts. An example drawn k times occupies k tied positions; its
    rank is (number of drawn values strictly smaller) + (count of drawn values equal + 1) / 2."""
    order = np.argsort(values, kind="mergesort")
    sv = values[order]
    starts = np.r_[0, np.flatnonzero(sv[1:] != sv[:-1]) + 1]
    group_of_sorted = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(sv)]))
    group = np.empty_like(group_of_sorted)
    group[order] = group_of_sorted
    wg = np.add.reduceat(w[:, order], starts, axis=1)  # [B, G] drawn count per distinct value
    below = np.cumsum(wg, axis=1) - wg
    avg = below + (wg + 1.0) / 2.0
    return avg[:, group]  # [B, N]


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson r under count weights. x, y [B, N] (or [1, N], broadcast); w [B, N] -> [B]."""
    n = w.sum(axis=1)
    wx, wy = w * x, w * y
    mx = wx.sum(axis=1) / n
    my = wy.sum(axis=1) / n
    # centred second moments: Σw·x·y − n·mx·my (inputs are centred beforehand, so no cancellation to speak of)
    sxy = np.einsum("bn,bn->b", wx, np.broadcast_to(y, w.shape)) - n * mx * my
    sxx = np.einsum("bn,bn->b", wx, np.broadcast_to(x, w.shape)) - n * mx * mx
    syy = np.einsum("bn,bn->b", wy, np.broadcast_to(y, w.shape)) - n * my * my
    return _safe_div(sxy, np.sqrt(np.clip(sxx, 0, None) * np.clip(syy, 0, None)))


def resampled_scores(metric: str, preds: np.ndarray, gold: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``metric`` of each system (rows of ``preds`` [C, N]) on each resample (rows of ``w`` [B, N]).

    Returns [B, C]. Exactly :func:`layerkd.metrics.compute_metrics` on the resampled examples."""
    preds = np.atleast_2d(np.asarray(preds))
    gold = np.asarray(gold)
    w = np.atleast_2d(np.asarray(w, dtype=np.float64))
    n = w.sum(axis=1)  # [B]
    if metric in ("accuracy", "f1", "matthews_correlation"):
        p = preds.astype(np.int64)
        g = gold.astype(np.int64)
        correct = (p == g[None, :]).astype(np.float64)  # [C, N]
        if metric == "accuracy":
            return (w @ correct.T) / n[:, None]
        if metric == "f1":  # binary F1 of class 1 (layerkd.metrics.f1_binary)
            tp = w @ (correct * (g[None, :] == 1)).T
            pp = w @ (p == 1).astype(np.float64).T
            gp = (w @ (g == 1).astype(np.float64))[:, None]
            return _safe_div(2.0 * tp, pp + gp)
        k = int(max(p.max(initial=0), g.max(initial=0))) + 1
        t = w @ _onehot(g, k)  # [B, K] true counts per class
        out = np.empty((w.shape[0], p.shape[0]))
        tt = (t * t).sum(axis=1)
        for c in range(p.shape[0]):
            pc = w @ _onehot(p[c], k)  # [B, K] predicted counts
            cc = w @ correct[c]  # [B]
            cov_ytyp = cc * n - (t * pc).sum(axis=1)
            cov_ypyp = n * n - (pc * pc).sum(axis=1)
            cov_ytyt = n * n - tt
            out[:, c] = _safe_div(cov_ytyp, np.sqrt(cov_ytyt * cov_ypyp))
        return out
    x = preds.astype(np.float64)
    y = gold.astype(np.float64)
    if metric == "mse":
        return (w @ ((x - y[None, :]) ** 2).T) / n[:, None]
    if metric == "pearson":  # weighted first and second moments, all as matrix products
        xc = x - x.mean(axis=1, keepdims=True)  # centred on the full set: no cancellation to speak of
        yc = y - y.mean()
        sx, sxx, sxy = w @ xc.T, w @ (xc * xc).T, w @ (xc * yc[None, :]).T  # [B, C]
        sy, syy = (w @ yc)[:, None], (w @ (yc * yc))[:, None]
        nn = n[:, None]
        cov = sxy - sx * sy / nn
        vx = np.clip(sxx - sx * sx / nn, 0, None)
        vy = np.clip(syy - sy * sy / nn, 0, None)
        return _safe_div(cov, np.sqrt(vx * vy))
    if metric == "spearmanr":
        half = (n[:, None] + 1.0) / 2.0  # the mean rank of any resample: centre the ranks
        ry = _weighted_ranks(y, w) - half
        return np.stack([_weighted_pearson(_weighted_ranks(x[c], w) - half, ry, w) for c in range(x.shape[0])], axis=1)
    raise ValueError(f"no bootstrap implementation for metric {metric!r}")


# ---------------------------------------------------------------------------------------------- the test
def bootstrap_p_value(deltas: np.ndarray, observed: float, alternative: str = "greater") -> float:
    """p by the shift method, add-one corrected: (1 + #{δ* − δ ≥ δ}) / (B + 1) for ``greater``
    (H0: δ ≤ 0), #{δ* − δ ≤ δ} for ``less`` (H0: δ ≥ 0), #{|δ* − δ| ≥ |δ|} for ``two-sided``."""
    deltas = np.asarray(deltas, dtype=np.float64)
    # a tiny tolerance so that float noise in δ* (sums of the same numbers in another order) counts as a tie
    tol = 1e-12 * max(1.0, abs(observed))
    centred = deltas - observed
    if alternative == "greater":
        hits = centred >= observed - tol
    elif alternative == "less":
        hits = centred <= observed + tol
    elif alternative == "two-sided":
        hits = np.abs(centred) >= abs(observed) - tol
    else:
        raise ValueError(f"alternative must be one of {', '.join(ALTERNATIVES)}, not {alternative!r}")
    return (1 + int(np.sum(hits))) / (len(deltas) + 1)


@dataclass
class PairedBootstrap:
    """Result of :func:`paired_bootstrap` (scores are in metric units, not ×100)."""

    metric: str
    delta: float  # observed mean paired difference (method − baseline; sign flipped for lower-is-better)
    ci_low: float
    ci_high: float
    p_value: float
    n_boot: int
    n_seeds: int
    n_examples: int
    method_score: float  # mean over the paired seeds on the full set
    baseline_score: float
    seed: int = 0
    confidence: float = 0.95
    deltas: np.ndarray | None = field(default=None, repr=False)
    alternative: str = "greater"
    resample_seeds: bool = False  # True: the two-level test (seeds and examples)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("deltas", None)
        return d


def paired_bootstrap(
    metric: str,
    method_preds: Sequence[Sequence[float]] | np.ndarray,
    baseline_preds: Sequence[Sequence[float]] | np.ndarray,
    gold: Sequence[float] | np.ndarray,
    *,
    n_boot: int = 10000,
    seed: int = 0,
    confidence: float = 0.95,
    keep_deltas: bool = False,
    alternative: str = "greater",
    resample_seeds: bool = False,
) -> PairedBootstrap:
    """Paired bootstrap test of ``method`` against ``baseline`` over the same examples (see module doc).

    ``method_preds`` and ``baseline_preds`` are [S, N]: row s of each comes from the same training
    seed (the caller pairs them). ``gold`` is [N]. Deterministic for a given ``seed``.
    ``resample_seeds``: also resample the training seeds (the two-level test; NaN p and interval
    with one seed). ``alternative``: ``greater`` / ``less`` / ``two-sided``."""
    a = np.atleast_2d(np.asarray(method_preds))
    b = np.atleast_2d(np.asarray(baseline_preds))
    gold = np.asarray(gold)
    if a.shape != b.shape or a.shape[1] != gold.shape[0]:
        raise ValueError(f"paired bootstrap: shapes differ (method {a.shape}, baseline {b.shape}, gold {gold.shape})")
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {', '.join(ALTERNATIVES)}, not {alternative!r}")
    s, n = a.shape
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    full_a = np.array([compute_metrics([metric], a[i], gold)[metric] for i in range(s)])
    full_b = np.array([compute_metrics([metric], b[i], gold)[metric] for i in range(s)])
    observed = float(sign * (full_a - full_b).mean())
    both = np.concatenate([a, b], axis=0)
    rng = np.random.default_rng(seed)  # example draws (the same stream in both modes)
    seed_rng = np.random.default_rng([seed, 1])  # seed draws, two-level only
    parts = []
    for w in bootstrap_weights(n, n_boot, rng):
        sc = resampled_scores(metric, both, gold, w)  # [B, 2S]
        diff = sc[:, :s] - sc[:, s:]  # [B, S]: per seed, on the resampled examples
        if resample_seeds:  # c [B, S]: how often each seed is drawn among S draws with replacement
            c = seed_rng.multinomial(s, np.full(s, 1.0 / s), size=w.shape[0]).astype(np.float64)
            parts.append(sign * (c * diff).sum(axis=1) / s)
        else:
            parts.append(sign * diff.mean(axis=1))
    deltas = np.concatenate(parts)
    alpha = 1.0 - confidence
    lo, hi = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
    p = bootstrap_p_value(deltas, observed, alternative)
    if resample_seeds and s < 2:  # one seed: the training variance is not estimable
        lo = hi = p = float("nan")
    return PairedBootstrap(
        metric=metric, delta=observed, ci_low=float(lo), ci_high=float(hi),
        p_value=p, n_boot=int(n_boot), n_seeds=int(s), n_examples=int(n),
        method_score=float(full_a.mean()), baseline_score=float(full_b.mean()), seed=seed, confidence=confidence,
        deltas=deltas if keep_deltas else None, alternative=alternative, resample_seeds=resample_seeds,
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (NaN entries are left out and stay NaN)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0:
        return out.tolist()
    order = ok[np.argsort(p[ok], kind="mergesort")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def fmt_p(p: float) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"
