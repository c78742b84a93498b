"""The ``layerkd`` command.

User errors (bad files, config keys, impossible pairs …) print one line ``error: …`` and exit
with code 2; nothing half-written is left behind.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from . import jsonio
from .cli_defaults import config_default, default_help, with_default
from .config import deep_merge, read_yaml, validate_run_config
from .errors import LayerKDError
from .exits import interrupted_message, sigterm_raises
from .methods import DEFAULT_METHOD
from .progress import SETTINGS
from .progress import configure as configure_progress
from .tracking import parse_report_to

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    help=(
        "layerkd — intermediate-layer knowledge distillation for text classifiers.\n\n"
        "Typical flow: [bold]layerkd finetune[/] a teacher, [bold]layerkd distill[/] it into a student with a "
        "method ([bold]layerkd methods[/] lists them), [bold]layerkd evaluate[/] any saved model. "
        "[bold]layerkd demo[/] runs the whole thing offline in a few minutes."
    ),
)
cache_app = typer.Typer(help="Inspect or clear the teacher-output cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

log = logging.getLogger("layerkd")

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
PoolingOpt = Annotated[str | None, typer.Option(
    "--pooling", help="what the classifier reads: cls (the [CLS] state, Hugging Face's heads) or mean (masked mean "
                      "of the final token states); saved with the model \\[default: the model's own; a student cut "
                      "from the teacher inherits the teacher's]")]


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("layerkd").setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("accelerate", "transformers", "urllib3", "filelock", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@app.callback()
def _global_options(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display or lines; only warnings, errors "
                                                              "and results")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug messages too (with --quiet: without progress)")] = False,
    progress_seconds: Annotated[float, typer.Option("--progress-seconds", min=0, help=(
        "away from a terminal: a progress line at least this often (also LAYERKD_PROGRESS_SECONDS)"))] = SETTINGS.seconds,
    progress_steps: Annotated[int, typer.Option("--progress-steps", min=0, help=(
        "away from a terminal: also a progress line every N steps, 0 = off (also LAYERKD_PROGRESS_STEPS)"))] = SETTINGS.steps,
) -> None:
    """Options for every command (given before it: layerkd --quiet distill …); see layerkd.progress."""
    if quiet or verbose:
        logging.getLogger("layerkd").setLevel(logging.DEBUG if verbose else logging.WARNING)
    configure_progress(quiet=quiet, seconds=progress_seconds, steps=progress_steps)


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
    merged = deep_merge(data, flat)
    return validate_run_config(merged, where=f"config {config}" if config else "options")


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
    from .outputs import config_file_input  # noqa: PLC0415
    from .stages.common import format_metrics, is_main_process  # noqa: PLC0415

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
    config: ConfigOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    allow_changed_inputs: AllowChangedOpt = False,
    keep_checkpoints: KeepCkptOpt = False,
    report_to: ReportToOpt = None,
    trust_remote_code: RemoteOpt = False,
) -> None:
    """Fine-tune a model (typically the teacher) on a task's gold labels."""
    from .stages.finetune import finetune as run  # noqa: PLC0415

    run = functools.partial(run, allow_changed_inputs=allow_changed_inputs)

    ov = _common(task, data_dir, output_dir, epochs, lr, batch_size, max_length, seed, precision, train_subsample)
    ov["model"] = model
    ov["pooling"] = pooling
    ov["train.keep_final_checkpoints"] = keep_checkpoints or None
    ov["train.report_to"] = parse_report_to(report_to)
    _run_stage(run, config, ov, trust_remote_code, resume, overwrite, show_method=False)


@app.command()
def evaluate(
    model_dir: Annotated[str, typer.Argument(help="a saved model directory (any layerkd/Hugging Face model)")],
    task: Annotated[str, typer.Option("--task", help="task the model was trained for")],
    data_dir: DataDirOpt = None,
    split: Annotated[str, typer.Option("--split", help="GLUE split (dev, train, dev_mismatched …)")] = "dev",
    file: Annotated[Path | None, typer.Option("--file", help="any labelled TSV/CSV/JSONL file instead of a GLUE split")] = None,
    columns: Annotated[str | None, typer.Option("--columns", help="text_a=COL,text_b=COL,label=COL for --file")] = None,
    max_length: Annotated[int | None, typer.Option("--max-length", help=with_default(
        "max tokens per input", f"the model's training max length (train.max_length of its config.yaml), else "
                                f"{config_default('train.max_length')}"))] = None,
    output: Annotated[Path | None, typer.Option("--output", help="write the metrics JSON here (default MODEL_DIR/eval-split-<split>.json "
                                                "or eval-file-<name>-<hash>.json; never replaces another evaluation)")] = None,
    trust_remote_code: RemoteOpt = False,
) -> None:
    """Score a saved model on a split or a file; prints and writes every metric of the task."""
    from .stages.evaluate import evaluate_model  # noqa: PLC0415
    from .tasks import get_task  # noqa: PLC0415

    t = get_task(task)
    if (data_dir is None) == (file is None):
        from .errors import DataError  # noqa: PLC0415

        raise DataError("evaluate: give either --data-dir (with --split) or --file")
    from .checkpoint import atomic_write_text  # noqa: PLC0415
    from .eval_output import check_replaceable, default_name, evaluation_id  # noqa: PLC0415

    ident = evaluation_id(model_dir, data_dir=None if data_dir is None else str(data_dir), split=split,
                          file=None if file is None else str(file), columns=columns)
    out = output or (Path(model_dir) / default_name(ident) if Path(model_dir).is_dir() else None)
    if out is not None:
        from .outputs import check_output_file, evaluation_inputs  # noqa: PLC0415

        check_output_file(out, evaluation_inputs(file, data_dir), model_dir=model_dir)  # writable, not over/in the data
        check_replaceable(out, ident)  # before any work: never replaces another evaluation
    res = evaluate_model(model_dir, t, data_dir=None if data_dir is None else str(data_dir), split=split,
                         file=None if file is None else str(file), columns=columns, max_length=max_length,
                         trust_remote_code=trust_remote_code)
    if out is not None:
        check_replaceable(out, ident)  # again: another process may have written it meanwhile
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, jsonio.dumps({**res, "evaluated": ident}, indent=2))
    typer.echo(jsonio.dumps(res, indent=2))


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
    pooling: PoolingOpt = None,
    config: ConfigOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    allow_changed_inputs: AllowChangedOpt = False,
    keep_checkpoints: KeepCkptOpt = False,
    report_to: ReportToOpt = None,
    trust_remote_code: RemoteOpt = False,
) -> None:
    """Distil a teacher into a student with a method or an explicit recipe."""
    from .stages.distill import distill as run  # noqa: PLC0415

    run = functools.partial(run, allow_changed_inputs=allow_changed_inputs)

    ov = _common(task, data_dir, output_dir, epochs, lr, batch_size, max_length, seed, precision, train_subsample)
    ov.update({"method": method, "teacher.path": teacher, "teacher.heads": teacher_heads, "student": student,
               "assistant": assistant, "cache.dir": cache_dir, "pooling": pooling,
               "train.keep_final_checkpoints": keep_checkpoints or None, "train.report_to": parse_report_to(report_to)})
    if no_cache:
        ov["cache.enabled"] = False
    _run_stage(run, config, ov, trust_remote_code, resume, overwrite, show_method=True)


@app.command()
def methods() -> None:
    """List the distillation methods (presets) with one line each."""
    from .methods import presets  # noqa: PLC0415

    for name, m in presets().items():
        typer.echo(f"{name:22s} {m.description}")
    typer.echo("\ncombine presets with '+', e.g. --method universal+alp; objectives: "
               + ", ".join(_objective_names()))


def _objective_names() -> list[str]:
    from .objectives import OBJECTIVES  # noqa: PLC0415

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
    from .config import HeadsFitConfig  # noqa: PLC0415
    from .stages.fit_heads import fit_heads_cli  # noqa: PLC0415

    lay = layers if layers in ("intermediate", "all") else [int(x) for x in layers.split(",") if x.strip()]
    fit = HeadsFitConfig(epochs=epochs, layers=lay, standardize=standardize)
    report = fit_heads_cli(teacher=teacher, task=task, data_dir=str(data_dir), output_dir=output_dir, fit=fit,
                           max_length=max_length, seed=seed, subsample=train_subsample, overwrite=overwrite)
    for layer, score in report["dev_scores"].items():
        typer.echo(f"layer {layer}: {report['metric']} = {float('nan') if score is None else score:.4f}")


@cache_app.command("ls")
def cache_ls(cache_dir: Annotated[Path | None, typer.Option("--cache-dir")] = None) -> None:
    """List teacher-cache entries (directories carrying the cache's metadata; anything else is named in a warning)."""
    from .teacher_cache import TeacherCache, default_cache_dir  # noqa: PLC0415

    root = cache_dir or default_cache_dir()
    rows, strangers = TeacherCache(root).scan()
    _warn_strangers(strangers)
    if not rows:
        typer.echo(f"{root}: empty")
    for r in rows:
        what = r.get("field", "?") + (f":{r['pooling']}" if r.get("pooling") else "")
        typer.echo(f"{r['key']}  {r['bytes'] / 1e6:9.2f} MB  {what:22s} rows={r.get('rows', '?'):<7} "
                   f"max_len={r.get('max_length', '?'):<4} teacher={str(r.get('teacher', '?'))[:12]}  {r.get('data_source', '')}")


@cache_app.command("clear")
def cache_clear(
    keys: Annotated[list[str] | None, typer.Argument(help="entries to remove (default: all)")] = None,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir")] = None,
) -> None:
    """Remove teacher-cache entries (all, or the given keys); files that are not entries are left alone."""
    from .teacher_cache import TeacherCache, default_cache_dir  # noqa: PLC0415

    root = cache_dir or default_cache_dir()
    n, strangers = TeacherCache(root).clear(keys or None)
    _warn_strangers(strangers)
    typer.echo(f"removed {n} entr{'y' if n == 1 else 'ies'} from {root}")


def _warn_strangers(paths: list[Path]) -> None:
    if paths:
        names = ", ".join(p.name for p in paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")
        log.warning("warning: %s holds %d item(s) that are not teacher-cache entries, left alone: %s",
                    paths[0].parent, len(paths), names)


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
    several methods and print a comparison table. With --task/--data-dir/--teacher: the same on real data."""
    from .stages.demo import format_table, run_demo  # noqa: PLC0415

    t0 = __import__("time").time()
    rows = run_demo(output_dir, methods=tuple(m.strip() for m in methods_.split(",") if m.strip()), task=task,
                    data_dir=None if data_dir is None else str(data_dir), teacher=teacher, student=student, epochs=epochs,
                    train_subsample=train_subsample, seed=seed, echo=lambda m: typer.echo(m, err=True))
    typer.echo(format_table(rows))
    typer.echo(f"\n({__import__('time').time() - t0:.0f} s; models, logs and demo.json in {output_dir})")


def _vars(items: list[str] | None) -> dict[str, str]:
    from .errors import ConfigError  # noqa: PLC0415

    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--var {item!r}: expected NAME=VALUE (e.g. --var data=/path/to/glue)")
        out[name.strip()] = value
    return out


VarOpt = Annotated[list[str] | None, typer.Option("--var", help="fill a ${NAME} placeholder of the suite: NAME=VALUE (repeatable)")]


@app.command()
def bench(
    suite: Annotated[Path, typer.Argument(help="suite file (configs/suites/*.yaml)")],
    results: Annotated[Path, typer.Option("--results", help="results directory (one JSON file per finished cell)")] = Path("bench-results"),
    var: VarOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list the cells, their status and a time estimate; run nothing")] = False,
    task: Annotated[list[str] | None, typer.Option("--task", help="only these tasks (repeatable)")] = None,
    method: Annotated[list[str] | None, typer.Option("--method", help="only these method labels (repeatable)")] = None,
    seed: Annotated[list[int] | None, typer.Option("--seed", help="only these seeds (repeatable)")] = None,
    keep_runs: Annotated[bool, typer.Option("--keep-runs", help="keep each cell's model directory")] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="stop at the first failing cell")] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, help="cells run at once (each with cpu_count/N threads "
                                         "unless OMP_NUM_THREADS is set); other bench processes on the same "
                                         "results directory are safe too")] = 1,
    launcher: Annotated[Literal["local", "submitit"], typer.Option("--launcher", help=(
        "local: this process; submitit: one Slurm job per cell (pip install 'layerkd\\[cluster]'; docs/bench.md)"))] = "local",
    slurm_partition: Annotated[str | None, typer.Option("--slurm-partition", help="submitit: Slurm partition")] = None,
    timeout_min: Annotated[int | None, typer.Option("--timeout-min", min=1, help="submitit: each job's time limit "
                                                    "in minutes \\[default: 240]")] = None,
    cpus_per_task: Annotated[int | None, typer.Option("--cpus-per-task", min=1, help="submitit: CPUs per job")] = None,
    gpus_per_node: Annotated[int | None, typer.Option("--gpus-per-node", min=0, help="submitit: GPUs per job")] = None,
    slurm_array_parallelism: Annotated[int | None, typer.Option("--slurm-array-parallelism", min=1, help=(
        "submitit: at most this many of the suite's jobs at once"))] = None,
    submitit_folder: Annotated[Path | None, typer.Option("--submitit-folder", help=(
        "submitit: job scripts and logs \\[default: RESULTS/submitit]"))] = None,
) -> None:
    """Run an experiment suite: every cell not yet done, resumable, one result file per cell."""
    from .bench.launchers import SubmititOptions, check_options, require_submitit, submit_suite  # noqa: PLC0415
    from .bench.runner import format_plan, plan, run_suite  # noqa: PLC0415
    from .bench.suite import load_suite  # noqa: PLC0415

    sub = SubmititOptions(slurm_partition, timeout_min, cpus_per_task, gpus_per_node, slurm_array_parallelism, submitit_folder)
    check_options(launcher, workers, sub)
    if launcher == "submitit" and not dry_run:
        require_submitit()
    s = load_suite(suite, _vars(var))
    keep = [c for c in s.cells if (not task or c.task in task) and (not method or c.method in method)
            and (not seed or c.seed in seed)]
    s.cells = keep
    if dry_run:
        typer.echo(f"suite {s.name}: {s.description}".rstrip(": "))
        typer.echo(format_plan(plan(s, results), workers=workers))
        return
    echo = functools.partial(typer.echo, err=True)
    counts = (submit_suite(s, results, sub, keep_runs=keep_runs, fail_fast=fail_fast, echo=echo) if launcher == "submitit"
              else run_suite(s, results, keep_runs=keep_runs, fail_fast=fail_fast, workers=workers, echo=echo))
    typer.echo(f"suite {s.name}: ran {counts['ran']}, already done {counts['skipped']}, failed {counts['failed']}, "
               f"without teacher {counts['no_teacher']}"
               + (f", left to another process {counts['running']}" if counts["running"] else "")
               + f" (results in {results})")
    if counts["failed"]:
        raise typer.Exit(1)


@app.command()
def report(
    results: Annotated[Path, typer.Argument(help="results directory written by `layerkd bench`")],
    out: Annotated[Path, typer.Option("--out", help="where report.md, the CSV tables and figures/ go")] = Path("bench-report"),
    baseline: Annotated[str, typer.Option("--baseline", help="method label every method is tested against")] = "ce",
    suite: Annotated[list[Path] | None, typer.Option("--suite", help="suite file(s): flag their missing cells")] = None,
    var: VarOpt = None,
    n_boot: Annotated[int, typer.Option("--n-boot", help="bootstrap resamples")] = 10000,
    figures: Annotated[bool, typer.Option("--figures/--no-figures", help="draw the PNG figures (needs matplotlib)")] = True,
    compare: Annotated[list[str] | None, typer.Option(
        "--compare", help="also test METHOD against BASELINE (METHOD:BASELINE, e.g. alp:pkd; repeatable)")] = None,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="report only the cells of this suite (its name; one of the --suite files; repeatable)")] = None,
    bootstrap: Annotated[str, typer.Option(
        "--bootstrap", help="significance.csv / --compare test: two-level (training seeds and examples resampled) "
                            "or examples (the one-level test of earlier reports); claims are always two-level")] = "two-level",
) -> None:
    """Aggregate bench results: mean ± std over seeds, GLUE average, teacher row, paired bootstrap tests, figures."""
    from .bench.claims import families_of  # noqa: PLC0415
    from .bench.report import build_report  # noqa: PLC0415
    from .bench.significance import parse_comparison  # noqa: PLC0415
    from .errors import ConfigError  # noqa: PLC0415

    comparisons = [parse_comparison(c) for c in compare or []]
    if not results.is_dir():
        raise ConfigError(f"results directory not found: {results}")
    expected = None
    loaded = []
    if suite:
        from .bench.suite import load_suite  # noqa: PLC0415

        loaded = [load_suite(p, _vars(var)) for p in suite]
    names = [st.name for st in loaded]
    for name in only or []:
        if name not in names:
            raise ConfigError(f"--only {name}: not one of the --suite files' suites "
                              f"({', '.join(names) if names else 'no --suite given'})")
    if loaded:
        expected = [c.describe() for st in loaded if not only or st.name in only for c in st.cells]
    summary = build_report(results, out, baseline=baseline, n_boot=n_boot, figures=figures, expected=expected,
                           comparisons=comparisons, only_expected=bool(only),
                           declared_methods=sorted({c.method for st in loaded for c in st.cells}), bootstrap=bootstrap,
                           families=[f for st in loaded if not only or st.name in only for f in families_of(st)])
    typer.echo(f"report written to {out / 'report.md'} ({len(summary.get('rows', []))} rows)")


@app.command()
def tasks() -> None:
    """List the registered tasks with their labels and metrics."""
    from .tasks import list_tasks  # noqa: PLC0415

    for t in list_tasks():
        labels = "regression" if t.is_regression else "/".join(t.labels)
        typer.echo(f"{t.name:7s} {labels:35s} main={t.main_metric:22s} {t.description}")


from .cli_export import export as _export  # noqa: E402 - the command lives in its own module

app.command("export")(_export)


def main() -> None:
    """Run the command and exit with its code (see :mod:`layerkd.exits`: 0 ok, 1 bug or failed
    bench cells, 2 user or usage error, 130 interrupted, 143 terminated)."""
    from . import exits  # noqa: PLC0415

    _setup_logging(verbose=bool(os.environ.get("LAYERKD_VERBOSE")))
    try:
        code = app(standalone_mode=False)
        from .stages.common import end_distributed  # noqa: PLC0415

        end_distributed()  # after a distributed command: see its docstring
    except LayerKDError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exits.EXIT_USER)
    except exits.Interrupted as exc:
        typer.echo(str(exc), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:
        typer.echo("interrupted", err=True)
        sys.exit(getattr(exc, "exit_code", exits.EXIT_SIGINT))
    except Exception as exc:
        if isinstance(exc, exits.click_exception_types()):  # usage errors (typer's own click copy too)
            sys.exit(exits.show_usage_error(exc))
        if isinstance(exc, exits.exit_types()):
            sys.exit(exc.exit_code)
        if isinstance(exc, exits.abort_types()):
            typer.echo("interrupted", err=True)
            sys.exit(exits.EXIT_SIGINT)
        raise
    # without standalone mode typer returns the exit code of a command that raised typer.Exit
    # (a bench with failed cells: 1) and 130 for a Ctrl-C it caught
    if isinstance(code, int) and code:
        if code == exits.EXIT_SIGINT:
            typer.echo("interrupted", err=True)
        sys.exit(code)


if __name__ == "__main__":
    main()
