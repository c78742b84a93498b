"""Where a suite's cells run: ``--launcher local`` (the default: this process, ``--workers`` cells at
a time, :func:`layerkd.bench.runner.run_suite`) or ``--launcher submitit`` (one cluster job per
cell, submitted through `submitit <https://github.com/facebookincubator/submitit>`_, the
``cluster`` extra: ``pip install 'layerkd[cluster]'``).

With ``submitit`` the results folder must lie on a file system that the submitting machine and
every compute node share, with a working ``flock`` (NFSv4 on Linux, Lustre mounted ``-o flock``),
and the Python that runs ``layerkd bench`` (``sys.executable``) must exist at the same path on
the nodes (a shared virtual environment). Nothing else changes:

* the same plan: finished cells are skipped (and gain the suite's name), cells without a teacher
  are reported, a cell claimed by another process is left to it;
* each job runs :class:`CellJob`, which does what a local worker does for one cell — take the
  cell's claim (:func:`layerkd.bench.store.claim_cell`), check again that no result was written
  meanwhile, then :func:`layerkd.bench.runner.run_cell` (the same ``layerkd distill`` subprocess,
  resumed with ``--resume`` when the cell's run directory holds checkpoints, the same result file);
  so local and cluster runs can share one results folder, and a job queued twice (a second
  submission while the first one's jobs were still pending) runs its cell at most once;
* ``layerkd bench`` waits for the jobs and prints each cell's line as it finishes. Ctrl-C stops
  the waiting only: the jobs go on, and a later ``layerkd bench`` (``--dry-run`` too) shows their
  cells as ``running`` (claimed), ``done`` or, still queued, ``todo``;
* a job killed at its time limit (``--timeout-min``, default :data:`DEFAULT_TIMEOUT_MIN`) or by a
  node failure leaves the cell's checkpoints, and the next submission resumes it.

Slurm options: ``--slurm-partition``, ``--timeout-min``, ``--cpus-per-task``, ``--gpus-per-node``
and ``--slurm-array-parallelism`` (at most this many of the suite's jobs at once; the cells are
submitted as one job array); submitit's own files (job scripts, pickles, each job's
stdout/stderr) go to ``--submitit-folder`` (default ``<results>/submitit``). When a job has
``SLURM_CPUS_PER_TASK`` and ``OMP_NUM_THREADS`` is not set, its cell runs with that many threads.
Where no Slurm is found (no ``sbatch``), submitit's local executor runs the jobs as processes on
this machine, all at once; ``layerkd bench`` says which one it uses.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

LAUNCHERS = ("local", "submitit")
INSTALL_HINT = "pip install 'layerkd[cluster]'"
#: submitit's own defaults are 5 minutes (Slurm) and 2 minutes (local), far too short for a cell
DEFAULT_TIMEOUT_MIN = 240


@dataclass(frozen=True)
class SubmititOptions:
    """The ``--launcher submitit`` options (None: not given)."""

    partition: str | None = None
    timeout_min: int | None = None
    cpus_per_task: int | None = None
    gpus_per_node: int | None = None
    array_parallelism: int | None = None
    folder: Path | None = None

    FLAGS = {"partition": "--slurm-partition", "timeout_min": "--timeout-min", "cpus_per_task": "--cpus-per-task",
             "gpus_per_node": "--gpus-per-node", "array_parallelism": "--slurm-array-parallelism",
             "folder": "--submitit-folder"}

    def given(self) -> list[str]:
        return [flag for name, flag in self.FLAGS.items() if getattr(self, name) is not None]

    def executor_parameters(self) -> dict[str, Any]:
        """submitit's ``update_parameters`` keywords (the slurm_ ones are ignored by other executors)."""
        p: dict[str, Any] = {"name": "layerkd-bench", "timeout_min": self.timeout_min or DEFAULT_TIMEOUT_MIN}
        if self.cpus_per_task is not None:
            p["cpus_per_task"] = self.cpus_per_task
        if self.gpus_per_node is not None:
            p["gpus_per_node"] = self.gpus_per_node
        if self.partition is not None:
            p["slurm_partition"] = self.partition
        if self.array_parallelism is not None:
            p["slurm_array_parallelism"] = self.array_parallelism
        return p


def check_options(launcher: str, workers: int, opts: SubmititOptions) -> None:
    """Refuse options that the chosen launcher would ignore (one line, before anything runs)."""
    if launcher == "local" and opts.given():
        raise ConfigError(f"bench: {', '.join(opts.given())} only apply to --launcher submitit "
                          f"(the local launcher runs the cells in this process)")
    if launcher == "submitit" and workers != 1:
        raise ConfigError("bench: --workers applies to --launcher local; with --launcher submitit every cell is "
                          "its own job (limit how many run at once with --slurm-array-parallelism)")


def require_submitit():
    try:
        import submitit  # noqa: PLC0415
    except ImportError:
        raise ConfigError(f"bench: --launcher submitit needs the cluster extra: submitit is not installed "
                          f"({INSTALL_HINT})") from None
    return submitit


def make_executor(folder: Path, opts: SubmititOptions, cluster: str | None = None):
    """A submitit ``AutoExecutor`` writing to ``folder``; ``cluster`` None = what submitit detects
    (``slurm`` where ``sbatch`` exists, else ``local``)."""
    submitit = require_submitit()
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    executor.update_parameters(**opts.executor_parameters())
    return executor


def job_env(environ: dict[str, str] | None = None) -> dict[str, str] | None:
    """A cell's environment inside a job: ``OMP_NUM_THREADS`` from Slurm's CPU allocation unless
    set (None = inherit as is)."""
    environ = dict(os.environ if environ is None else environ)
    cpus = environ.get("SLURM_CPUS_PER_TASK")
    if environ.get("OMP_NUM_THREADS") or not cpus:
        return None
    environ["OMP_NUM_THREADS"] = cpus
    return environ


class CellJob:
    """One cell, as a submitit job: claim, re-check, :func:`run_cell`. Returns a small dict
    (``status``: ran | skipped | running | failed) instead of raising, so that the submitting
    process tells a failed cell (its ``<key>.failed.json`` is written) from a failed job."""

    def __init__(self, suite, results: Path, keep_runs: bool = False):
        self.suite = dataclasses.replace(suite, cells=[])  # run_cell needs its name, path and variables only
        self.results = Path(results)
        self.keep_runs = keep_runs

    def __call__(self, cell) -> dict[str, Any]:
        from .runner import run_cell  # noqa: PLC0415
        from .store import _add_suite, claim_cell, read_result, result_path  # noqa: PLC0415

        out: dict[str, Any] = {"key": cell.key}
        with claim_cell(self.results, cell.key) as mine:
            if not mine:
                return {**out, "status": "running"}
            if read_result(result_path(self.results, cell.key)) is not None:  # finished since the plan
                _add_suite(self.results, cell.key, self.suite.name, locked=True)
                return {**out, "status": "skipped"}
            try:
                rec = run_cell(cell, self.suite, self.results, keep_runs=self.keep_runs, env=job_env())
            except RuntimeError as exc:
                return {**out, "status": "failed", "message": str(exc)}
        res = rec["result"]
        return {**out, "status": "ran", "main_metric": res["main_metric"], "best": res["best"], "last": res["last"],
                "wall_seconds": rec["wall_seconds"]}


def submit_suite(suite, results: Path, opts: SubmititOptions, *, keep_runs: bool = False, fail_fast: bool = False,
                 retry_failed: bool = True, echo: Callable[[str], None] = print, cluster: str | None = None,
                 poll_seconds: float = 2.0) -> dict[str, int]:
    """Submit every cell of ``suite`` that is not done as one job each, wait for them, and return
    the same counts as :func:`layerkd.bench.runner.run_suite`. With ``fail_fast`` the jobs not yet
    finished are cancelled after the first failure (a cancelled cell keeps its checkpoints)."""
    from .runner import _tag, triage_cells  # noqa: PLC0415

    require_submitit()  # before anything is written
    counts, rows, total = triage_cells(suite, results, retry_failed=retry_failed, echo=echo, skip_running=True)
    todo = [(i, r.cell) for i, r in rows]
    if not todo:
        return counts
    folder = opts.folder or results / "submitit"
    executor = make_executor(folder, opts, cluster)
    jobs = executor.map_array(CellJob(suite, results, keep_runs), [c for _, c in todo])
    where = {"local": " (no Slurm here: local processes)"}.get(executor.cluster, "")
    echo(f"submitted {len(jobs)} cells to {executor.cluster}{where} as job{'s' if len(jobs) > 1 else ''} "
         f"{_job_ids(jobs)}; submitit logs in {folder}")
    tags = {id(j): _tag(i, total, c) for j, (i, c) in zip(jobs, todo, strict=True)}
    pending = list(jobs)
    while pending:
        finished = [j for j in pending if j.done()]
        for job in finished:
            pending.remove(job)
            tag = tags[id(job)]
            try:
                out = job.result()
            except Exception as exc:  # the job itself failed (killed, node lost, cancelled): not the cell
                out = {"status": "failed", "message": f"job {job.job_id} did not finish "
                                                      f"({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}); "
                                                      f"see {job.paths.stderr}"}
            status = out["status"]
            if status == "ran":
                m = out["main_metric"]
                echo(f"{tag}: {m} best {out['best'][m]:.4f} last {out['last'][m]:.4f} "
                     f"({out['wall_seconds'] / 60:.1f} min, job {job.job_id})")
            elif status == "running":
                echo(f"{tag}: running in another process, skipped")
            elif status == "skipped":
                echo(f"{tag}: finished by another process meanwhile")
            else:
                echo(f"{tag}: {out.get('message', 'failed')}")
            counts[status] += 1
            if status == "failed" and fail_fast and pending:
                for other in pending:
                    other.cancel(check=False)
                echo(f"--fail-fast: cancelled the {len(pending)} jobs not finished (their cells resume next time)")
                pending = []
                break
        if pending and not finished:
            time.sleep(poll_seconds)
    return counts


def _job_ids(jobs) -> str:
    ids = [j.job_id for j in jobs]
    arrays = sorted({i.split("_")[0] for i in ids if "_" in i})
    return f"array {', '.join(arrays)} ({len(ids)} tasks)" if arrays and len(arrays) < len(ids) else ", ".join(ids)
