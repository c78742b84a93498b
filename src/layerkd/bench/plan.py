"""Plan a suite: each cell's status (done, todo, resume, running, no-teacher, failed) and, for
``--dry-run``, a time estimate from the wall time of finished cells in the same results directory:
the median over the same task and method, else over the same task (marked ``~``), else unknown."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from .store import cell_is_running, finished_results, read_result, result_path
from .suite import Cell, Suite


def _resumable(run_dir: Path) -> bool:
    """A cell's run directory that ``--resume`` continues: it holds checkpoints, or a finished run
    whose result file was not written yet (``--resume`` then returns its results: layerkd.run_finish)."""
    return (run_dir / "checkpoints").is_dir() or (run_dir / "metrics.json").is_file()


@dataclass
class CellStatus:
    cell: Cell
    status: str  # done | todo | resume | running | no-teacher | failed
    estimate: float | None = None
    estimate_exact: bool = True


def _estimates(results: Path) -> tuple[dict[tuple[str, str], float], dict[str, float]]:
    by_tm: dict[tuple[str, str], list[float]] = {}
    by_t: dict[str, list[float]] = {}
    for r in finished_results(results):
        c, w = r.get("cell", {}), r.get("wall_seconds")
        if not isinstance(w, (int, float)):
            continue
        by_tm.setdefault((c.get("task"), c.get("method")), []).append(w)
        by_t.setdefault(c.get("task"), []).append(w)
    return ({k: statistics.median(v) for k, v in by_tm.items()}, {k: statistics.median(v) for k, v in by_t.items()})


def plan(suite: Suite, results: Path) -> list[CellStatus]:
    """The status of every cell of ``suite`` in ``results`` (nothing is run)."""
    by_tm, by_t = _estimates(results)
    out = []
    for c in suite.cells:
        if read_result(result_path(results, c.key)) is not None:
            st = "done"
        elif not c.teacher_hash:
            st = "no-teacher"
        elif cell_is_running(results, c.key):
            st = "running"
        elif _resumable(results / "runs" / c.key):
            st = "resume"
        elif (results / f"{c.key}.failed.json").exists():
            st = "failed"
        else:
            st = "todo"
        est, exact = by_tm.get((c.task, c.method)), True
        if est is None and c.task in by_t:
            est, exact = by_t[c.task], False
        out.append(CellStatus(c, st, est, exact))
    return out


def format_plan(rows: list[CellStatus], workers: int = 1) -> str:
    """The ``--dry-run`` table: one aligned row per cell, then counts and the time left
    (cells still to run, not ``running`` ones; with ``workers`` > 1 also the wall time if the cells
    split evenly — estimates come from finished cells, which may have run with other thread counts).

    Column widths follow the longest task, student and method label, so long labels
    (``L3-pretrained``, ``universal+rail``) never push a row out of line."""
    wt = max([4] + [len(r.cell.task) for r in rows])
    ws = max([7] + [len(r.cell.student_label) for r in rows])
    wm = max([6] + [len(r.cell.method) for r in rows])
    lines = [f"{'key':16s}  {'task':{wt}s} {'student':{ws}s} {'method':{wm}s} {'seed':>4s}  {'status':10s} estimate"]
    todo_known, todo_unknown = 0.0, 0
    for r in rows:
        c = r.cell
        est = "—" if r.estimate is None else f"{'~' if not r.estimate_exact else ''}{r.estimate / 60:.1f} min"
        lines.append(f"{c.key:16s}  {c.task:{wt}s} {c.student_label:{ws}s} {c.method:{wm}s} {c.seed:4d}  {r.status:10s} {est}")
        if r.status not in ("done", "running"):
            if r.estimate is None:
                todo_unknown += 1
            else:
                todo_known += r.estimate
    n = {s: sum(r.status == s for r in rows) for s in ("done", "running", "todo", "resume", "failed", "no-teacher")}
    lines.append(f"\n{len(rows)} cells: " + ", ".join(f"{v} {k}" for k, v in n.items() if v))
    left = len(rows) - n["done"] - n["running"]
    if left:
        lines.append(f"estimated time left: {todo_known / 3600:.1f} h for {left - todo_unknown} cells"
                     + (f" ({todo_known / 3600 / workers:.1f} h with {workers} workers)" if workers > 1 else "")
                     + (f" + {todo_unknown} cells without an estimate" if todo_unknown else ""))
    return "\n".join(lines)
