"""The `ild` suite's 13 methods end to end on a regression task (STS-B's kind: one real-valued
output, MSE instead of KL, Pearson/Spearman): every method trains, its dev predictions are real
numbers that vary, and the plain rows learn the task. The classification twin is
tests/test_methods_e2e.py; this guards the STS-B cells of the suites, which run hours after a
classification-only bug would have been caught."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from layerkd import toy
from layerkd.config import validate_run_config
from layerkd.stages.distill import distill
from layerkd.stages.finetune import finetune

REG_TASK = {"name": "toy-score", "text_columns": ["sentence"], "label_column": "label", "regression": True}
ILD_METHODS = ["ce", "kd", "pkd", "tinybert", "ckd", "alp", "alp-no", "rail", "rail-c", "internal", "universal",
               "universal+alp", "universal+rail"]


@pytest.fixture(scope="module")
def reg_setup(tmp_path_factory):
    """Toy sentiment rows read as a 0/1 score, and a tiny BERT regression teacher fine-tuned on them."""
    d = tmp_path_factory.mktemp("toy-regression")
    train, dev = toy.write_sentiment_data(d / "data", n_train=300, n_dev=100, seed=0, noise=0.0, max_extra_clauses=0)
    bert = toy.write_tiny_bert(d / "bert", num_labels=1, layers=4, hidden=32, heads=4, intermediate=64)
    finetune(validate_run_config({
        "task": REG_TASK, "data": {"train_file": str(train), "dev_file": str(dev)}, "model": str(bert),
        "train": {"epochs": 6, "lr": 2e-3, "batch_size": 16, "max_length": 32, "seed": 0, "warmup_ratio": 0.0},
        "output_dir": str(d / "teacher")}), progress=False)
    return d, train, dev


@pytest.mark.parametrize("method", ILD_METHODS)
def test_ild_method_trains_on_a_regression_task(method, reg_setup, tmp_path):
    d, train, dev = reg_setup
    out = tmp_path / method
    res = distill(validate_run_config({
        "task": REG_TASK, "data": {"train_file": str(train), "dev_file": str(dev)},
        "teacher": {"path": str(d / "teacher"), "fit_heads": {"epochs": 1, "lr": 5e-3}}, "student": "bottom:2",
        "method": method, "output_dir": str(out), "cache": {"dir": str(d / "cache")},
        "train": {"epochs": 3, "lr": 3e-3, "batch_size": 16, "max_length": 32, "seed": 0, "warmup_ratio": 0.0}}),
        progress=False)
    assert set(res["best"]) >= {"pearson", "spearmanr"} and res["main_metric"] == "pearson"
    losses = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()
              if json.loads(line)["event"] == "train"]
    assert losses and all(math.isfinite(v) for v in losses)
    preds = np.asarray(json.loads((out / "results.json").read_text())["dev_predictions"]["best"], dtype=float)
    assert preds.shape == (100,) and np.isfinite(preds).all() and preds.std() > 1e-3  # real scores, not one class id
    assert not np.allclose(preds, np.round(preds))
    if method in ("ce", "kd"):
        assert res["best"]["pearson"] > 0.3, res["best"]
