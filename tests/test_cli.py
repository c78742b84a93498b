"""CLI: finetune → evaluate end to end, help texts, and the bad-input catalogue of issue 2
(one clear line, exit code 2, no half-written output directory)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clihelp import assert_user_error, run_cli
from layerkd import toy


@pytest.fixture(scope="module")
def glue_like(tmp_path_factory) -> Path:
    """A GLUE-layout directory whose SST-2 holds toy sentences (the toy tokenizer knows them)."""
    root = tmp_path_factory.mktemp("glue")
    d = root / "SST-2"
    d.mkdir()
    for split, n, seed in (("train", 200, 0), ("dev", 60, 1)):
        rows = toy.sentiment_examples(n, seed=seed)
        (d / f"{split}.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    return root


def _finetune_args(model, data_dir, out, *extra):
    return ["finetune", "--model", model, "--task", "sst-2", "--data-dir", data_dir, "--output-dir", out,
            "--epochs", "1", "--batch-size", "16", "--max-length", "32", "--lr", "1e-3", *extra]


def test_help_lists_the_commands(capsys):
    code, out, _ = run_cli("--help", capsys=capsys)
    assert code == 0
    for cmd in ("finetune", "evaluate", "distill", "methods", "demo", "cache"):
        assert cmd in out


def test_finetune_then_evaluate(tiny_bert_dir, glue_like, tmp_path, capsys):
    out = tmp_path / "model"
    code, stdout, err = run_cli(*_finetune_args(tiny_bert_dir, glue_like, out), capsys=capsys)
    assert code == 0, err
    assert "saved to" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0
    # a Hugging Face-loadable directory
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    AutoModelForSequenceClassification.from_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(out))
    # evaluate the saved model on the GLUE split: the same score as training reported
    code, stdout, err = run_cli("evaluate", out, "--task", "sst-2", "--data-dir", glue_like, "--max-length", "32", capsys=capsys)
    assert code == 0, err
    res = json.loads(stdout)
    assert res["accuracy"] == pytest.approx(metrics["accuracy"])
    assert json.loads((out / "eval-split-dev.json").read_text())["accuracy"] == pytest.approx(metrics["accuracy"])
    # and on any labelled file with a column mapping (e.g. an out-of-domain set)
    other = tmp_path / "ood.tsv"
    rows = toy.sentiment_examples(30, seed=9)
    other.write_text("id\ttext\tgold\n" + "".join(f"{i}\t{t}\t{y}\n" for i, (t, y) in enumerate(rows)))
    code, stdout, err = run_cli("evaluate", out, "--task", "sst-2", "--file", other, "--columns", "text_a=text,label=gold",
                                "--max-length", "32", capsys=capsys)
    assert code == 0, err
    assert json.loads(stdout)["rows"] == 30


def _bad_glue(tmp_path, train_text: str | None, dev_text: str | None = "sentence\tlabel\ngood movie\t1\n") -> Path:
    root = tmp_path / "glue"
    (root / "SST-2").mkdir(parents=True)
    if train_text is not None:
        (root / "SST-2" / "train.tsv").write_text(train_text)
    if dev_text is not None:
        (root / "SST-2" / "dev.tsv").write_text(dev_text)
    return root


def test_distill_prints_best_and_last_of_the_run(tiny_teacher_dir, toy_data, tmp_path, capsys):
    """`layerkd distill` prints the method, the best and last epochs' metrics and the output
    directory, and what it prints is what the run wrote."""
    import yaml

    train, dev = toy_data
    cfg = {"task": toy.TOY_TASK, "data": {"train_file": str(train), "dev_file": str(dev)},
           "teacher": {"path": str(tiny_teacher_dir)}, "student": "bottom:1", "method": "kd",
           "train": {"epochs": 1, "batch_size": 32, "max_length": 32, "seed": 0}, "cache": {"dir": str(tmp_path / "cache")}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "student"
    code, stdout, err = run_cli("distill", "--config", tmp_path / "run.yaml", "--output-dir", out, capsys=capsys)
    assert code == 0, err
    lines = stdout.strip().splitlines()[-3:]
    assert lines[0].startswith("method kd: best (epoch 1): ")
    assert lines[1].startswith("last: ")
    assert lines[2] == f"saved to {out}"
    acc = json.loads((out / "metrics.json").read_text())["accuracy"]
    assert f"{acc:.4f}" in lines[1]


def test_fit_heads_standardises_by_default_and_reports_every_layer(tiny_teacher_dir, glue_like, tmp_path, capsys):
    """`layerkd fit-heads` fits one head per intermediate layer, prints each layer's dev score as
    its report.json records it, and stores the z-scoring statistics unless --no-standardize."""
    from safetensors.torch import load_file

    args = ("fit-heads", "--teacher", tiny_teacher_dir, "--task", "sst-2", "--data-dir", glue_like,
            "--epochs", "1", "--max-length", "32")
    code, stdout, err = run_cli(*args, "--output-dir", tmp_path / "std", capsys=capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "std" / "report.json").read_text())
    assert stdout.splitlines() == [f"layer {k}: accuracy = {v:.4f}" for k, v in report["dev_scores"].items()]
    assert list(report["dev_scores"]) == ["1", "2", "3"]  # the 4-layer teacher's intermediate layers
    assert json.loads((tmp_path / "std" / "heads.json").read_text())["standardize"] is True
    assert {"shift", "scale"} <= set(load_file(str(tmp_path / "std" / "heads.safetensors")))
    code, _, err = run_cli(*args, "--no-standardize", "--output-dir", tmp_path / "raw", capsys=capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "raw" / "heads.json").read_text())["standardize"] is False
    assert not {"shift", "scale"} & set(load_file(str(tmp_path / "raw" / "heads.safetensors")))
    code, _, err = run_cli(*args, "--layers", "4,9", "--output-dir", tmp_path / "bad", capsys=capsys)
    assert_user_error(code, err, r"teacher\.fit_heads\.layers: layer 9 is out of the teacher's range 1\.\.4")
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    ("case", "pattern"),
    [
        ("missing data dir", r"GLUE data directory not found"),
        ("missing split", r"train split not found: .*train\.tsv"),
        ("wrong field count", r"train\.tsv line 3: expected 2 tab-separated fields, found 3"),
        ("unknown label", r"train\.tsv line 2: label '7' is not one of the task's labels"),
        ("empty split", r"train\.tsv: no data rows"),
        ("unknown task", r"unknown task 'nope'"),
        ("model path not a model", r"is not a model directory"),
        ("existing output dir", r"exists, is not empty and was not created by layerkd \(no \.layerkd-run marker\)"),
    ],
)
def test_finetune_bad_input(case, pattern, tiny_bert_dir, tmp_path, capsys):
    good = "sentence\tlabel\ngood movie\t1\nbad film\t0\n"
    train_text = {
        "missing split": None,
        "wrong field count": "sentence\tlabel\ngood movie\t1\nbad\tfilm\t0\n",
        "unknown label": "sentence\tlabel\ngood movie\t7\n",
        "empty split": "sentence\tlabel\n",
    }.get(case, good)
    data = tmp_path / "nowhere" if case == "missing data dir" else _bad_glue(tmp_path, train_text)
    model = tmp_path / "not-a-model" if case == "model path not a model" else tiny_bert_dir
    if case == "model path not a model":
        model.mkdir()
        (model / "weights.bin").write_text("x")
    out = tmp_path / "out"
    if case == "existing output dir":
        out.mkdir()
        (out / "keep.txt").write_text("precious")
    task = "nope" if case == "unknown task" else "sst-2"
    args = _finetune_args(model, data, out)
    args[args.index("--task") + 1] = task
    code, _, err = run_cli(*args, capsys=capsys)
    assert_user_error(code, err, pattern)
    if case == "existing output dir":
        assert (out / "keep.txt").read_text() == "precious"
    else:
        assert not out.exists(), "a failed run must leave no output directory"


def test_unknown_config_key(tiny_bert_dir, glue_like, tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"task: sst-2\nmodel: {tiny_bert_dir}\ndata: {{data_dir: {glue_like}}}\ntrain: {{epochs: 1, lrate: 0.1}}\n")
    code, _, err = run_cli("finetune", "--config", cfg, "--output-dir", tmp_path / "out", capsys=capsys)
    line = assert_user_error(code, err, r"run\.yaml: train\.lrate: unknown key")
    assert "lr" in line and not (tmp_path / "out").exists()


def test_config_value_out_of_range(tiny_bert_dir, glue_like, tmp_path, capsys):
    code, _, err = run_cli(*_finetune_args(tiny_bert_dir, glue_like, tmp_path / "out", "--lr", "-1"), capsys=capsys)
    assert_user_error(code, err, r"train\.lr: .*greater than 0")


def test_overwrite_replaces_the_output_dir(tiny_bert_dir, glue_like, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".layerkd-run").write_text("{}")  # a directory layerkd made: --overwrite may replace it
    (out / "old.txt").write_text("old")
    code, _, err = run_cli(*_finetune_args(tiny_bert_dir, glue_like, out, "--overwrite"), capsys=capsys)
    assert code == 0, err
    assert not (out / "old.txt").exists() and (out / "metrics.json").exists()


def test_evaluate_bad_input(tiny_bert_dir, tmp_path, capsys):
    code, _, err = run_cli("evaluate", tiny_bert_dir, "--task", "sst-2", "--file", tmp_path / "missing.tsv", capsys=capsys)
    assert_user_error(code, err, r"data file not found: .*missing\.tsv")
    code, _, err = run_cli("evaluate", tiny_bert_dir, "--task", "sst-2", capsys=capsys)
    assert_user_error(code, err, r"give either --data-dir .* or --file")
