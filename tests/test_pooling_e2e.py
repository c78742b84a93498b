"""End to end on real data (STS-B, one epoch each): the v2 setting's student — the bottom 2
blocks cut from a teacher fine-tuned with a mean-pooled head — learns far better when its
classifier reads the masked token mean (as the teacher's head was trained to) than when it reads
[CLS]. Same teacher, cut, data, budget and seed for both; benchmarks/results/calibration.md has
the full-data numbers."""

from __future__ import annotations

import pytest

from layerkd.config import validate_run_config
from layerkd.stages.distill import distill
from layerkd.stages.finetune import finetune

pytestmark = [pytest.mark.shared, pytest.mark.slow]

DATA = {"validation": {"max_rows": 150}}
TRAIN = {"lr": 1e-4, "batch_size": 32, "max_length": 64, "eval_batch_size": 256}


def test_mean_pooled_student_beats_the_cls_one_on_sts_b(minilm_dir, glue_dir, tmp_path):
    data = {"data_dir": str(glue_dir), **DATA}
    finetune(validate_run_config({  # one epoch on the training set (less 150 validation rows) each
        "task": "sts-b", "model": str(minilm_dir), "pooling": "mean", "output_dir": str(tmp_path / "teacher"),
        "data": data, "train": {**TRAIN, "epochs": 1, "lr": 5e-5, "seed": 42}}),
        progress=False)
    scores = {}
    for pooling in ("cls", "mean"):
        res = distill(validate_run_config({
            "task": "sts-b", "teacher": {"path": str(tmp_path / "teacher")}, "student": "bottom:2", "method": "ce",
            "pooling": pooling, "output_dir": str(tmp_path / pooling), "cache": {"enabled": False},
            "data": data, "train": {**TRAIN, "epochs": 1, "seed": 1}}), progress=False)
        scores[pooling] = res["best"]["pearson"]
    assert scores["mean"] > scores["cls"] + 0.15, scores
