"""Option types shared by the commands, and how command-line options become a run config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import deep_merge, read_yaml
from ..exits import interrupted_message, sigterm_raises
from . import flag_errors
from .defaults import default_help

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML run config; command-line options override it")]
TaskOpt = Annotated[str | None, typer.Option("--task", help="task name (rte, sst-2, mrpc, sts-b, cola, …)")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="GLUE directory in the classic layout")]
OutOpt = Annotated[Path | None, typer.Option("--output-dir", help="where the model, metrics and logs go")]
# run options default to None so that a --config file can set them; --help shows the config model's default
EpochsOpt = Annotated[int | None, typer.Option("--epochs", help=default_help("training epochs (total, all phases)", "train.epochs"))]
LrOpt = Annotated[float | None, typer.Option("--lr", help=default_help("peak learning rate", "train.lr"))]
BsOpt = Annotated[int | None, typer.Option("--batch-size", help=default_help("global batch size", "train.batch_size"))]
MaxLenOpt = Annotated[int | None, typer.Option("--max-length", help=default_help("max tokens per input", "train.max_length"))]
SeedOpt = Annotated[int | None, typer.Option("--seed", help=default_help("random seed", "train.seed"))]
PrecOpt = Annotated[str | None, typer.Option("--precision", help=default_help("fp32, bf16 (CPU or GPU) or fp16 (GPU)",
                                                                        "train.precision"))]
SubOpt = Annotated[int | None, typer.Option("--train-subsample", help=default_help(
    "use a fixed random subset of N training rows", "data.train_subsample", when_none="all rows"))]
KeepCkptOpt = Annotated[bool, typer.Option("--keep-checkpoints", help=(
    "keep checkpoints/ (optimizer state, intermediate steps) after the run finishes; by default only what evaluation "
    "needs is kept (train.keep_final_checkpoints)"))]
ReportToOpt = Annotated[str | None, typer.Option("--report-to", help=(
    "experiment trackers, comma-separated: tensorboard, wandb, mlflow (or none); they receive every loss term, the "
    "learning rate, the evaluations and the layer-attention summaries (train.report_to; the 'track' extra)"))]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="continue from the last valid checkpoint in --output-dir")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="replace an existing --output-dir")]
AllowChangedOpt = Annotated[bool, typer.Option(
    "--allow-changed-inputs", help="with --resume: continue even though the data, teacher, student or heads differ "
                                   "from what the checkpoint was trained on (default: stop and name what changed)")]
RemoteOpt = Annotated[bool, typer.Option("--trust-remote-code", help="allow model code from the hub (off by default)")]
HfDatasetOpt = Annotated[str | None, typer.Option("--hf-dataset", help=(
    "a Hugging Face dataset: hub id (from the local cache offline), save_to_disk directory or folder of parquet files "
    "(data.hf_dataset; the 'hub' extra); without --task its label column defines the task (ClassLabel or float)"))]
HfConfigOpt = Annotated[str | None, typer.Option("--hf-config", help="the dataset's configuration (data.hf_config), e.g. rte of glue")]
TextColumnsOpt = Annotated[str | None, typer.Option("--text-columns", help="--hf-dataset: the text column, or two comma-separated for pairs")]
LabelColumnOpt = Annotated[str | None, typer.Option("--label-column", help="--hf-dataset: the label column \\[default: label]")]
PoolingOpt = Annotated[str | None, typer.Option(
    "--pooling", help="what the classifier reads: cls (the [CLS] state, Hugging Face's heads) or mean (masked mean "
                      "of the final token states); saved with the model \\[default: the model's own; a student cut "
                      "from the teacher inherits the teacher's]")]


#: config key -> the command-line flag that sets it (for messages: layerkd.cli.flag_errors)
FLAGS = {
    "task": "--task", "data.data_dir": "--data-dir", "data.train_subsample": "--train-subsample",
    "data.hf_dataset": "--hf-dataset", "data.hf_config": "--hf-config", "data.columns": "--text-columns/--label-column",
    "output_dir": "--output-dir", "model": "--model", "teacher.path": "--teacher", "teacher.heads": "--teacher-heads",
    "student": "--student", "assistant": "--assistant", "method": "--method", "pooling": "--pooling",
    "train.epochs": "--epochs", "train.lr": "--lr", "train.batch_size": "--batch-size", "train.max_length": "--max-length",
    "train.seed": "--seed", "train.precision": "--precision", "train.report_to": "--report-to",
    "train.keep_final_checkpoints": "--keep-checkpoints", "cache.dir": "--cache-dir", "cache.enabled": "--no-cache",
    "cache.only": "--teacher-cache-only", "trust_remote_code": "--trust-remote-code",
}


def _set(d: dict[str, Any], dotted: str, value: Any) -> None:
    if value is None:
        return
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def build_config(config: Path | None, overrides: dict[str, Any]):
    data = read_yaml(config) if config is not None else {}
    flat: dict[str, Any] = {}
    for k, v in overrides.items():
        if v is not None:
            _set(flat, k, str(v) if isinstance(v, Path) else v)
    if flat.get("data", {}).get("data_dir") is not None and "data" in data:
        # a --data-dir on the command line replaces the config's data source
        for key in ("train_file", "dev_file", "hf_dataset"):
            data["data"].pop(key, None)
    if flat.get("data", {}).get("hf_dataset") is not None and isinstance(data.get("data"), dict):
        for key in ("train_file", "dev_file", "data_dir"):  # so does an --hf-dataset
            data["data"].pop(key, None)
    merged = deep_merge(data, flat)
    _task_from_dataset(merged)
    return flag_errors.validate(merged, overrides, FLAGS, config)  # errors name the flags the user gave


def hf_options(hf_dataset, hf_config, text_columns, label_column) -> dict[str, Any]:
    """``--hf-dataset``/``--hf-config``/``--text-columns``/``--label-column`` as config overrides."""
    cols = [c.strip() for c in (text_columns or "").split(",") if c.strip()]
    if len(cols) > 2:
        from ..errors import ConfigError  # noqa: PLC0415

        raise ConfigError(f"--text-columns {text_columns!r}: expected one column, or two comma-separated (a pair task)")
    mapping = dict(zip(("text_a", "text_b"), cols, strict=False))
    if label_column:
        mapping["label"] = label_column.strip()
    return {"data.hf_dataset": hf_dataset, "data.hf_config": hf_config,
            "data.columns": ",".join(f"{k}={v}" for k, v in mapping.items()) or None}


def _task_from_dataset(merged: dict[str, Any]) -> None:
    """No task, a Hugging Face dataset: the dataset's label column defines it (layerkd.data.hf_task)."""
    data = merged.get("data")
    if merged.get("task") is not None or not isinstance(data, dict) or not data.get("hf_dataset"):
        return
    from ..data.hf_task import infer_task  # noqa: PLC0415

    merged["task"] = infer_task(str(data["hf_dataset"]), data.get("hf_config"), data.get("columns"),
                                split=str(data.get("train_split") or "train"))
    data.pop("columns", None)  # the task names the columns now


def _common(task, data_dir, output_dir, epochs, lr, batch_size, max_length, seed, precision, subsample):
    return {
        "task": task,
        "data.data_dir": data_dir,
        "data.train_subsample": subsample,
        "output_dir": output_dir,
        "train.epochs": epochs,
        "train.lr": lr,
        "train.batch_size": batch_size,
        "train.max_length": max_length,
        "train.seed": seed,
        "train.precision": precision,
    }


def _run_stage(run, config, ov, trust_remote_code, resume, overwrite, show_method: bool) -> None:
    """Build the run config from CONFIG + the command-line overrides, run the stage, and print
    its best- and last-epoch metrics once (on the main process of a multi-process launch)."""
    from ..outputs import config_file_input  # noqa: PLC0415
    from ..stages.common import format_metrics, is_main_process  # noqa: PLC0415

    if trust_remote_code:
        ov["trust_remote_code"] = True
    cfg = build_config(config, ov)
    try:
        with sigterm_raises(), config_file_input(config):  # the config file is an input: never an output
            result = run(cfg, resume=resume, overwrite=overwrite)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (see layerkd.exits): say what was kept
        raise interrupted_message(cfg.output_dir, exc) from None
    if not is_main_process():
        return
    prefix = f"method {result['method']}: " if show_method else ""
    typer.echo(f"{prefix}best (epoch {result['best_epoch']}): {format_metrics(result['best'])}")
    typer.echo(f"last: {format_metrics(result['last'])}")
    typer.echo(f"saved to {cfg.output_dir}")


def _vars(items: list[str] | None) -> dict[str, str]:
    from ..errors import ConfigError  # noqa: PLC0415

    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--var {item!r}: expected NAME=VALUE (e.g. --var data=/path/to/glue)")
        out[name.strip()] = value
    return out


VarOpt = Annotated[list[str] | None, typer.Option("--var", help="fill a ${NAME} placeholder of the suite: NAME=VALUE (repeatable)")]
