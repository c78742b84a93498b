"""Label order between a model and a task (``layerkd.models.labels``): matched by name, never by
position when the names disagree (issue 19, points 5 and 17)."""

from __future__ import annotations

import json

import pytest
import torch

from clihelp import assert_user_error, run_cli
from conftest import distill_config
from layerkd import toy
from layerkd.errors import ModelError
from layerkd.models.labels import is_generic, label_permutation
from layerkd.models.load import build_student, load_model
from layerkd.tasks import task_from_config

# the toy task with its two labels listed the other way round (the data files are the same)
REVERSED = {**toy.TOY_TASK, "name": "toy-sentiment-reversed", "labels": ["1", "0"]}
X = {"input_ids": torch.tensor([[2, 5, 7, 3], [2, 9, 4, 3]]), "attention_mask": torch.ones(2, 4, dtype=torch.long)}


def _logits(model) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(X).require_logits()


@pytest.mark.parametrize(("model", "task", "expected"), [
    (["neg", "pos"], ["neg", "pos"], None),
    (["neg", "pos"], ["pos", "neg"], [1, 0]),
    (["NEGATIVE", " Positive"], ["positive", "negative"], [1, 0]),  # case and stray spaces ignored
    (["a", "b", "c"], ["c", "a", "b"], [2, 0, 1]),
    (["LABEL_0", "LABEL_1"], ["pos", "neg"], None),  # generic names: position is all there is
    (["LABEL_0", "LABEL_1"], ["LABEL_1", "LABEL_0"], [1, 0]),  # ... unless the task uses the same names
])
def test_permutation_by_name(model, task, expected):
    assert label_permutation(model, task, task="t", where="m") == expected


@pytest.mark.parametrize(("model", "task"), [
    (["0", "1"], ["entailment", "not_entailment"]),  # an MRPC model scored as RTE
    (["neg", "pos"], ["neg", "positive"]),
    (["LABEL_1", "LABEL_0"], ["x", "y"]),  # not generic: LABEL_i at another index is a name
    (["pos", "pos"], ["pos", "neg"]),
])
def test_names_that_cannot_be_matched_are_an_error(model, task):
    with pytest.raises(ModelError, match=r"m: the model's labels .* do not match task t's labels"):
        label_permutation(model, task, task="t", where="m")
    assert not is_generic(model)


def test_a_reversed_task_reorders_the_teacher_by_name(tiny_teacher_dir, toy_task):
    same = load_model(tiny_teacher_dir, toy_task)
    rev = load_model(tiny_teacher_dir, task_from_config(REVERSED))
    assert torch.equal(_logits(rev), _logits(same)[:, [1, 0]])
    assert rev.config.id2label == {0: "1", 1: "0"} and rev.config.label2id == {"1": 0, "0": 1}
    assert same.config.id2label == {0: "0", 1: "1"}  # nothing to do: left as it is


def test_a_student_given_as_a_path_is_reordered_too(tiny_teacher_dir, toy_task):
    rev_task = task_from_config(REVERSED)
    teacher = load_model(tiny_teacher_dir, rev_task)
    student = build_student(str(tiny_teacher_dir), teacher, rev_task)
    assert torch.equal(_logits(student), _logits(load_model(tiny_teacher_dir, toy_task))[:, [1, 0]])


def test_a_bilstm_saved_for_one_order_loads_in_the_other(tmp_path, toy_task, toy_data):
    from layerkd.data.readers import read_file
    from layerkd.models.rnn_cnn import build_rnn_cnn

    torch.manual_seed(0)
    model = build_rnn_cnn("bilstm", {"layers": "1", "hidden": "8", "embed": "8"}, toy_task,
                          train_texts=read_file(toy_task, toy_data[0], None, split="train"))
    model.save_pretrained(tmp_path / "lstm")
    same, rev = load_model(tmp_path / "lstm", toy_task), load_model(tmp_path / "lstm", task_from_config(REVERSED))
    assert torch.equal(_logits(rev), _logits(same)[:, [1, 0]])
    assert rev.config["labels"] == ["1", "0"]


def test_evaluate_under_a_reversed_task_scores_the_same(tiny_teacher_dir, toy_data, tmp_path, capsys):
    from layerkd.stages.evaluate import evaluate_model

    dev = str(toy_data[1])
    same = evaluate_model(str(tiny_teacher_dir), task_from_config(toy.TOY_TASK), file=dev)
    rev = evaluate_model(str(tiny_teacher_dir), task_from_config(REVERSED), file=dev)
    assert same["accuracy"] > 0.8 and rev["accuracy"] == same["accuracy"]  # by position it would be 1 - accuracy


def test_distilling_from_a_teacher_with_the_other_label_order(tiny_teacher_dir, toy_data, tmp_path):
    """The teacher says {0: "0", 1: "1"}, the task lists ["1", "0"]: the student (pure KD, no gold
    labels) learns the teacher's predictions in the task's order — from the cache, which is built
    from the reordered teacher."""
    from layerkd.stages.distill import distill

    recipe = {"recipe": {"objectives": [{"name": "kd", "weight": 1.0, "temperature": 2.0}]}, "method": None}
    cfg = distill_config(tiny_teacher_dir, toy_data, None, tmp_path / "rev", epochs=2, task=REVERSED, extra=recipe)
    result = distill(cfg, progress=False)
    assert result["best"]["accuracy"] > 0.8  # by position it would be below 0.2
    assert result["diagnostics"]["teacher_source"][0]["mode"] == "cache"
    saved = json.loads((tmp_path / "rev" / "config.json").read_text())
    assert saved["id2label"] == {"0": "1", "1": "0"}  # the student is saved in the task's order


def test_finetuning_a_fine_tuned_model_under_the_other_order_keeps_what_it_knew(tiny_teacher_dir, toy_data, tmp_path):
    from layerkd.config import validate_run_config
    from layerkd.stages.finetune import finetune

    train, dev = toy_data
    cfg = validate_run_config({
        "task": REVERSED, "data": {"train_file": str(train), "dev_file": str(dev)}, "model": str(tiny_teacher_dir),
        "train": {"epochs": 1, "max_steps": 1, "lr": 1e-9, "batch_size": 16, "max_length": 32, "seed": 0},
        "output_dir": str(tmp_path / "ft"),
    })
    assert finetune(cfg, progress=False)["best"]["accuracy"] > 0.8


def _renamed_teacher(src, dst, labels):
    import shutil

    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["id2label"] = {str(i): n for i, n in enumerate(labels)}
    cfg["label2id"] = {n: i for i, n in enumerate(labels)}
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_cli_refuses_a_teacher_whose_names_do_not_match(tiny_teacher_dir, toy_data, tmp_path, capsys):
    teacher = _renamed_teacher(tiny_teacher_dir, tmp_path / "teacher", ["neg", "pos"])
    train, dev = toy_data
    code, _, err = run_cli("distill", "--teacher", teacher, "--student", "bottom:2", "--method", "kd",
                           "--config", _toy_config(tmp_path, train, dev), "--output-dir", tmp_path / "out", capsys=capsys)
    assert_user_error(code, err, r"teacher: the model's labels \['neg', 'pos'\] do not match task toy-sentiment's labels \['0', '1'\]")
    assert not (tmp_path / "out").exists()


def test_cli_evaluate_with_the_wrong_task_is_an_error(tiny_teacher_dir, tmp_path, capsys):
    rte = tmp_path / "rte.tsv"
    rte.write_text("sentence1\tsentence2\tlabel\nthe movie was good\tit was good\tentailment\n")
    code, _, err = run_cli("evaluate", tiny_teacher_dir, "--task", "rte", "--file", rte, "--output", tmp_path / "r.json",
                           capsys=capsys)
    assert_user_error(code, err, r"do not match task RTE's labels \['entailment', 'not_entailment'\]")
    assert not (tmp_path / "r.json").exists()


def _toy_config(tmp_path, train, dev):
    import yaml

    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump({"task": toy.TOY_TASK, "data": {"train_file": str(train), "dev_file": str(dev)},
                                 "train": {"epochs": 1, "max_length": 32}, "cache": {"dir": str(tmp_path / "cache")}}))
    return p
