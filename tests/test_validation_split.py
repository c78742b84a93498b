"""The carved validation split (layerkd.data.validation): its draw, and that no choice of a run
looks at the test set (the evaluation split)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from layerkd import toy
from layerkd.config import validate_run_config
from layerkd.data.validation import carve_rows
from layerkd.stages.finetune import finetune


def test_carve_is_stratified_capped_and_fixed_by_its_seed():
    labels = [0] * 900 + [1] * 100
    rows = carve_rows(labels, fraction=0.1, max_rows=2000, seed=3, stratify=True)
    assert Counter(labels[i] for i in rows) == {0: 90, 1: 10}  # each label keeps its share
    assert rows == sorted(set(rows))
    assert rows == carve_rows(labels, fraction=0.1, max_rows=2000, seed=3, stratify=True)
    assert rows != carve_rows(labels, fraction=0.1, max_rows=2000, seed=4, stratify=True)
    capped = carve_rows(labels, fraction=0.1, max_rows=50, seed=3, stratify=True)
    assert Counter(labels[i] for i in capped) == {0: 45, 1: 5}
    # a rare label with two rows keeps one in training and gives one to validation
    rare = carve_rows([0] * 98 + [1] * 2, fraction=0.1, max_rows=2000, seed=0, stratify=True)
    assert Counter(([0] * 98 + [1] * 2)[i] for i in rare)[1] == 1
    assert len(carve_rows([0.5] * 300, fraction=0.1, max_rows=2000, seed=0, stratify=False)) == 30


def _run(tiny_bert_dir, train, dev, out):
    return finetune(validate_run_config({
        "task": toy.TOY_TASK, "data": {"train_file": str(train), "dev_file": str(dev)}, "model": str(tiny_bert_dir),
        "train": {"epochs": 3, "lr": 3e-3, "batch_size": 16, "max_length": 32, "seed": 0, "eval_every_steps": 10},
        "output_dir": str(out)}), progress=False)


def test_no_choice_looks_at_the_test_set(tiny_bert_dir, toy_data, tmp_path):
    """Flip every label of the test file: the run must choose the same epoch, train the same
    weights and report the same validation scores; only the test numbers change."""
    train, dev = toy_data
    flipped = tmp_path / "dev-flipped.tsv"
    lines = dev.read_text().splitlines()
    flipped.write_text("\n".join([lines[0]] + [f"{t}\t{1 - int(y)}" for t, y in (ln.split("\t") for ln in lines[1:])]) + "\n")
    a = _run(tiny_bert_dir, train, dev, tmp_path / "a")
    b = _run(tiny_bert_dir, train, flipped, tmp_path / "b")
    assert a["selection"]["split"] == "validation" and a["selection"]["rows"] == 60  # 10 % of 600
    assert a["selection"]["row_ids"] == b["selection"]["row_ids"] and len(a["selection"]["row_ids"]) == 60
    assert (a["best_step"], a["best_epoch"]) == (b["best_step"], b["best_epoch"])
    assert a["history"] == b["history"] and a["selection"]["best"] == b["selection"]["best"]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert a["best"]["accuracy"] == pytest.approx(1 - b["best"]["accuracy"])  # the test set was scored, once flipped
    assert a["train_rows"] == 540
    evals = [r for r in map(json.loads, (tmp_path / "a" / "log.jsonl").read_text().splitlines()) if r["event"] == "eval"]
    assert evals and {r["split"] for r in evals} == {"validation"}  # every evaluation during training


def test_too_small_a_training_set_selects_on_the_evaluation_split(tiny_bert_dir, tmp_path):
    rows = "sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in toy.sentiment_examples(12, 0))
    (tmp_path / "train.tsv").write_text(rows)
    res = _run(tiny_bert_dir, tmp_path / "train.tsv", tmp_path / "train.tsv", tmp_path / "run")
    assert res["selection"]["split"] == "dev" and res["train_rows"] == 12
