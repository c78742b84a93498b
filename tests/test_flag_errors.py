"""Config errors name the command-line flag when the value came (or should come) from the command
line (issue 23 point 6; layerkd.cli.flag_errors), and the config key when it came from a file."""

from __future__ import annotations

import re

import pytest
import yaml

from layerkd.cli.options import FLAGS, build_config
from layerkd.errors import ConfigError


def distill_ov(**given):
    """The overrides `layerkd distill` builds: every key present, None where no flag was given."""
    ov = {k: None for k in ("task", "data.data_dir", "data.train_subsample", "output_dir", "train.epochs", "train.lr",
                            "train.batch_size", "train.max_length", "train.seed", "train.precision", "method",
                            "teacher.path", "teacher.heads", "student", "assistant", "cache.dir", "pooling",
                            "train.keep_final_checkpoints", "train.report_to")}
    ov.update(given)
    return ov


def finetune_ov(**given):
    ov = {k: v for k, v in distill_ov().items() if k not in ("method", "teacher.path", "teacher.heads", "student",
                                                              "assistant", "cache.dir")}
    ov["model"] = None
    ov.update(given)
    return ov


def message(config, ov) -> str:
    with pytest.raises(ConfigError) as e:
        build_config(config, ov)
    return str(e.value)


FULL = {"task": "rte", "data.data_dir": "glue", "output_dir": "out"}


@pytest.mark.parametrize(("ov", "expected"), [
    (distill_ov(**FULL, student="bottom:2"), "missing --teacher: the fine-tuned teacher to distil from (a model directory or hub id)"),
    (distill_ov(**FULL, **{"teacher.path": "t"}), "missing --student: the student (bottom:2, layers:2,4, "
                                                  "config:layers=2,hidden=256, a model directory, bilstm:…, cnn:…)"),
    (finetune_ov(**FULL), "missing --model: the model to fine-tune (a model directory or hub id)"),
    (finetune_ov(model="m", **{"data.data_dir": "glue"}), "missing --task: the task (rte, sst-2, mrpc, …: layerkd tasks lists them)"),
    (finetune_ov(model="m", task="rte"), "missing --data-dir: the data (a GLUE directory) (files: data.train_file/dev_file in a --config)"),
    (finetune_ov(model="m", task="rte", **{"data.hf_dataset": None}), "missing --data-dir or --hf-dataset: the data"),
])
def test_a_missing_value_names_its_flag(ov, expected):
    assert message(None, ov).startswith(expected)


def test_with_a_config_the_key_and_the_flag(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"task": "rte", "data": {"data_dir": "glue"}, "student": "bottom:2"}))
    assert message(cfg, distill_ov(output_dir="o")) == f"config {cfg}: teacher.path: missing; set it there or give --teacher"
    cfg.write_text(yaml.safe_dump({"task": "rte"}))
    assert message(cfg, finetune_ov(model="m")) == (f"config {cfg}: data: no data source; set data.data_dir, "
                                                     "data.train_file/dev_file or data.hf_dataset there, or give --data-dir")
    # given on the command line, it is not missing
    assert build_config(cfg, finetune_ov(model="m", **{"data.data_dir": "glue"})).data.data_dir == "glue"


def test_a_bad_value_names_the_flag_it_came_from_and_the_file_it_came_from(tmp_path):
    ov = finetune_ov(model="m", **FULL, **{"train.seed": 2**32})
    assert message(None, ov) == "--seed: train.seed: Input should be less than or equal to 4294967295 (got 4294967296)"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"train": {"seed": 2**32, "lr": 0}}))
    # the file's seed, overridden by a good --seed: the error is the file's lr, named by the file
    assert re.match(rf"config {re.escape(str(cfg))}: train\.lr: Input should be greater than 0",
                    message(cfg, finetune_ov(model="m", **FULL, **{"train.seed": 1})))
    assert message(cfg, finetune_ov(model="m", **FULL, **{"train.lr": 0.1, "train.epochs": 2})) == (
        f"config {cfg}: train.seed: Input should be less than or equal to 4294967295 (got 4294967296)")  # the file's
    assert message(None, finetune_ov(model="m", **FULL, **{"train.report_to": ["tensorbord"]})).startswith(
        "--report-to: train.report_to.0: Input should be 'tensorboard', 'wandb' or 'mlflow'")
    assert message(None, finetune_ov(model="m", **FULL, pooling="max")).startswith("--pooling: pooling: Input should be")


def test_every_option_key_the_commands_build_has_a_flag():
    keys = set(distill_ov()) | set(finetune_ov())
    assert keys <= set(FLAGS), sorted(keys - set(FLAGS))
