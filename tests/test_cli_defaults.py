"""Defaults you can see (issue 23, point 3): ``--help`` shows the effective default of every run
option (taken from the config models), and ``evaluate`` reads the max length from the model's
training config unless ``--max-length`` is given."""

from __future__ import annotations

import logging
import re
import shutil

import pytest

from clihelp import run_cli
from layerkd.cli.defaults import config_default
from layerkd.config import HeadsFitConfig, TrainConfig

EXPECTED = {"--epochs": "3", "--lr": "5e-05", "--batch-size": "32", "--max-length": "128", "--seed": "42"}


def _help(command: str, capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "300")  # one line per option
    code, out, err = run_cli(command, "--help", capsys=capsys)
    assert code == 0, err
    return out


@pytest.mark.parametrize("command", ["finetune", "distill"])
def test_help_shows_the_run_defaults(command, capsys, monkeypatch):
    out = _help(command, capsys, monkeypatch)
    for option, default in EXPECTED.items():
        line = next(ln for ln in out.splitlines() if re.search(rf"\s{option}\s", ln))
        assert f"[default: {default}]" in line, line
    assert re.search(r"--train-subsample\s.*\[default: all rows\]", out)
    assert "--keep-checkpoints" in out
    if command == "distill":
        assert re.search(r"--method\s.*\[default: kd\]", out)


def test_the_defaults_come_from_the_config_models():
    assert config_default("train.epochs") == TrainConfig().epochs
    assert config_default("train.lr") == TrainConfig().lr
    assert config_default("teacher.fit_heads.epochs") == HeadsFitConfig().epochs
    assert config_default("data.train_subsample") is None


def test_evaluate_help_names_where_the_max_length_comes_from(capsys, monkeypatch):
    out = _help("evaluate", capsys, monkeypatch)
    assert re.search(r"--max-length\s.*\[default: the model's training max length \(train\.max_length of its "
                     r"config\.yaml\), else 128\]", out)


def test_evaluate_takes_the_max_length_the_model_was_trained_with(tiny_teacher_dir, toy_task, toy_data, tmp_path, caplog):
    from layerkd.stages.evaluate import evaluate_model

    caplog.set_level(logging.INFO, logger="layerkd")
    dev = str(toy_data[1])
    res = evaluate_model(str(tiny_teacher_dir), toy_task, file=dev)  # the teacher was fine-tuned at max_length 32
    assert res["max_length"] == 32
    assert f"evaluate: max length 32 (train.max_length of {tiny_teacher_dir / 'config.yaml'})" in caplog.text
    assert f"evaluate {tiny_teacher_dir}: eval dev (200 rows): accuracy " in caplog.text
    assert evaluate_model(str(tiny_teacher_dir), toy_task, file=dev, max_length=16)["max_length"] == 16

    bare = tmp_path / "bare"  # a model directory without layerkd's config.yaml (e.g. from the hub)
    shutil.copytree(tiny_teacher_dir, bare, ignore=shutil.ignore_patterns("config.yaml", "checkpoints"))
    assert evaluate_model(str(bare), toy_task, file=dev)["max_length"] == config_default("train.max_length")
