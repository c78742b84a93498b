"""Suites and reports: ``bench``, ``report``, ``tasks``."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Literal

import typer

from .app import app
from .options import VarOpt, _vars


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
    from ..bench.launchers import SubmititOptions, check_options, require_submitit, submit_suite  # noqa: PLC0415
    from ..bench.runner import format_plan, plan, run_suite  # noqa: PLC0415
    from ..bench.suite import load_suite  # noqa: PLC0415

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
    results: Annotated[list[Path], typer.Argument(help=(
        "results directory written by `layerkd bench`, or run folders of `layerkd distill`/`finetune` (each with "
        "results.json and config.yaml), or folders that contain them"))],
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
    """Aggregate bench results or run folders: mean ± std over seeds, GLUE average, teacher row, paired bootstrap
    tests, figures."""
    from ..bench.claims import families_of  # noqa: PLC0415
    from ..bench.report import build_report  # noqa: PLC0415
    from ..bench.significance import parse_comparison  # noqa: PLC0415
    from ..errors import ConfigError  # noqa: PLC0415

    comparisons = [parse_comparison(c) for c in compare or []]
    if _run_folders(results):
        from ..bench.run_folders import build_run_report  # noqa: PLC0415

        if suite or only:
            raise ConfigError(f"report: --{'suite' if suite else 'only'} applies to bench results (a layerkd bench "
                              "--results directory), not to run folders; leave it out")
        summary = build_run_report(results, out, baseline=baseline, n_boot=n_boot, figures=figures,
                                   comparisons=comparisons, bootstrap=bootstrap)
        typer.echo(f"report written to {out / 'report.md'} ({summary['n_results']} run folder(s), "
                   f"{len(summary.get('rows', []))} rows)")
        if summary["note"]:
            typer.echo(summary["note"])
        return
    results = results[0]
    if not results.is_dir():
        raise ConfigError(f"results directory not found: {results}")
    expected = None
    loaded = []
    if suite:
        from ..bench.suite import load_suite  # noqa: PLC0415

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


def _run_folders(paths: list[Path]) -> bool:
    """Whether ``report`` reads run folders: several paths, or one that holds run folders and no
    bench result files (else the bench results directory, as before)."""
    from ..bench.run_folders import find_run_folders, holds_bench_results  # noqa: PLC0415

    if len(paths) > 1:
        return True
    return paths[0].is_dir() and not holds_bench_results(paths[0]) and bool(find_run_folders(paths))


@app.command()
def tasks() -> None:
    """List the registered tasks with their labels and metrics."""
    from ..tasks import list_tasks  # noqa: PLC0415

    for t in list_tasks():
        labels = "regression" if t.is_regression else "/".join(t.labels)
        typer.echo(f"{t.name:7s} {labels:35s} main={t.main_metric:22s} {t.description}")
