"""The two-level paired bootstrap (training seeds and test examples): golden values on hand-made cases, a
synthetic setting with known seed variance, and its speed."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from layerkd.bench.stats import bootstrap_p_value, paired_bootstrap
from layerkd.metrics import compute_metrics


# ---------------------------------------------------------------------------------------------- golden values
def test_p_value_alternatives_by_hand():
    d = np.array([0.0, 0.1, 0.3, 0.5])  # δ = 0.2; centred δ* − δ = -0.2, -0.1, 0.1, 0.3
    assert bootstrap_p_value(d, 0.2, "greater") == pytest.approx((1 + 1) / 5)  # ≥ 0.2: 0.3
    assert bootstrap_p_value(d, 0.2, "less") == pytest.approx((1 + 3) / 5)  # ≤ 0.2: -0.2, -0.1, 0.1
    assert bootstrap_p_value(d, 0.2, "two-sided") == pytest.approx((1 + 2) / 5)  # |·| ≥ 0.2: -0.2 and 0.3
    with pytest.raises(ValueError, match="alternative"):
        bootstrap_p_value(d, 0.2, "bigger")


def test_two_level_hand_made_case_seed_variance_only():
    """Seed 1: the method is right everywhere and the baseline wrong everywhere (δ_1 = 1 on any example
    resample); seed 2: both identical (δ_2 = 0). δ = 0.5. Examples alone never move δ*, so the one-level
    test sees no uncertainty at all; resampling the 2 seeds gives δ* = 0, 0.5, 1 with probabilities
    1/4, 1/2, 1/4, so p(δ* ≥ 2δ = 1) = 1/4 and the 95 % interval is [0, 1]."""
    gold = np.array([1, 0, 1, 0])
    meth = np.stack([gold, gold])
    base = np.stack([1 - gold, gold])
    one = paired_bootstrap("accuracy", meth, base, gold, n_boot=10000, seed=3)
    assert one.delta == 0.5 and one.p_value == pytest.approx(1 / 10001) and (one.ci_low, one.ci_high) == (0.5, 0.5)
    two = paired_bootstrap("accuracy", meth, base, gold, n_boot=10000, seed=3, resample_seeds=True)
    assert two.delta == 0.5 and (two.ci_low, two.ci_high) == (0.0, 1.0)
    # exactly the documented seed stream: default_rng([seed, 1]) draws the seed counts (one block here)
    c = np.random.default_rng([3, 1]).multinomial(2, [0.5, 0.5], size=10000)
    assert two.p_value == pytest.approx((1 + int(np.sum(c[:, 0] == 2))) / 10001)
    assert two.p_value == pytest.approx(0.25, abs=0.015)
    assert paired_bootstrap("accuracy", meth, base, gold, n_boot=10000, seed=3, resample_seeds=True,
                            alternative="two-sided").p_value == pytest.approx(0.5, abs=0.02)


def test_two_level_deltas_are_the_metric_on_each_resampled_set_averaged_over_drawn_seeds():
    """F1 is computed on each seed's whole resampled example set (not a mean of per-example scores),
    then weighted by how often the seed was drawn; the draws follow the documented generators."""
    rng = np.random.default_rng(0)
    n, s, b = 30, 3, 4
    gold = rng.integers(0, 2, n)
    meth, base = rng.integers(0, 2, (s, n)), rng.integers(0, 2, (s, n))
    r = paired_bootstrap("f1", meth, base, gold, n_boot=b, seed=5, resample_seeds=True, keep_deltas=True)
    idx = np.random.default_rng(5).integers(0, n, size=(b, n))
    counts = np.random.default_rng([5, 1]).multinomial(s, np.full(s, 1 / s), size=b)
    f1 = lambda p, i: compute_metrics(["f1"], p[i], gold[i])["f1"]  # noqa: E731
    want = [sum(counts[j, k] * (f1(meth[k], idx[j]) - f1(base[k], idx[j])) for k in range(s)) / s for j in range(b)]
    np.testing.assert_allclose(r.deltas, want, atol=1e-12)
    assert r.delta == pytest.approx(np.mean([f1(meth[k], np.arange(n)) - f1(base[k], np.arange(n)) for k in range(s)]))


def test_identical_seeds_make_the_two_levels_agree_and_one_seed_gives_no_p():
    rng = np.random.default_rng(1)
    gold = rng.normal(0, 1, 50)
    a = np.tile(gold + rng.normal(0, 0.5, 50), (3, 1))
    b = np.tile(gold + rng.normal(0, 0.8, 50), (3, 1))
    one = paired_bootstrap("pearson", a, b, gold, n_boot=2000, seed=2)
    two = paired_bootstrap("pearson", a, b, gold, n_boot=2000, seed=2, resample_seeds=True)
    # every seed the same: drawing seeds changes nothing, and the example draws are the same stream
    assert (two.p_value, two.ci_low, two.ci_high) == pytest.approx((one.p_value, one.ci_low, one.ci_high), abs=1e-12)
    single = paired_bootstrap("pearson", a[:1], b[:1], gold, n_boot=200, seed=2, resample_seeds=True)
    assert single.delta > 0 and math.isnan(single.p_value) and math.isnan(single.ci_low)


# ---------------------------------------------------------------------------------------------- known seed variance
N_EX = 2000
_r0 = np.random.default_rng(0)
GOLD = _r0.integers(0, 2, N_EX)
DIFFICULTY = _r0.random(N_EX)  # shared by every seed and method: per-example noise is nil


def _threshold_system(q) -> np.ndarray:
    """[S, N]: seed s is right on exactly the examples easier than q_s (accuracy ≈ q_s)."""
    return np.where(DIFFICULTY[None, :] < np.asarray(q)[:, None], GOLD, 1 - GOLD)


def test_seed_variance_makes_the_one_level_test_overconfident_and_the_two_level_test_does_not():
    # per-seed accuracy differences (method − baseline) like STS-B kd − ce: mean +1 point, seed sd ≈ 3.2 points
    base_q = 0.75 + np.array([0.01, -0.02, 0.0, 0.02, -0.01])
    gap = np.array([-0.03, 0.04, 0.03, -0.02, 0.03])
    meth, base = _threshold_system(base_q + gap), _threshold_system(base_q)
    one = paired_bootstrap("accuracy", meth, base, GOLD, n_boot=4000, seed=0)
    two = paired_bootstrap("accuracy", meth, base, GOLD, n_boot=4000, seed=0, resample_seeds=True)
    assert one.delta == two.delta == pytest.approx(0.01, abs=0.003)
    assert one.p_value < 0.01 and one.ci_low > 0  # "significant" from seed luck alone
    assert two.p_value > 0.2 and two.ci_low < 0 < two.ci_high
    assert (two.ci_high - two.ci_low) > 5 * (one.ci_high - one.ci_low)
    # a true large difference (every seed 4-8 points better) is caught by both
    big = _threshold_system(base_q + np.array([0.05, 0.07, 0.06, 0.04, 0.08]))
    two_big = paired_bootstrap("accuracy", big, base, GOLD, n_boot=4000, seed=0, resample_seeds=True)
    assert two_big.p_value < 0.01 and two_big.ci_low > 0.02


def test_rejection_rates_under_a_true_null_and_under_a_true_difference():
    """100 replicate experiments, 5 seeds each, per-seed accuracy ~ N(0.75, 0.03) for both methods (true
    δ = 0): the one-level test rejects at 5 % far too often; the two-level one near its level (a
    bootstrap over 5 seeds runs somewhat liberal, ≈ 10 %: docs/bench.md). With a true δ of 8 points (per-seed
    difference sd ≈ 4.2) it rejects almost always."""
    rej_one = rej_two = power = 0
    for rep in range(100):
        r = np.random.default_rng(rep)
        qa, qb = 0.75 + r.normal(0, 0.03, 5), 0.75 + r.normal(0, 0.03, 5)
        a, b = _threshold_system(qa), _threshold_system(qb)
        rej_one += paired_bootstrap("accuracy", a, b, GOLD, n_boot=400, seed=rep).p_value < 0.05
        rej_two += paired_bootstrap("accuracy", a, b, GOLD, n_boot=400, seed=rep, resample_seeds=True).p_value < 0.05
        power += paired_bootstrap("accuracy", _threshold_system(qa + 0.08), b, GOLD, n_boot=400, seed=rep,
                                  resample_seeds=True).p_value < 0.05
    assert rej_one > 25 and rej_two <= 15 and power >= 90, (rej_one, rej_two, power)


def test_ten_thousand_resamples_take_seconds():
    rng = np.random.default_rng(0)
    n = 872  # SST-2 dev
    gold = rng.integers(0, 2, n)
    a, b = rng.integers(0, 2, (5, n)), rng.integers(0, 2, (5, n))
    t0 = time.perf_counter()
    for metric in ("f1", "matthews_correlation"):
        paired_bootstrap(metric, a, b, gold, n_boot=10000, seed=0, resample_seeds=True)
    assert time.perf_counter() - t0 < 20
