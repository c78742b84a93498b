"""Commands that train or list what trains: ``finetune``, ``distill``, ``fit-heads``, ``methods``, ``demo``."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer

from ..methods import DEFAULT_METHOD
from ..tracking import parse_report_to
from .app import app
from .defaults import config_default, with_default
from .options import (
    AllowChangedOpt,
    BsOpt,
    ConfigOpt,
    DataDirOpt,
    EpochsOpt,
    HfConfigOpt,
    HfDatasetOpt,
    KeepCkptOpt,
    LabelColumnOpt,
    LrOpt,
    MaxLenOpt,
    OutOpt,
    OverwriteOpt,
    PoolingOpt,
    PrecOpt,
    RemoteOpt,
    ReportToOpt,
    ResumeOpt,
    SeedOpt,
    SubOpt,
    TaskOpt,
    TextColumnsOpt,
    _common,
    _run_stage,
    hf_options,
)


@app.command()
def finetune(
    model: Annotated[str | None, typer.Option("--model", help="model to fine-tune: path or hub id")] = None,
    task: TaskOpt = None,
    data_dir: DataDirOpt = None,
    output_dir: OutOpt = None,
    epochs: EpochsOpt = None,
    lr: LrOpt = None,
    batch_size: BsOpt = None,
    max_length: MaxLenOpt = None,
    seed: SeedOpt = None,
    precision: PrecOpt = None,
    train_subsample: SubOpt = None,
    pooling: PoolingOpt = None,
    hf_dataset: HfDatasetOpt = None,
    hf_config: HfConfigOpt = None,
    text_columns: TextColumnsOpt = None,
    label_column: LabelColumnOpt = None,
    config: ConfigOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    allow_changed_inputs: AllowChangedOpt = False,
    keep_checkpoints: KeepCkptOpt = False,
    report_to: ReportToOpt = None,
    trust_remote_code: RemoteOpt = False,
) -> None:
    """Fine-tune a model (typically the teacher) on a task's gold labels."""
    from ..stages.finetune import finetune as run  # noqa: PLC0415

    run = functools.partial(run, allow_changed_inputs=allow_changed_inputs)

    ov = _common(task, data_dir, output_dir, epochs, lr, batch_size, max_length, seed, precision, train_subsample)
    ov["model"] = model
    ov["pooling"] = pooling
    ov.update(hf_options(hf_dataset, hf_config, text_columns, label_column))
    ov["train.keep_final_checkpoints"] = keep_checkpoints or None
    ov["train.report_to"] = parse_report_to(report_to)
    _run_stage(run, config, ov, trust_remote_code, resume, overwrite, show_method=False)


@app.command()
def distill(
    method: Annotated[str | None, typer.Option("--method", help=with_default("preset or a+b combination (see `layerkd methods`)",
                                                                            DEFAULT_METHOD))] = None,
    task: TaskOpt = None,
    data_dir: DataDirOpt = None,
    teacher: Annotated[str | None, typer.Option("--teacher", help="fine-tuned teacher directory or hub id")] = None,
    teacher_heads: Annotated[str | None, typer.Option("--teacher-heads", help="fitted pseudo classifiers (else fitted and cached)")] = None,
    student: Annotated[str | None, typer.Option("--student", help="path | layers:2,4,6 | bottom:2 | config:layers=2,hidden=256 | bilstm:… | cnn:…")] = None,
    assistant: Annotated[str | None, typer.Option("--assistant", help="takd: the assistant's spec (default: every other teacher layer)")] = None,
    output_dir: OutOpt = None,
    epochs: EpochsOpt = None,
    lr: LrOpt = None,
    batch_size: BsOpt = None,
    max_length: MaxLenOpt = None,
    seed: SeedOpt = None,
    precision: PrecOpt = None,
    train_subsample: SubOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="run the teacher live on every batch")] = False,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="teacher cache directory")] = None,
    teacher_cache_only: Annotated[bool, typer.Option("--teacher-cache-only", help=(
        "never load the teacher's weights: serve every teacher need from cache entries written by `layerkd cache "
        "build` (cache.only; for teachers too large for training memory)"))] = False,
    pooling: PoolingOpt = None,
    hf_dataset: HfDatasetOpt = None,
    hf_config: HfConfigOpt = None,
    text_columns: TextColumnsOpt = None,
    label_column: LabelColumnOpt = None,
    config: ConfigOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    allow_changed_inputs: AllowChangedOpt = False,
    keep_checkpoints: KeepCkptOpt = False,
    report_to: ReportToOpt = None,
    trust_remote_code: RemoteOpt = False,
) -> None:
    """Distil a teacher into a student with a method or an explicit recipe."""
    from ..stages.distill import distill as run  # noqa: PLC0415

    run = functools.partial(run, allow_changed_inputs=allow_changed_inputs)

    ov = _common(task, data_dir, output_dir, epochs, lr, batch_size, max_length, seed, precision, train_subsample)
    ov.update({"method": method, "teacher.path": teacher, "teacher.heads": teacher_heads, "student": student,
               "assistant": assistant, "cache.dir": cache_dir, "pooling": pooling,
               "train.keep_final_checkpoints": keep_checkpoints or None, "train.report_to": parse_report_to(report_to)})
    ov.update(hf_options(hf_dataset, hf_config, text_columns, label_column))
    if no_cache:
        ov["cache.enabled"] = False
    if teacher_cache_only:
        ov["cache.only"] = True
    _run_stage(run, config, ov, trust_remote_code, resume, overwrite, show_method=True)


@app.command()
def methods() -> None:
    """List the distillation methods (presets) with one line each."""
    from ..methods import presets  # noqa: PLC0415

    for name, m in presets().items():
        typer.echo(f"{name:22s} {m.description}")
    typer.echo("\ncombine presets with '+', e.g. --method universal+alp; objectives: "
               + ", ".join(_objective_names()))


def _objective_names() -> list[str]:
    from ..objectives import OBJECTIVES  # noqa: PLC0415

    return sorted(OBJECTIVES)


@app.command("fit-heads")
def fit_heads(
    teacher: Annotated[str, typer.Option("--teacher", help="fine-tuned teacher")],
    task: Annotated[str, typer.Option("--task")],
    data_dir: Annotated[Path, typer.Option("--data-dir")],
    output_dir: OutOpt = None,
    epochs: Annotated[int, typer.Option("--epochs")] = config_default("teacher.fit_heads.epochs"),
    layers: Annotated[str, typer.Option("--layers", help="intermediate | all | comma-separated layers")] = "intermediate",
    standardize: Annotated[bool, typer.Option("--standardize/--no-standardize",
                                              help="z-score each layer's vector before its head")] = config_default(
        "teacher.fit_heads.standardize"),
    max_length: Annotated[int, typer.Option("--max-length")] = config_default("train.max_length"),
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1)] = config_default("train.seed"),
    train_subsample: SubOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Fit the teacher's pseudo classifiers (teacher frozen) and report each layer's dev score."""
    from ..stages.fit_heads import fit_heads_cli, fit_options  # noqa: PLC0415

    fit = fit_options(epochs=epochs, layers=layers, standardize=standardize)  # bad --layers/--epochs: one line
    report = fit_heads_cli(teacher=teacher, task=task, data_dir=str(data_dir), output_dir=output_dir, fit=fit,
                           max_length=max_length, seed=seed, subsample=train_subsample, overwrite=overwrite)
    for layer, score in report["dev_scores"].items():
        typer.echo(f"layer {layer}: {report['metric']} = {float('nan') if score is None else score:.4f}")


@app.command()
def demo(
    output_dir: Annotated[Path, typer.Option("--output-dir", help="where the demo's data, models and table go")] = Path("layerkd-demo"),
    methods_: Annotated[str, typer.Option("--methods", help="comma-separated methods to compare")] = "ce,kd,pkd,alp,rail,universal,universal+alp",
    task: TaskOpt = None,
    data_dir: DataDirOpt = None,
    teacher: Annotated[str | None, typer.Option("--teacher", help="real data: a fine-tuned teacher")] = None,
    student: Annotated[str | None, typer.Option("--student", help="student spec (default: toy 2-layer random; real data bottom:2)")] = None,
    epochs: EpochsOpt = None,
    train_subsample: SubOpt = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1)] = 0,
) -> None:
    """Offline, in a few minutes: fine-tune a small teacher on a generated task, distil it with
    several methods, print a comparison table with what it shows, and draw demo.png. With
    --task/--data-dir/--teacher: the same on real data. Rerunning on a demo folder replaces it."""
    from ..stages.demo import format_table, run_demo  # noqa: PLC0415

    t0 = __import__("time").time()
    res = run_demo(output_dir, methods=tuple(m.strip() for m in methods_.split(",") if m.strip()), task=task,
                   data_dir=None if data_dir is None else str(data_dir), teacher=teacher, student=student, epochs=epochs,
                   train_subsample=train_subsample, seed=seed, echo=lambda m: typer.echo(m, err=True))
    typer.echo(format_table(res.rows))
    if res.explanation:
        typer.echo(f"\n{res.explanation}")
    typer.echo(f"\nfigure: {res.figure}" if res.figure else f"\n{res.figure_note}")
    typer.echo(f"({__import__('time').time() - t0:.0f} s; models, logs and demo.json in {output_dir})")
