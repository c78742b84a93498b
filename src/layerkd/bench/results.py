"""Inputs of ``layerkd report``: reading a results directory into normalised runs.

Holds the result-file schema, :class:`TaskInfo` (the task a result belongs to), :class:`Run` (one
result file), :class:`Group` (the runs of one evaluation set × task × student × method),
:func:`load_results` (read, validate, de-duplicate a results directory) and two small value helpers
shared by the report modules (:func:`_nan`, :func:`_mname`).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..jsonio import nan_for_null
from ..metrics import glue_score
from ..tasks import GLUE_TASKS, get_task

log = logging.getLogger("layerkd")

SCHEMA = "layerkd.bench.result/1"
WHICH = ("best", "last")
_METRIC_NAMES = {"accuracy": "acc", "f1": "F1", "matthews_correlation": "MCC", "pearson": "Pearson",
                 "spearmanr": "Spearman", "mse": "MSE"}


def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _mname(metric: str) -> str:
    return _METRIC_NAMES.get(metric, metric)


@dataclass(frozen=True)
class TaskInfo:
    name: str
    main_metric: str
    metrics: tuple[str, ...]
    regression: bool
    glue: bool

    def glue_score(self, metrics: dict[str, float] | None) -> float:
        if not metrics:
            return float("nan")
        if self.glue:
            return glue_score(self.name, metrics)
        return float(metrics.get(self.main_metric, float("nan")))


def task_info(result: dict[str, Any], cell_task: str | None = None) -> TaskInfo:
    """The task of a result: the registered task if known, else what the result says."""
    name = result.get("task") or cell_task
    if not isinstance(name, str) or not name:
        raise ValueError("no task name")
    try:
        t = get_task(name)
        return TaskInfo(t.name, t.main_metric, tuple(t.metrics), t.is_regression, t.name in GLUE_TASKS)
    except ConfigError:
        main = result.get("main_metric")
        best = result.get("best") or {}
        if not isinstance(main, str):
            raise ValueError(f"task {name!r} is not registered and the result names no main_metric") from None
        metrics = (main, *[k for k in best if k != main])
        return TaskInfo(name, main, metrics, main in ("pearson", "spearmanr", "mse"), False)


@dataclass
class Run:
    """One result file, normalised."""

    path: Path
    key: str
    task: TaskInfo
    student: str
    student_spec: str
    method: str
    seed: int
    suites: list[str]
    result: dict[str, Any]
    teacher: dict[str, Any]
    wall_seconds: float | None
    command: str
    finished_at: str
    superseded: list[str] = field(default_factory=list)
    #: ``teacher.fit_heads.standardize`` of the run (absent from configs written before the option: false)
    heads_standardized: bool = False

    @property
    def identity(self) -> tuple[str, str, str, int]:
        return (self.task.name, self.student, self.method, self.seed)

    @property
    def teacher_hash(self) -> str:
        """The SHA-256 of the teacher weights the cell ran on, as it recorded it ('' when none)."""
        return str((self.teacher or {}).get("fingerprint") or "")

    def metrics(self, which: str, eval_set: str = "dev") -> dict[str, float] | None:
        if eval_set == "dev":
            m = self.result.get(which)
        else:
            m = ((self.result.get("extra_eval") or {}).get(eval_set) or {}).get(which)
        return nan_for_null(m) if isinstance(m, dict) else None  # a non-finite metric is written as null

    def predictions(self, which: str, eval_set: str = "dev") -> np.ndarray | None:
        if eval_set == "dev":
            p = (self.result.get("dev_predictions") or {}).get(which)
        else:
            p = (((self.result.get("extra_eval") or {}).get(eval_set) or {}).get("predictions") or {}).get(which)
        if p is None:
            return None
        arr = np.asarray(p)
        return arr.astype(float) if arr.dtype == object else arr  # null (a non-finite output) → nan

    def labels(self, eval_set: str = "dev") -> np.ndarray | None:
        if eval_set == "dev":
            y = self.result.get("dev_labels")
        else:
            y = ((self.result.get("extra_eval") or {}).get(eval_set) or {}).get("labels")
        return None if y is None else np.asarray(y)

    @property
    def diagnostics(self) -> dict[str, Any]:
        d = self.result.get("diagnostics")
        return d if isinstance(d, dict) else {}

    @property
    def params(self) -> int | None:
        p = self.result.get("student_params")
        return int(p) if isinstance(p, (int, float)) and p > 0 else None


def _parse_run(path: Path, data: dict[str, Any]) -> Run:
    cell, result = data.get("cell"), data.get("result")
    if not isinstance(cell, dict) or not isinstance(result, dict):
        raise ValueError("no 'cell' or 'result' object")
    for k in ("student", "method", "seed"):
        if k not in cell:
            raise ValueError(f"cell has no {k!r}")
    task = task_info(result, cell.get("task"))
    for which in WHICH:
        if not isinstance(result.get(which), dict) or task.main_metric not in result[which]:
            raise ValueError(f"result.{which} lacks the main metric {task.main_metric!r}")
    teacher = data.get("teacher") if isinstance(data.get("teacher"), dict) else {}
    wall = data.get("wall_seconds")
    return Run(path=path, key=str(data.get("key") or path.stem), task=task, student=str(cell["student"]),
               student_spec=str(cell.get("student_spec", cell["student"])), method=str(cell["method"]),
               seed=int(cell["seed"]), suites=[str(s) for s in data.get("suites") or []], result=result,
               teacher=teacher, wall_seconds=float(wall) if isinstance(wall, (int, float)) else None,
               command=str(data.get("command") or ""), finished_at=str(data.get("finished_at") or ""),
               heads_standardized=bool((((data.get("config") or {}).get("teacher") or {}).get("fit_heads") or {})
                                       .get("standardize", False)))


def load_results(results_dir: Path) -> tuple[list[Run], list[tuple[str, str]], list[dict[str, Any]]]:
    """Read every ``*.json`` of ``results_dir`` (not recursive).

    Returns (runs sorted by finish time, skipped files with the reason, failed-cell records).
    Duplicated cells keep the newest result (the others are named in ``Run.superseded``)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ConfigError(f"results directory not found: {results_dir}")
    runs: list[Run] = []
    skipped: list[tuple[str, str]] = []
    failed: list[dict[str, Any]] = []

    def skip(p: Path, why: str) -> None:
        log.warning("report: skipping %s: %s", p.name, why)
        skipped.append((p.name, why))

    for p in sorted(results_dir.glob("*.json")):
        if not p.is_file():
            continue
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            skip(p, f"not readable JSON ({' '.join(str(exc).split())[:120]})")
            continue
        if p.name.endswith(".failed.json"):
            if isinstance(data, dict) and str(data.get("schema", "")).startswith(SCHEMA):
                failed.append(data)
            else:
                skip(p, "not a layerkd failure record")
            continue
        if not isinstance(data, dict):
            skip(p, "not a JSON object")
            continue
        if data.get("schema") != SCHEMA:
            skip(p, f"schema {data.get('schema')!r} is not {SCHEMA!r}")
            continue
        try:
            runs.append(_parse_run(p, data))
        except (KeyError, TypeError, ValueError) as exc:
            skip(p, f"malformed result ({exc})")
    runs.sort(key=lambda r: (r.finished_at, r.key))
    latest: dict[tuple, Run] = {}
    for r in runs:  # sorted oldest first: a later one replaces an earlier one
        old = latest.get(r.identity)
        if old is not None:
            r.superseded = [*old.superseded, old.path.name]
            log.warning("report: %s supersedes %s (same cell %s, finished later)", r.path.name, old.path.name,
                        "/".join(map(str, r.identity)))
        latest[r.identity] = r
    kept = [r for r in runs if latest[r.identity] is r]
    return kept, skipped, failed


@dataclass
class Group:
    eval_set: str
    task: TaskInfo
    student: str
    method: str
    runs: list[Run]
