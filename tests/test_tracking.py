"""Experiment tracking (``--report-to``, :mod:`layerkd.tracking`): a real distillation run writes
TensorBoard, W&B (offline) and MLflow (file store) records, read back with each tool's own reader
and compared with the run's JSONL log and results — no mocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import distill_config
from layerkd import tracking
from layerkd.config import validate_run_config
from layerkd.errors import ConfigError
from layerkd.stages.common import config_hash

# ----------------------------------------------------------------------------- pure parts


def test_parse_report_to():
    assert tracking.parse_report_to(None) is None
    assert tracking.parse_report_to("tensorboard, wandb,mlflow") == ["tensorboard", "wandb", "mlflow"]
    assert tracking.parse_report_to("none") == []
    assert tracking.parse_report_to("") == []


def test_tensorboard_flag_is_an_alias_and_names_are_unique():
    cfg = validate_run_config({"task": "sst-2", "model": "m", "data": {"data_dir": "g"}, "output_dir": "o",
                               "train": {"tensorboard": True, "report_to": ["mlflow", "tensorboard", "mlflow"]}})
    assert tracking.requested(cfg.train) == ["mlflow", "tensorboard"]
    cfg.train.report_to = []
    assert tracking.requested(cfg.train) == ["tensorboard"]


def test_report_to_changes_no_run_hash():
    base = {"task": "sst-2", "model": "m", "data": {"data_dir": "g"}, "output_dir": "o"}
    plain = validate_run_config(base)
    tracked = validate_run_config({**base, "train": {"report_to": ["wandb", "mlflow"], "tensorboard": True}})
    assert config_hash(plain) == config_hash(tracked)
    assert config_hash(plain) != config_hash(validate_run_config({**base, "train": {"lr": 1e-3}}))


def test_unknown_tracker_is_a_config_error():
    with pytest.raises(ConfigError, match=r"train\.report_to\.0: Input should be 'tensorboard', 'wandb' or 'mlflow'"):
        validate_run_config({"task": "sst-2", "model": "m", "data": {"data_dir": "g"}, "output_dir": "o",
                             "train": {"report_to": ["tensorbord"]}})


def test_record_and_final_scalars():
    values, step = tracking.record_scalars({"event": "train", "time": 1.0, "step": 3, "epoch": 0, "phase": "main",
                                            "lr": 0.5, "loss": 2.0, "term/kd": 1.5})
    assert (values, step) == ({"train/lr": 0.5, "train/loss": 2.0, "train/term/kd": 1.5}, 3)
    values, step = tracking.record_scalars({"event": "eval", "step": 4, "epoch": 1, "split": "dev", "accuracy": 0.75,
                                            "end_of_epoch": True, "main": 0.75, "best": True})
    assert (values, step) == ({"eval/accuracy": 0.75, "eval/main": 0.75}, 4)
    assert tracking.record_scalars({"event": "start", "step": 0, "total_steps": 9}) == ({}, None)
    final = tracking.final_scalars({"best": {"accuracy": 0.9}, "last": {"accuracy": 0.8}, "diagnostics": {
        "layer_attention": {"alp": {"student": [1, 2], "teacher": [1, 2, 3], "weights": [[0.5, 0.25, 0.25], [0, 0, 1]]}}}})
    assert final == {"final/best/accuracy": 0.9, "final/last/accuracy": 0.8,
                     "attention/alp/student1/teacher1": 0.5, "attention/alp/student1/teacher2": 0.25,
                     "attention/alp/student1/teacher3": 0.25, "attention/alp/student2/teacher1": 0.0,
                     "attention/alp/student2/teacher2": 0.0, "attention/alp/student2/teacher3": 1.0}


def test_a_missing_tracker_package_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if the package were not installed
    with pytest.raises(ConfigError, match=r"wandb is not installed; it comes with the 'track' extra"):
        tracking.Tracking(["tensorboard", "wandb"], tmp_path)


# ----------------------------------------------------------------------------- a real run


def _wandb_inspect(run_dir: Path, *flags: str) -> str:
    exe = Path(sys.executable).with_name("wandb")
    return subprocess.run([str(exe), "leet", "inspect", *flags, str(run_dir)], check=True, capture_output=True,
                          text=True, timeout=120).stdout


@pytest.mark.slow
def test_report_to_writes_real_tensorboard_wandb_and_mlflow_records(tmp_path, monkeypatch, tiny_teacher_dir, toy_data):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from layerkd.stages.distill import distill

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE", "WANDB_DIR", "WANDB_PROJECT", "WANDB_NAME"):
        monkeypatch.delenv(var, raising=False)
    out = tmp_path / "run"
    cfg = distill_config(tiny_teacher_dir, toy_data, "alp", out, epochs=1, extra={
        "data": {"train_subsample": 48}, "cache": {"enabled": False},
        "train": {"log_every_steps": 1, "tensorboard": True, "report_to": ["wandb", "mlflow"]}})
    result = distill(cfg, progress=False)

    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["event"] == "train"]
    evals = [r for r in records if r["event"] == "eval"]
    assert len(train) == 3 and len(evals) == 1  # 48 rows, batch 16, a line per step, one evaluation
    att = result["diagnostics"]["layer_attention"]["alp"]
    s_last, t_first = att["student"][-1], att["teacher"][0]
    att_key, att_value = f"attention/alp/student{s_last}/teacher{t_first}", att["weights"][-1][0]
    expected = {"train/loss": [r["loss"] for r in train], "train/term/alp": [r["term/alp"] for r in train],
                "train/lr": [r["lr"] for r in train], "eval/accuracy": [evals[0]["accuracy"]],
                "final/best/accuracy": [result["best"]["accuracy"]], att_key: [att_value]}
    steps = {"train/loss": [r["step"] for r in train], "eval/accuracy": [evals[0]["step"]], att_key: [result["steps"]]}

    # TensorBoard: the event file in RUN_DIR/tb (train.tensorboard's place), read with tensorboard's own reader
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    for tag, values in expected.items():
        assert [e.value for e in acc.Scalars(tag)] == pytest.approx(values, rel=1e-6), tag
    for tag, want in steps.items():
        assert [e.step for e in acc.Scalars(tag)] == want, tag

    # MLflow: the file store in RUN_DIR/mlruns (no MLFLOW_TRACKING_URI given), read with MLflow's client
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_ALLOW_FILE_STORE" not in os.environ  # restored
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    (exp,) = [e for e in client.search_experiments() if e.name == "layerkd"]
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    for tag, values in expected.items():
        assert [m.value for m in client.get_metric_history(run.info.run_id, tag)] == pytest.approx(values, rel=1e-6), tag
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == steps["train/loss"]
    assert run.data.params["task"] == "toy-sentiment" and run.data.params["stage"] == "distill"

    # W&B: the offline run in RUN_DIR/wandb, read with wandb's own transaction-log reader
    (wb_run,) = (out / "wandb").glob("offline-run-*")
    summary = json.loads(_wandb_inspect(wb_run, "--summary", "--json"))
    assert summary["state"] == "finished" and summary["project"] == "layerkd" and summary["name"] == "run"
    assert summary["config"]["lr"] == cfg.train.lr and summary["config"]["task"] == "toy-sentiment"
    for tag, values in expected.items():
        assert summary["summary"][tag] == pytest.approx(values[-1], rel=1e-6), tag
    history = [json.loads(line)["history"]["item"] for line in _wandb_inspect(wb_run, "--json").splitlines()
               if '"type":"history"' in line]
    assert [h["train/loss"] for h in history if "train/loss" in h] == pytest.approx(expected["train/loss"], rel=1e-6)


def test_report_to_on_the_command_line(tmp_path, tiny_bert_dir, toy_data):
    """``layerkd finetune --report-to tensorboard``: the option reaches the run (an event file with its loss)."""
    import yaml
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from clihelp import run_cli
    from layerkd import toy

    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"task": toy.TOY_TASK, "model": str(tiny_bert_dir),
                                   "data": {"train_file": str(toy_data[0]), "dev_file": str(toy_data[1]), "train_subsample": 32},
                                   "train": {"epochs": 1, "batch_size": 16, "max_length": 32, "log_every_steps": 1}}))
    code, _, err = run_cli("finetune", "--config", cfg, "--output-dir", tmp_path / "run", "--report-to", "tensorboard")
    assert code == 0, err
    acc = EventAccumulator(str(tmp_path / "run" / "tb"))
    acc.Reload()
    losses = [json.loads(x)["loss"] for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if '"event": "train"' in x]
    assert [e.value for e in acc.Scalars("train/loss")] == pytest.approx(losses, rel=1e-6) and len(losses) == 2
    assert "train/term/ce" in acc.Tags()["scalars"] and "final/last/accuracy" in acc.Tags()["scalars"]
