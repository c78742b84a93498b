"""Metrics, implemented with NumPy (tested against scikit-learn and SciPy).

Names follow the usual GLUE/`evaluate` spelling so that ``metrics.json`` can be read by other
tools: ``accuracy``, ``f1`` (binary F1 of class 1, the positive class in MRPC/QQP),
``matthews_correlation``, ``pearson``, ``spearmanr``, ``mse``.

:func:`glue_score` is the per-task number the GLUE leaderboard averages: the mean of a task's
official metrics (MRPC/QQP: F1 and accuracy; STS-B: Pearson and Spearman; CoLA: MCC; others:
accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

KNOWN_METRICS = ("accuracy", "f1", "matthews_correlation", "pearson", "spearmanr", "mse")


def accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    pred, gold = np.asarray(pred), np.asarray(gold)
    return float((pred == gold).mean()) if len(gold) else float("nan")


def f1_binary(pred: np.ndarray, gold: np.ndarray, positive: int = 1) -> float:
    pred, gold = np.asarray(pred) == positive, np.asarray(gold) == positive
    tp = float(np.sum(pred & gold))
    denom = float(np.sum(pred) + np.sum(gold))
    return 0.0 if denom == 0 else 2.0 * tp / denom


def matthews_correlation(pred: np.ndarray, gold: np.ndarray) -> float:
    """Multi-class MCC (Gorodkin's R_K); equals the binary MCC for two classes. 0 when undefined."""
    pred, gold = np.asarray(pred).astype(np.int64), np.asarray(gold).astype(np.int64)
    k = int(max(pred.max(initial=0), gold.max(initial=0))) + 1
    cm = np.zeros((k, k), dtype=np.float64)
    np.add.at(cm, (gold, pred), 1.0)
    t = cm.sum(axis=1)  # true counts per class
    p = cm.sum(axis=0)  # predicted counts per class
    c = np.trace(cm)
    s = cm.sum()
    cov_ytyp = c * s - t @ p
    cov_ypyp = s * s - p @ p
    cov_ytyt = s * s - t @ t
    denom = np.sqrt(cov_ytyt * cov_ypyp)
    return 0.0 if denom == 0 else float(cov_ytyp / denom)


def pearson(pred: np.ndarray, gold: np.ndarray) -> float:
    x, y = np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return 0.0 if denom == 0 else float((x * y).sum() / denom)


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as scipy.stats.rankdata 'average')."""
    a = np.asarray(a, dtype=np.float64)
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    # boundaries of runs of equal values
    starts = np.r_[0, np.flatnonzero(sorted_a[1:] != sorted_a[:-1]) + 1]
    ends = np.r_[starts[1:], len(a)]
    avg = (starts + ends + 1) / 2.0  # mean of 1-based ranks starts+1 .. ends
    ranks_sorted = np.repeat(avg, ends - starts)
    ranks = np.empty_like(ranks_sorted)
    ranks[order] = ranks_sorted
    return ranks


def spearmanr(pred: np.ndarray, gold: np.ndarray) -> float:
    return pearson(_average_ranks(pred), _average_ranks(gold))


def mse(pred: np.ndarray, gold: np.ndarray) -> float:
    d = np.asarray(pred, dtype=np.float64) - np.asarray(gold, dtype=np.float64)
    return float((d * d).mean())


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
