"""Data by name (issue 21 point 6): ``--hf-dataset`` on finetune/distill/evaluate, from a
``save_to_disk`` directory and a parquet folder, offline; a ClassLabel or float label column
defines the task without ``--task``."""

from __future__ import annotations

import json

import pytest
import yaml

from clihelp import assert_user_error, run_cli
from layerkd import toy

datasets = pytest.importorskip("datasets")


@pytest.fixture(autouse=True)
def _private_datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")  # never the user's cache


def _rows(n, seed, names=None):
    rows = toy.sentiment_examples(n, seed, noise=0.0, max_extra_clauses=0)
    return {"text": [t for t, _ in rows], "stars": [y for _, y in rows]}


def _dataset(names=("neg", "pos"), n=48):
    feats = datasets.Features({"text": datasets.Value("string"), "stars": datasets.ClassLabel(names=list(names))})
    return datasets.DatasetDict({"train": datasets.Dataset.from_dict(_rows(n, 0), features=feats),
                                 "validation": datasets.Dataset.from_dict(_rows(16, 1), features=feats)})


def test_save_to_disk_dataset_defines_the_task(tmp_path, tiny_bert_dir, capsys):
    _dataset().save_to_disk(str(tmp_path / "reviews"))
    out = tmp_path / "run"
    code, _, err = run_cli("finetune", "--model", tiny_bert_dir, "--hf-dataset", tmp_path / "reviews", "--text-columns", "text",
                           "--label-column", "stars", "--epochs", "1", "--batch-size", "16", "--max-length", "32",
                           "--output-dir", out, capsys=capsys)
    assert code == 0, err
    task = yaml.safe_load((out / "config.yaml").read_text())["task"]
    assert task["name"] == "hf-reviews" and task["labels"] == ["neg", "pos"] and task["metrics"] == ["accuracy", "f1"]
    assert task["text_columns"] == ["text"] and task["label_column"] == "stars"
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "neg", "1": "pos"}
    code, stdout, err = run_cli("evaluate", out, "--hf-dataset", tmp_path / "reviews", "--text-columns", "text",
                                "--label-column", "stars", "--split", "dev", capsys=capsys)  # dev: the validation split
    assert code == 0, err
    res = json.loads(stdout)
    assert res["rows"] == 16 and {"accuracy", "f1"} <= set(res)
    # the same data under a registered task: --text-columns/--label-column rename its columns
    code, _, err = run_cli("distill", "--teacher", out, "--student", "bottom:1", "--method", "kd", "--task", "sst-2",
                           "--hf-dataset", tmp_path / "reviews", "--text-columns", "text", "--label-column", "stars",
                           "--epochs", "1", "--batch-size", "16", "--max-length", "32", "--output-dir", tmp_path / "d",
                           capsys=capsys)
    assert_user_error(code, err, r"the model's labels \['neg', 'pos'\] do not match task SST-2's labels")


def test_parquet_folder_classes_and_regression(tmp_path):
    from layerkd.data.hf_task import infer_task
    from layerkd.data.readers import read_split
    from layerkd.tasks import task_from_config

    three = _dataset(names=("bad", "meh", "good"))
    folder = tmp_path / "pq"
    folder.mkdir()
    for split, ds in three.items():
        ds.to_parquet(str(folder / f"{split}.parquet"))
    spec = infer_task(str(folder), None, "text_a=text,label=stars")
    assert spec["labels"] == ["bad", "meh", "good"] and spec["metrics"] == ["accuracy"]
    dev = read_split(task_from_config(spec), "dev", hf_dataset=str(folder))
    assert len(dev) == 16 and {e.label for e in dev.examples} <= {0, 1}

    reg = datasets.Dataset.from_dict({"a": ["x y", "y z"], "b": ["z", "x"], "score": [0.5, 4.0]})
    (tmp_path / "sts").mkdir()
    reg.to_parquet(str(tmp_path / "sts" / "train.parquet"))
    spec = infer_task(str(tmp_path / "sts"), None, "text_a=a,text_b=b,label=score")
    assert spec.get("regression") is True and spec["metrics"] == ["pearson", "spearmanr"]
    assert spec["text_columns"] == ["a", "b"]
    train = read_split(task_from_config(spec), "train", hf_dataset=str(tmp_path / "sts"))
    assert [e.label for e in train.examples] == [0.5, 4.0] and train.examples[0].text_b == "z"


def test_labels_without_class_names_need_a_task(tmp_path, tiny_bert_dir, capsys):
    datasets.Dataset.from_dict({"text": ["good", "bad"], "y": [1, 0]}).save_to_disk(str(tmp_path / "ints"))
    code, _, err = run_cli("finetune", "--model", tiny_bert_dir, "--hf-dataset", tmp_path / "ints", "--text-columns", "text",
                           "--label-column", "y", "--output-dir", tmp_path / "o", capsys=capsys)
    assert_user_error(code, err, r"label column 'y' is int64, not a ClassLabel .* give --task or a task in the config")
    assert not (tmp_path / "o").exists()
