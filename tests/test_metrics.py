"""layerkd.metrics (computed with scikit-learn / SciPy) against independent references: NumPy
formulas written out here (they share no code with the libraries), hand-computed values, the
degenerate cases and glue_score."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from layerkd import metrics as M

SEEDS = [0, 1, 2, 3, 7]


def _classes(seed: int, n: int = 257, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Random gold labels and predictions that agree more often than chance."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < 0.6, gold, rng.integers(0, k, n))
    return pred, gold


def _scores(seed: int, n: int = 300, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Random regression targets in [0, 5] and correlated predictions (rounded when ``ties``)."""
    rng = np.random.default_rng(seed)
    gold = rng.uniform(0, 5, n)
    pred = gold + rng.normal(0, 1.0, n)
    if ties:  # few distinct values on both sides: many tied ranks
        gold, pred = np.round(gold), np.round(pred * 2) / 2
    return pred, gold


# ----------------------------------------------------------------------------- independent references
# The formulas written out in NumPy (layerkd computed the metrics this way before it used
# scikit-learn and SciPy): every golden-value test below compares the library against these.


def ref_f1(pred, gold, positive=1):
    pred, gold = np.asarray(pred) == positive, np.asarray(gold) == positive
    denom = float(pred.sum() + gold.sum())
    return 0.0 if denom == 0 else 2.0 * float((pred & gold).sum()) / denom


def ref_mcc(pred, gold):
    """Gorodkin's R_K from the confusion matrix."""
    pred, gold = np.asarray(pred, dtype=np.int64), np.asarray(gold, dtype=np.int64)
    k = int(max(pred.max(initial=0), gold.max(initial=0))) + 1
    cm = np.zeros((k, k))
    np.add.at(cm, (gold, pred), 1.0)
    t, p, c, s = cm.sum(axis=1), cm.sum(axis=0), np.trace(cm), cm.sum()
    denom = math.sqrt((s * s - t @ t) * (s * s - p @ p))
    return 0.0 if denom == 0 else float((c * s - t @ p) / denom)


def ref_pearson(x, y):
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x, y = x - x.mean(), y - y.mean()
    denom = math.sqrt((x * x).sum() * (y * y).sum())
    return 0.0 if denom == 0 else float((x * y).sum() / denom)


def ref_ranks(a):
    """1-based ranks, ties given their average rank (by sorting and walking runs of equal values)."""
    a = np.asarray(a, dtype=np.float64)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a))
    i = 0
    while i < len(a):
        j = i
        while j + 1 < len(a) and a[order[j + 1]] == a[order[i]]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def ref_spearman(x, y):
    return ref_pearson(ref_ranks(x), ref_ranks(y))


def ref_mse(pred, gold):
    d = np.asarray(pred, dtype=np.float64) - np.asarray(gold, dtype=np.float64)
    return float((d * d).mean())


# ----------------------------------------------------------------------------- golden values


@pytest.mark.parametrize("seed", SEEDS)
def test_accuracy_matches_the_reference(seed):
    pred, gold = _classes(seed, k=3)
    assert M.accuracy(pred, gold) == pytest.approx(float(np.mean(pred == gold)), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_f1_matches_the_reference_positive_class_1(seed):
    pred, gold = _classes(seed)
    assert M.f1_binary(pred, gold) == pytest.approx(ref_f1(pred, gold), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_f1_positive_class_is_1_not_0(seed):
    pred, gold = _classes(seed)
    # the F1 of class 0 is a different number; the metric must be the one of class 1
    f1_of_0 = ref_f1(pred, gold, positive=0)
    f1_of_1 = ref_f1(pred, gold, positive=1)
    assert f1_of_0 != pytest.approx(f1_of_1)
    assert M.f1_binary(pred, gold) == pytest.approx(f1_of_1, abs=1e-12)
    assert M.f1_binary(pred, gold, positive=0) == pytest.approx(f1_of_0, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [2, 3])
def test_mcc_matches_the_reference(seed, k):
    pred, gold = _classes(seed, k=k)
    assert M.matthews_correlation(pred, gold) == pytest.approx(ref_mcc(pred, gold), abs=1e-12)


def test_mcc_three_class_with_a_class_never_predicted():
    gold = np.array([0, 1, 2, 2, 1, 0, 2, 1, 0, 2])
    pred = np.array([0, 1, 1, 1, 1, 0, 1, 0, 0, 1])  # class 2 never predicted
    assert M.matthews_correlation(pred, gold) == pytest.approx(ref_mcc(pred, gold), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_pearson_matches_the_reference(seed):
    pred, gold = _scores(seed)
    assert M.pearson(pred, gold) == pytest.approx(ref_pearson(pred, gold), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ties", [False, True])
def test_spearman_matches_the_reference(seed, ties):
    pred, gold = _scores(seed, ties=ties)
    if ties:
        assert len(np.unique(gold)) < len(gold) // 10  # the case really has ties
    assert M.spearmanr(pred, gold) == pytest.approx(ref_spearman(pred, gold), abs=1e-12)


def test_spearman_ties_by_hand():
    # ranks of pred [1, 2, 2, 3] are [1, 2.5, 2.5, 4]; gold is already ranked [1, 2, 3, 4]
    x = np.array([1.0, 2.5, 2.5, 4.0]) - 2.5
    y = np.array([1.0, 2.0, 3.0, 4.0]) - 2.5
    expected = (x @ y) / math.sqrt((x @ x) * (y @ y))
    assert M.spearmanr([1, 2, 2, 3], [10, 20, 30, 40]) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.9486832980505138)


@pytest.mark.parametrize("seed", SEEDS)
def test_mse_matches_the_reference(seed):
    pred, gold = _scores(seed)
    assert M.mse(pred, gold) == pytest.approx(ref_mse(pred, gold), rel=1e-12)


def test_hand_computed_binary_values():
    pred = np.array([1, 1, 1, 0])
    gold = np.array([1, 1, 0, 0])  # TP 2, FP 1, TN 1, FN 0
    assert M.accuracy(pred, gold) == pytest.approx(0.75)
    assert M.f1_binary(pred, gold) == pytest.approx(2 * 2 / (2 * 2 + 1 + 0))  # 0.8
    assert M.matthews_correlation(pred, gold) == pytest.approx((2 * 1 - 1 * 0) / math.sqrt(3 * 2 * 1 * 2))


# ----------------------------------------------------------------------------- degenerate cases


@pytest.mark.parametrize("constant", [0, 1])
def test_mcc_is_zero_for_constant_predictions(constant):
    gold = np.array([0, 1, 1, 0, 1])
    pred = np.full(5, constant)
    assert M.matthews_correlation(pred, gold) == 0.0
    assert skm.matthews_corrcoef(gold, pred) == 0.0  # the same convention as scikit-learn


def test_mcc_is_zero_when_gold_and_pred_are_one_class():
    assert M.matthews_correlation([1, 1, 1], [1, 1, 1]) == 0.0


def test_mcc_perfect_and_inverted():
    gold = np.array([0, 1, 1, 0, 1, 0])
    assert M.matthews_correlation(gold, gold) == pytest.approx(1.0)
    assert M.matthews_correlation(1 - gold, gold) == pytest.approx(-1.0)


def test_f1_is_zero_without_any_positive():
    assert M.f1_binary([0, 0, 0], [0, 0, 0]) == 0.0
    assert M.f1_binary([0, 0, 0], [1, 1, 0]) == 0.0  # no predicted positives, some gold ones
    assert M.f1_binary([1, 1, 1], [0, 0, 0]) == 0.0  # no gold positives


def test_pearson_and_spearman_are_zero_for_constant_predictions():
    gold = [0.5, 1.0, 2.0, 4.5]
    assert M.pearson([3.0] * 4, gold) == 0.0
    assert M.spearmanr([3.0] * 4, gold) == 0.0


def test_accuracy_of_empty_input_is_nan():
    assert math.isnan(M.accuracy(np.array([]), np.array([])))
    assert math.isnan(M.mse(np.array([]), np.array([])))


def test_degenerate_cases_raise_no_warning():
    """The undefined cases are decided in layerkd.metrics, not left to the libraries' warnings."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert M.matthews_correlation([1, 1, 1], [1, 1, 1]) == 0.0
        assert M.matthews_correlation([1, 1, 1], [0, 1, 2]) == 0.0
        assert M.f1_binary([0, 0], [0, 0]) == 0.0
        assert M.pearson([1.0, 2.0], [3.0, 3.0]) == 0.0
        assert M.spearmanr([1.0], [2.0]) == 0.0


def test_the_references_are_not_the_libraries():
    """The references are spot-checked by hand, so that they cannot drift along with the code."""
    assert ref_ranks([3, 1, 3, 2]).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert ref_pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert ref_mcc([1, 1, 1, 0], [1, 1, 0, 0]) == pytest.approx(2 / math.sqrt(12))


# ----------------------------------------------------------------------------- helpers


def test_predictions_from_classification_logits_are_argmax():
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    np.testing.assert_array_equal(M.predictions_from_outputs(logits, regression=False), [1, 0, 2])


@pytest.mark.parametrize("shape", [(4, 1), (4,)])
def test_predictions_from_regression_outputs_are_the_single_value(shape):
    out = np.array([0.5, 1.5, -2.0, 4.25], dtype=np.float32).reshape(shape)
    pred = M.predictions_from_outputs(out, regression=True)
    assert pred.shape == (4,)
    assert pred.dtype == np.float64
    np.testing.assert_allclose(pred, [0.5, 1.5, -2.0, 4.25])


def test_compute_metrics_names_every_known_metric():
    pred, gold = _classes(0)
    out = M.compute_metrics(M.KNOWN_METRICS, pred, gold)
    assert list(out) == list(M.KNOWN_METRICS)
    assert out["accuracy"] == pytest.approx(float(np.mean(pred == gold)))
    assert out["f1"] == pytest.approx(ref_f1(pred, gold))
    assert out["matthews_correlation"] == pytest.approx(ref_mcc(pred, gold))
    assert out["pearson"] == pytest.approx(ref_pearson(pred, gold))
    assert out["spearmanr"] == pytest.approx(ref_spearman(pred, gold))
    assert out["mse"] == pytest.approx(ref_mse(pred, gold))


# ----------------------------------------------------------------------------- glue_score

ALL = {"accuracy": 0.8, "f1": 0.9, "matthews_correlation": 0.4, "pearson": 0.7, "spearmanr": 0.6}


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("MRPC", (0.9 + 0.8) / 2),
        ("mrpc", (0.9 + 0.8) / 2),
        ("QQP", (0.9 + 0.8) / 2),
        ("STS-B", (0.7 + 0.6) / 2),
        ("sts_b", (0.7 + 0.6) / 2),
        ("stsb", (0.7 + 0.6) / 2),
        ("CoLA", 0.4),
        ("SST-2", 0.8),
        ("MNLI", 0.8),
        ("QNLI", 0.8),
        ("RTE", 0.8),
        ("WNLI", 0.8),
        ("my-custom-task", 0.8),
    ],
)
def test_glue_score_per_task(task, expected):
    assert M.glue_score(task, ALL) == pytest.approx(expected)


def test_glue_score_uses_what_is_present_and_nan_when_nothing_is():
    assert M.glue_score("MRPC", {"accuracy": 0.5}) == pytest.approx(0.5)
    assert math.isnan(M.glue_score("CoLA", {"accuracy": 0.9}))
