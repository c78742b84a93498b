"""Run a suite: every cell not yet done, in a stable order, one result file per cell.

Layout of a results directory::

    RESULTS/<key>.json          one finished cell (schema ``layerkd.bench.result/1``)
    RESULTS/<key>.failed.json   the last failure of a cell (replaced by <key>.json once it succeeds)
    RESULTS/runs/<key>/         a cell in progress: `layerkd distill` output with checkpoints
    RESULTS/runs/<key>.yaml     the cell's resolved run config (what the subprocess runs)
    RESULTS/runs/<key>.log      its stdout/stderr
    RESULTS/runs/<key>.lock     held (``flock``) by the process running the cell

Each cell runs as its own ``layerkd distill`` subprocess (a crash or an out-of-memory kill in one
cell cannot take the suite down, and no global state leaks between cells). A cell whose run
directory holds checkpoints is resumed with ``--resume``; a finished cell (its ``<key>.json``
exists and parses) is never rerun. Once a cell's result file is written atomically its run
directory is deleted unless ``keep_runs`` (the student weights are not needed by the report).

**Parallel runs.** A cell is *claimed* before it runs: an exclusive, non-blocking ``flock`` on
``runs/<key>.lock``, released by the kernel when the process ends, however it ends (no stale
locks after a crash). Several ``layerkd bench`` processes can therefore share one results
directory — on one machine, or on several machines over a file system with working ``flock`` —
and each cell runs once: a process skips a cell another one holds (status ``running``) and, once
it holds the claim, checks again that the result was not written in the meantime. ``workers=N``
runs N cells at a time from one process (N threads, each starting one subprocess at a time) and,
unless ``OMP_NUM_THREADS`` is set, gives each cell ``cpu_count // N`` (at least 1) intra-op
threads, so N single-threaded cells on N cores instead of N processes fighting over every core.
Without ``fcntl`` (Windows) claims always succeed: one process per results directory there.
The result files and the claim live in :mod:`.store`; this module plans and runs the cells.

Which cells are done, running or to do, and their time estimates, is :mod:`.plan`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .. import jsonio
from ..checkpoint import atomic_write_text
from ..config import dump_config
from ..errors import ConfigError
from ..progress import heartbeat, track
from .plan import CellStatus, _resumable, format_plan, plan  # noqa: F401 - the runner's public API
from .results import SCHEMA
from .store import _add_suite, claim_cell, read_result, result_path
from .suite import Cell, Suite

log = logging.getLogger("layerkd")

#: how often a running cell's log is read for the progress display (seconds)
BEAT_SECONDS = 2.0

def _teacher_record(c: Cell) -> dict[str, Any]:
    rec: dict[str, Any] = {"path": c.teacher_path, "fingerprint": c.teacher_hash, "best": None, "dev_predictions": None}
    res = Path(c.teacher_path) / "results.json"
    if res.exists():
        try:
            t = json.loads(res.read_text(encoding="utf-8"))
            rec["best"] = t.get("best")
            rec["last"] = t.get("last")
            rec["dev_predictions"] = (t.get("dev_predictions") or {}).get("best")
        except ValueError:
            pass
    return rec


def cell_env(workers: int, environ: dict[str, str] | None = None, cpus: int | None = None) -> dict[str, str] | None:
    """The environment of a cell's subprocess: inherited, plus ``OMP_NUM_THREADS = cpus // workers``
    (at least 1) when several cells run at once and the user has not set it. None = inherit as is."""
    environ = dict(os.environ if environ is None else environ)
    if workers <= 1 or environ.get("OMP_NUM_THREADS"):
        return None
    environ["OMP_NUM_THREADS"] = str(max(1, (cpus or os.cpu_count() or 1) // workers))
    return environ


def last_line(log_file: Path, tail: int = 4096) -> str:
    """The last non-empty line of a cell's log (its newest progress or evaluation line)."""
    try:
        with open(log_file, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - tail))
            lines = fh.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return next((ln.strip() for ln in reversed(lines) if ln.strip()), "")


def run_cell(c: Cell, suite: Suite, results: Path, *, keep_runs: bool = False, echo: Callable[[str], None] = print,
             python: str | None = None, env: dict[str, str] | None = None,
             beat: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run one cell as a ``layerkd distill`` subprocess and write its result file atomically.

    The caller holds the cell's claim (:func:`claim_cell`); ``env`` is the subprocess environment
    (None: inherit); ``beat(line)`` is called every :data:`BEAT_SECONDS` while it runs with the
    last line of its log."""
    from .suite import unsubstitute  # noqa: PLC0415

    runs = results / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    run_dir, cfg_file, log_file = runs / c.key, runs / f"{c.key}.yaml", runs / f"{c.key}.log"
    cfg = c.config.model_copy(update={"output_dir": str(run_dir)})
    atomic_write_text(cfg_file, dump_config(cfg))
    resume = _resumable(run_dir)
    cmd = [python or sys.executable, "-m", "layerkd.cli", "distill", "--config", str(cfg_file),
           "--resume" if resume else "--overwrite"]
    start = time.time()
    with open(log_file, "a", encoding="utf-8") as fh:
        fh.write(f"\n# {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} {shlex.join(cmd)}\n")
        fh.flush()
        with heartbeat(lambda: beat(last_line(log_file)), BEAT_SECONDS) if beat else contextlib.nullcontext():
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False, env=env)
    wall = time.time() - start
    if proc.returncode != 0 or not (run_dir / "results.json").exists():
        tail = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-12:]
        failure = {"schema": SCHEMA + "#failed", "key": c.key, "cell": c.describe(), "returncode": proc.returncode,
                   "log": str(log_file), "tail": tail, "finished_at": _now()}
        atomic_write_text(results / f"{c.key}.failed.json", jsonio.dumps(failure, indent=1))
        raise RuntimeError(f"cell {c.describe()} failed (exit {proc.returncode}); see {log_file}")
    result = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    record = {
        "schema": SCHEMA,
        "key": c.key,
        "cell": c.describe(),
        "suites": [suite.name],
        "config": unsubstitute(json.loads(json.dumps(c.config.model_dump(mode="json"))), suite.variables),
        "teacher": unsubstitute(_teacher_record(c), suite.variables),
        # the run's own record names its data, teacher and student by path: written back as ${shared}/${work}
        # (committed results carry no absolute path of the machine they ran on)
        "result": unsubstitute(result, suite.variables),
        "wall_seconds": wall,
        "resumed": resume,
        "command": f"layerkd distill --config {cfg_file.name}  (the config is stored in this file under 'config'); "
                   f"suite: layerkd bench {suite.path.name}",
        "finished_at": _now(),
    }
    atomic_write_text(result_path(results, c.key), jsonio.dumps(record, indent=1))
    (results / f"{c.key}.failed.json").unlink(missing_ok=True)
    if not keep_runs:
        shutil.rmtree(run_dir, ignore_errors=True)
    return record


def check_results_dir(results: Path, suite: Suite) -> None:
    """``--results`` is shared by bench processes and never replaced, but it must be writable and
    lie apart from every input of the suite (its file, the cells' data, teachers, caches) and from
    ``.``/``~`` (:mod:`layerkd.outputs`)."""
    from ..outputs import Input, check_place, input_paths  # noqa: PLC0415

    inputs = {Input("the suite file", Path(suite.path))}
    for c in suite.cells:
        inputs.update(input_paths(c.config))
    check_place(results, sorted(inputs, key=lambda i: (i.label, str(i.path))), "results directory")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def triage_cells(suite: Suite, results: Path, *, retry_failed: bool, echo: Callable[[str], None],
                 skip_running: bool = False) -> tuple[dict[str, int], list[tuple[int, CellStatus]], int]:
    """Check and create ``results``, then sort the suite's cells: done ones are counted (and their
    result file learns this suite's name), cells without a teacher and (unless ``retry_failed``)
    failed ones are counted and skipped, cells another process runs are skipped with
    ``skip_running`` (else left to the claim), the rest are returned to run as ``(number, status)``.
    Shared by the local runner and the submitit launcher."""
    check_results_dir(results, suite)
    try:
        results.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create results directory {results}: {exc.strerror or exc}") from None
    counts = {"ran": 0, "skipped": 0, "running": 0, "failed": 0, "no_teacher": 0}
    rows = plan(suite, results)
    total = len(rows)
    todo: list[tuple[int, CellStatus]] = []
    for i, r in enumerate(rows, 1):
        c = r.cell
        if r.status == "done":
            _add_suite(results, c.key, suite.name)
            counts["skipped"] += 1
        elif r.status == "no-teacher":
            echo(f"{_tag(i, total, c)}: teacher {c.teacher_path} not found, skipped")
            counts["no_teacher"] += 1
        elif r.status == "running" and skip_running:
            echo(f"{_tag(i, total, c)}: running in another process, skipped")
            counts["running"] += 1
        elif r.status == "failed" and not retry_failed:
            counts["failed"] += 1
        else:
            todo.append((i, r))
    return counts, todo, total


def run_suite(suite: Suite, results: Path, *, keep_runs: bool = False, fail_fast: bool = False, retry_failed: bool = True,
              workers: int = 1, echo: Callable[[str], None] = print) -> dict[str, int]:
    """Run every cell of ``suite`` that is not done, ``workers`` at a time.

    Returns counts: ran, skipped (already done), running (claimed by another process, left to it),
    failed, no_teacher. With ``fail_fast`` no new cell starts after the first failure (cells
    already running in other workers finish)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    counts, todo, total = triage_cells(suite, results, retry_failed=retry_failed, echo=echo)
    env = cell_env(workers)
    lock = threading.Lock()
    queue = iter(todo)
    stop = threading.Event()

    def count(key: str) -> None:
        with lock:
            counts[key] += 1

    def worker() -> None:
        while not stop.is_set():
            with lock:
                item = next(queue, None)
            if item is None:
                return
            i, r = item
            c, tag = r.cell, _tag(i, total, r.cell)
            with claim_cell(results, c.key) as mine:
                if not mine:
                    echo(f"{tag}: running in another process, skipped")
                    count("running")
                    bar.update(advance=1)
                    continue
                if read_result(result_path(results, c.key)) is not None:  # finished while we planned
                    _add_suite(results, c.key, suite.name, locked=True)
                    count("skipped")
                    bar.update(advance=1)
                    continue
                resume = _resumable(results / "runs" / c.key)
                echo(f"{tag}: {'resuming' if resume else 'running'}")
                try:
                    rec = run_cell(c, suite, results, keep_runs=keep_runs, echo=echo, env=env,
                                   beat=lambda line, tag=tag: bar.update(detail=f"{tag}: {line}"))
                except RuntimeError as exc:
                    echo(f"{tag}: {exc}")
                    count("failed")
                    if fail_fast:
                        stop.set()
                    continue
                finally:
                    bar.update(advance=1, detail="")
            res = rec["result"]
            metric = res["main_metric"]
            echo(f"{tag}: {metric} best {res['best'][metric]:.4f} last {res['last'][metric]:.4f} "
                 f"({rec['wall_seconds'] / 60:.1f} min)")
            count("ran")

    with track(f"bench {suite.name}", len(todo), unit="cell") as bar:  # layerkd.progress
        _run_workers(worker, workers, stop)
    return counts


def _run_workers(worker: Callable[[], None], workers: int, stop: threading.Event) -> None:
    """Run ``worker`` in this thread, or in ``workers`` threads (Ctrl-C: ``stop`` — no new cell — then stop)."""
    if workers == 1:
        worker()
    else:
        finished = [threading.Event() for _ in range(workers)]

        def run_worker(k: int) -> None:
            try:
                worker()
            finally:
                finished[k].set()

        threads = [threading.Thread(target=run_worker, args=(k,), name=f"layerkd-bench-{k}") for k in range(workers)]
        try:
            with _sigint_deferred():  # a Ctrl-C inside Thread.start() would leave a thread nobody joins
                for t in threads:
                    t.start()
            # Wait on events, not on Thread.join(timeout): in Python 3.11 a Ctrl-C that interrupts a join
            # can mark a thread that is still running as stopped, so a later join returns at once.
            for done in finished:
                while not done.wait(0.2):  # short waits: the main thread must wake for Ctrl-C
                    pass
        except KeyboardInterrupt:  # Ctrl-C reaches the cells' subprocesses too; start no new cell, then stop
            stop.set()
            for t in threads:
                t.join()
            raise
        for t in threads:
            t.join()


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold back SIGINT for the block, then hand it to the handler that was in place (Python's
    default raises KeyboardInterrupt). Outside the main thread, where Python cannot set signal
    handlers, the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and callable(previous):
        previous(signal.SIGINT, None)
    elif caught and previous == signal.SIG_DFL:
        raise KeyboardInterrupt


def _tag(i: int, total: int, c: Cell) -> str:
    return f"[{i}/{total}] {c.task} {c.student_label} {c.method} seed {c.seed} ({c.key})"
