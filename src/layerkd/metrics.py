"""Metrics, computed with scikit-learn and SciPy (tested against independent NumPy references).

Names follow the usual GLUE/`evaluate` spelling so that ``metrics.json`` can be read by other
tools: ``accuracy``, ``f1`` (binary F1 of class 1, the positive class in MRPC/QQP),
``matthews_correlation``, ``pearson``, ``spearmanr``, ``mse``.

Undefined values, decided here rather than left to the libraries' warnings:

* MCC is 0 when it is undefined (constant predictions or a single gold class), as scikit-learn;
* F1 is 0 when there is no positive example in either the predictions or the gold labels;
* Pearson and Spearman are 0 when either side is constant (or has fewer than two values), where
  SciPy would return NaN with a warning: a student that predicts one value has no correlation;
* accuracy and MSE of an empty input are NaN.

:func:`glue_score` is the per-task number the GLUE leaderboard averages: the mean of a task's
official metrics (MRPC/QQP: F1 and accuracy; STS-B: Pearson and Spearman; CoLA: MCC; others:
accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn import metrics as skm

KNOWN_METRICS = ("accuracy", "f1", "matthews_correlation", "pearson", "spearmanr", "mse")


def accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    pred, gold = np.asarray(pred), np.asarray(gold)
    return float(skm.accuracy_score(gold, pred)) if len(gold) else float("nan")


def f1_binary(pred: np.ndarray, gold: np.ndarray, positive: int = 1) -> float:
    """F1 of class ``positive`` (every other class counts as negative)."""
    pred, gold = np.asarray(pred) == positive, np.asarray(gold) == positive
    if not len(gold):
        return 0.0
    return float(skm.f1_score(gold, pred, pos_label=True, average="binary", zero_division=0.0))


def matthews_correlation(pred: np.ndarray, gold: np.ndarray) -> float:
    """Multi-class MCC (Gorodkin's R_K); equals the binary MCC for two classes. 0 when undefined."""
    pred, gold = np.asarray(pred).astype(np.int64), np.asarray(gold).astype(np.int64)
    if not len(gold) or (np.all(pred == pred[0]) and np.all(gold == gold[0])):
        return 0.0  # undefined; scikit-learn says 0 too, after a warning for the single-class case
    return float(skm.matthews_corrcoef(gold, pred))


def _constant(x: np.ndarray) -> bool:
    return len(x) < 2 or bool(np.all(x == x[0]))


def pearson(pred: np.ndarray, gold: np.ndarray) -> float:
    x, y = np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    if _constant(x) or _constant(y):
        return 0.0
    return float(stats.pearsonr(x, y)[0])


def spearmanr(pred: np.ndarray, gold: np.ndarray) -> float:
    """Spearman's rank correlation (ties get their average rank)."""
    x, y = np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    if _constant(x) or _constant(y):
        return 0.0
    return float(stats.spearmanr(x, y)[0])


def mse(pred: np.ndarray, gold: np.ndarray) -> float:
    pred, gold = np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    return float(skm.mean_squared_error(gold, pred)) if len(gold) else float("nan")


_FUNCS = {
    "accuracy": accuracy,
    "f1": f1_binary,
    "matthews_correlation": matthews_correlation,
    "pearson": pearson,
    "spearmanr": spearmanr,
    "mse": mse,
}


def predictions_from_outputs(outputs: np.ndarray, regression: bool) -> np.ndarray:
    """Class ids (argmax of logits) or regression values (the single output)."""
    outputs = np.asarray(outputs)
    if regression:
        return outputs.reshape(len(outputs), -1)[:, 0].astype(np.float64)
    return outputs.argmax(axis=-1)


def compute_metrics(names: Sequence[str], pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Every named metric of ``pred`` against ``gold``."""
    return {name: _FUNCS[name](pred, gold) for name in names}


# The metrics the GLUE leaderboard averages for each task.
_GLUE_SCORE_METRICS = {
    "cola": ("matthews_correlation",),
    "mrpc": ("f1", "accuracy"),
    "qqp": ("f1", "accuracy"),
    "stsb": ("pearson", "spearmanr"),
}


def glue_score(task_name: str, metrics: dict[str, float]) -> float:
    """The per-task GLUE score (mean of the task's official metrics), in [0, 1] units."""
    key = task_name.lower().replace("-", "").replace("_", "")
    names = _GLUE_SCORE_METRICS.get(key, ("accuracy",))
    present = [metrics[n] for n in names if n in metrics]
    return float(np.mean(present)) if present else float("nan")
