"""``layerkd report``: turn a results directory of bench cells into tables, tests and figures.

Input: ``RESULTS_DIR/<key>.json``, one per finished cell (schema ``layerkd.bench.result/1``, see
:mod:`layerkd.bench.runner`). Other files and sub-folders are ignored; a ``*.json`` file that is
not JSON, has another schema, or lacks the fields the report needs is skipped with a warning;
``<key>.failed.json`` files are listed as failed cells. When the same cell (task, student,
method, seed) has several result files — its config changed, so its key changed — the newest one
(``finished_at``) is used and the others are listed as superseded.

Output in ``out_dir``:

* ``report.md`` — the tables with captions, the statistical test stated, figure links, versions,
  machines and commands found in the results, cells per suite, missing and failed cells;
* ``summary.csv`` — one row per evaluation set × task × student × method (and one teacher row
  per task): for ``best`` (the epoch selected on dev) and ``last`` (the final epoch) every
  metric's mean, std and n over seeds, and the per-task GLUE score;
* ``significance.csv`` — every paired bootstrap test against the baseline;
* ``glue_average.csv`` — the GLUE-style average per student × method;
* ``figures/*.png`` — attention heatmaps (ALP, Universal-KD), teacher pseudo-classifier scores per
  layer, RAIL's layer coverage, learning curves, score against student size.

Conventions (also written into the report):

* **mean ± std** over seeds: std is the *sample* standard deviation (``ddof=1``); with one seed
  no std is shown (NaN in the CSV); ``n`` is the number of seeds.
* **GLUE average**: for each task the GLUE leaderboard's per-task score
  (:func:`layerkd.metrics.glue_score`: mean of F1 and accuracy for MRPC and QQP, mean of Pearson
  and Spearman for STS-B, Matthews correlation for CoLA, accuracy otherwise; a non-GLUE task
  uses its main metric), averaged over seeds, then averaged over the tasks of that student. A row
  that lacks any of the student's tasks gets no average ("—, partial k/n").
* **Significance**: :func:`layerkd.bench.stats.paired_bootstrap` (see its module docstring for
  the exact test), one test per evaluation set × task × student × method × best/last, pooled over
  the seeds both the method and the baseline have; Holm-adjusted p-values within each family
  (evaluation set × task × student × best/last) are given beside the raw ones.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..metrics import glue_score
from ..tasks import GLUE_TASKS, get_task
from .stats import TEST_DESCRIPTION, fmt_p, holm, mean_std, paired_bootstrap

log = logging.getLogger("layerkd")

SCHEMA = "layerkd.bench.result/1"
WHICH = ("best", "last")
_SCALED = {"accuracy", "f1", "matthews_correlation", "pearson", "spearmanr"}
_METRIC_NAMES = {"accuracy": "acc", "f1": "F1", "matthews_correlation": "MCC", "pearson": "Pearson",
                 "spearmanr": "Spearman", "mse": "MSE"}
_FIGURE_PREFIXES = ("attention_", "teacher_layers_", "rail_", "curves_", "size_")

GLUE_AVERAGE_DESCRIPTION = (
    "per task the GLUE leaderboard score — mean of F1 and accuracy for MRPC and QQP, mean of Pearson and "
    "Spearman for STS-B, Matthews correlation for CoLA, accuracy for the other GLUE tasks, the main metric for a "
    "non-GLUE task — averaged over seeds, then averaged over the tasks listed; a row missing any of them gets no "
    "average (marked “partial k/n”)"
)


# ================================================================================================ inputs
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


def _norm(name: str) -> str:
    return str(name).lower().replace("-", "").replace("_", "")


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

    @property
    def identity(self) -> tuple[str, str, str, int]:
        return (self.task.name, self.student, self.method, self.seed)

    def metrics(self, which: str, eval_set: str = "dev") -> dict[str, float] | None:
        if eval_set == "dev":
            m = self.result.get(which)
        else:
            m = ((self.result.get("extra_eval") or {}).get(eval_set) or {}).get(which)
        return m if isinstance(m, dict) else None

    def predictions(self, which: str, eval_set: str = "dev") -> np.ndarray | None:
        if eval_set == "dev":
            p = (self.result.get("dev_predictions") or {}).get(which)
        else:
            p = (((self.result.get("extra_eval") or {}).get(eval_set) or {}).get("predictions") or {}).get(which)
        return None if p is None else np.asarray(p)

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
               command=str(data.get("command") or ""), finished_at=str(data.get("finished_at") or ""))


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


# ================================================================================================ helpers
def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _scale(metric: str) -> float:
    return 100.0 if metric in _SCALED else 1.0


def _fmt(x: float | None, metric: str = "accuracy", signed: bool = False) -> str:
    if _nan(x):
        return "—"
    v = x * _scale(metric)
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def _fmt_ms(mean: float, std: float, metric: str) -> str:
    if _nan(mean):
        return "—"
    return _fmt(mean, metric) if _nan(std) else f"{_fmt(mean, metric)} ± {_fmt(std, metric)}"


def _mname(metric: str) -> str:
    return _METRIC_NAMES.get(metric, metric)


def _slug(*parts: str) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", str(p)).strip("-").lower() or "x" for p in parts)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    align = align or ("l" * 2 + "r" * (len(header) - 2))
    sep = ["---:" if a == "r" else ":---:" if a == "c" else "---" for a in align.ljust(len(header), "r")]
    out = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join(sep) + "|"]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if _nan(r.get(k)) else r.get(k)) for k in columns})
    return buf.getvalue()


def _first_seen(items: Sequence[str], *preferred: Sequence[str]) -> list[str]:
    out: list[str] = []
    for seq in (*preferred, items):
        for x in seq:
            if x not in out:
                out.append(x)
    return out


def _teacher_layers(run: Run) -> int | None:
    m = re.search(r"\((\d+) layers", str(run.result.get("teacher", "")))
    return int(m.group(1)) if m else None


# ================================================================================================ expected grid
def _expected_cells(expected: Sequence[dict[str, Any]] | None) -> list[tuple[str, str, str, int, str | None]]:
    out, seen = [], set()
    for e in expected or []:
        try:
            task = e["task"]
            try:
                task = get_task(task).name
            except ConfigError:
                pass
            ident = (str(task), str(e["student"]), str(e["method"]), int(e["seed"]))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"expected cell {e!r}: needs task, student, method and seed") from None
        if ident not in seen:
            seen.add(ident)
            out.append((*ident, e.get("key")))
    return out


# ================================================================================================ aggregation
@dataclass
class Group:
    eval_set: str
    task: TaskInfo
    student: str
    method: str
    runs: list[Run]


def _aggregate_row(g: Group, expected_n: int | None) -> dict[str, Any]:
    runs = sorted(g.runs, key=lambda r: r.seed)
    t = g.task
    row: dict[str, Any] = {"eval_set": g.eval_set, "task": t.name, "student": g.student, "method": g.method,
                           "role": "student", "main_metric": t.main_metric, "n": len(runs),
                           "expected_n": expected_n, "seeds": " ".join(str(r.seed) for r in runs)}
    metric_names = list(t.metrics)
    for r in runs:
        for which in WHICH:
            for k in r.metrics(which, g.eval_set) or {}:
                if k not in metric_names and not k.startswith("_"):
                    metric_names.append(k)
    row["metrics"] = metric_names
    for which in WHICH:
        per_run = [r.metrics(which, g.eval_set) or {} for r in runs]
        for m in metric_names:
            mean, std, n = mean_std([float(pr.get(m, float("nan"))) for pr in per_run])
            row[f"{which}_{m}_mean"], row[f"{which}_{m}_std"], row[f"{which}_{m}_n"] = mean, std, n
        gm, gs, gn = mean_std([t.glue_score(pr) for pr in per_run])
        row[f"{which}_glue_mean"], row[f"{which}_glue_std"], row[f"{which}_glue_n"] = gm, gs, gn
    params = [r.params for r in runs if r.params]
    row["student_params"] = int(np.median(params)) if params else None
    row["student_spec"] = runs[0].student_spec if runs else ""
    row["student_desc"] = str(runs[0].result.get("student", "")) if runs else ""
    row["best_epoch_mean"] = mean_std([float(r.result.get("best_epoch", float("nan"))) for r in runs])[0]
    row["train_seconds_mean"] = mean_std([float(r.result.get("train_seconds", float("nan"))) for r in runs])[0]
    row["keys"] = " ".join(r.key for r in runs)
    return row


def _teacher_rows(runs: list[Run], tasks: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per task: one row per distinct teacher (weights fingerprint; a record without one is merged
    with a fingerprinted teacher at the same path) with its best and last dev metrics."""
    out: dict[str, list[dict[str, Any]]] = {}
    for tname in tasks:
        seen: dict[str, dict[str, Any]] = {}
        for r in runs:
            if r.task.name != tname or not r.teacher:
                continue
            fp, path = str(r.teacher.get("fingerprint") or ""), str(r.teacher.get("path") or "")
            ident = fp or f"path:{path}"
            if not fp and not path:
                continue
            best = r.teacher.get("best") if isinstance(r.teacher.get("best"), dict) else None
            last = r.teacher.get("last") if isinstance(r.teacher.get("last"), dict) else None
            old = seen.get(ident)
            if old is not None and (old["n"] or not best):
                continue  # already known (with metrics, or this record has none either)
            row: dict[str, Any] = {"eval_set": "dev", "task": tname, "student": "", "method": "teacher",
                                   "role": "teacher", "main_metric": r.task.main_metric, "n": 1 if best else 0,
                                   "seeds": "", "teacher_path": path, "teacher_fingerprint": fp,
                                   "teacher_desc": str(r.result.get("teacher", "")),
                                   "metrics": list(r.task.metrics)}
            for which, m in (("best", best), ("last", last)):
                for k in r.task.metrics:
                    v = float(m[k]) if m and k in m else float("nan")
                    row[f"{which}_{k}_mean"], row[f"{which}_{k}_std"] = v, float("nan")
                    row[f"{which}_{k}_n"] = int(not math.isnan(v))
                row[f"{which}_glue_mean"] = r.task.glue_score(m) if m else float("nan")
            seen[ident] = row
        fingerprinted_paths = {row["teacher_path"] for row in seen.values() if row["teacher_fingerprint"]}
        rows = [row for row in seen.values() if row["teacher_fingerprint"] or row["teacher_path"] not in fingerprinted_paths]
        out[tname] = sorted(rows, key=lambda row: -row["n"])  # teachers with metrics first
    return out


# ================================================================================================ tests
def _paired_inputs(method_runs: list[Run], base_runs: list[Run], which: str, eval_set: str):
    """Seeds both have, with predictions and identical labels: (seeds, A [S,N], B [S,N], gold [N]) or a reason."""
    a = {r.seed: r for r in method_runs}
    b = {r.seed: r for r in base_runs}
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None, "no seed in common with the baseline"
    gold = None
    use, pa, pb = [], [], []
    reasons = []
    for s in seeds:
        ya, yb = a[s].labels(eval_set), b[s].labels(eval_set)
        xa, xb = a[s].predictions(which, eval_set), b[s].predictions(which, eval_set)
        if ya is None or yb is None:
            reasons.append(f"seed {s}: no {eval_set} labels")
            continue
        if xa is None or xb is None:
            reasons.append(f"seed {s}: no {which} predictions")
            continue
        if gold is None:
            gold = ya
        if not (len(ya) == len(yb) == len(xa) == len(xb) == len(gold)) or not (
                np.array_equal(ya, gold) and np.array_equal(yb, gold)):
            reasons.append(f"seed {s}: labels or predictions do not line up")
            continue
        use.append(s)
        pa.append(xa)
        pb.append(xb)
    if not use:
        return None, "; ".join(reasons) or "no usable seed"
    return (use, np.stack(pa), np.stack(pb), gold), "; ".join(reasons)


def _run_tests(groups: dict[tuple[str, str, str, str], Group], baseline: str, n_boot: int, seed: int,
               order: Callable[[tuple[str, str, str, str]], Any]) -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = []
    for key in sorted(groups, key=order):
        g = groups[key]
        if g.method == baseline:
            continue
        base = groups.get((g.eval_set, g.task.name, g.student, baseline))
        if base is None:
            continue
        for which in WHICH:
            rec: dict[str, Any] = {"eval_set": g.eval_set, "task": g.task.name, "student": g.student,
                                   "method": g.method, "baseline": baseline, "which": which,
                                   "metric": g.task.main_metric, "n_boot": n_boot, "boot_seed": seed,
                                   "test": "paired bootstrap, one-sided H0: delta <= 0, shift method, add-one"}
            inputs, note = _paired_inputs(g.runs, base.runs, which, g.eval_set)
            rec["note"] = note
            if inputs is None:
                rec.update(n_seeds=0, seeds="", n_examples=0, delta=float("nan"), ci_low=float("nan"),
                           ci_high=float("nan"), p_value=float("nan"), method_score=float("nan"),
                           baseline_score=float("nan"))
                tests.append(rec)
                continue
            seeds, pa, pb, gold = inputs
            res = paired_bootstrap(g.task.main_metric, pa, pb, gold, n_boot=n_boot, seed=seed)
            rec.update(n_seeds=res.n_seeds, seeds=" ".join(map(str, seeds)), n_examples=res.n_examples,
                       delta=res.delta, ci_low=res.ci_low, ci_high=res.ci_high, p_value=res.p_value,
                       method_score=res.method_score, baseline_score=res.baseline_score)
            tests.append(rec)
    # Holm within each family: evaluation set × task × student × best/last
    fams: dict[tuple, list[int]] = {}
    for i, t in enumerate(tests):
        fams.setdefault((t["eval_set"], t["task"], t["student"], t["which"]), []).append(i)
    for idx in fams.values():
        for i, p in zip(idx, holm([tests[i]["p_value"] for i in idx]), strict=True):
            tests[i]["p_holm"] = p
    return tests


def _stars(p: float | None) -> str:
    if _nan(p):
        return ""
    return "**" if p < 0.01 else "*" if p < 0.05 else ""


# ================================================================================================ figures
def _attention_axes(entry: dict[str, Any], shape: tuple[int, int]) -> tuple[list, list, str, str]:
    """Row/column labels and names of a layer_attention entry, whatever its key names."""
    r, c = shape

    def labels(keys: Sequence[str], n: int) -> list:
        for k in keys:
            v = entry.get(k)
            if isinstance(v, list) and len(v) == n:
                return v
        return list(range(1, n + 1))

    rows = labels(("row_labels", "student", "student_layers", "query_layers", "rows"), r)
    cols = labels(("col_labels", "teacher", "teacher_layers", "cols"), c)
    rname = entry.get("rows") if isinstance(entry.get("rows"), str) else "student layer"
    cname = entry.get("cols") if isinstance(entry.get("cols"), str) else "teacher layer"
    return rows, cols, rname, cname


def _head_scores(th: dict[str, Any], metric: str) -> dict[int, float] | None:
    """Per teacher layer dev score of the pseudo classifiers, from a ``teacher_heads`` report."""
    ds = th.get("dev_scores")
    if isinstance(ds, dict) and ds:
        return {int(k): float(v) for k, v in ds.items()}
    dev = th.get("dev")
    if isinstance(dev, dict) and dev:
        out = {}
        for k, v in dev.items():
            if isinstance(v, dict):
                v = v.get(th.get("metric", metric))
            if isinstance(v, (int, float)):
                out[int(re.sub(r"\D", "", str(k)) or 0)] = float(v)
        return out or None
    dm = th.get("dev_metrics")
    if isinstance(dm, dict):
        out = {}
        for k, v in dm.items():
            m = re.fullmatch(r"layer(\d+)/(.+)", str(k))
            if m and m.group(2) == th.get("metric", metric):
                out[int(m.group(1))] = float(v)
        return out or None
    return None


def _curve(runs: list[Run], metric: str) -> dict[str, Any] | None:
    pts: dict[float, list[float]] = {}
    for r in runs:
        hist = r.result.get("history") or []
        steps, epochs = r.result.get("steps"), r.result.get("epochs_run")
        spe = steps / epochs if isinstance(steps, (int, float)) and isinstance(epochs, (int, float)) and epochs else None
        for h in hist:
            if not isinstance(h, dict) or metric not in h:
                continue
            if h.get("end_of_epoch") or spe is None:
                x = float(h.get("epoch", 0))
            else:
                x = float(h.get("step", 0)) / spe
            pts.setdefault(round(x, 3), []).append(float(h[metric]))
    if not pts:
        return None
    xs = sorted(pts)
    stats = [mean_std(pts[x]) for x in xs]
    return {"x": xs, "mean": [s[0] for s in stats], "std": [s[1] for s in stats], "n": len(runs)}


def _make_figures(fig_dir: Path, groups: dict[tuple, Group], tasks: list[str], students: list[str],
                  methods: list[str], teachers: dict[str, list[dict[str, Any]]], baseline: str) -> list[dict[str, Any]]:
    from . import figures as F  # noqa: PLC0415

    made: list[dict[str, Any]] = []
    colours = F.method_colours(methods)

    def add(kind: str, path: Path, caption: str, task: str) -> None:
        made.append({"kind": kind, "path": path, "caption": caption, "task": task})

    def teacher_main(tname: str) -> float | None:
        rows = teachers.get(tname) or []
        if not rows:
            return None
        return rows[0].get(f"best_{rows[0]['main_metric']}_mean")

    def dashed(tname: str, what: str = "the teacher") -> str:
        return "" if _nan(teacher_main(tname)) else f"; dashed: {what}"

    dev = {k: g for k, g in groups.items() if k[0] == "dev"}
    for tname in tasks:
        for s in students:
            for m in methods:
                g = dev.get(("dev", tname, s, m))
                if g is None:
                    continue
                # (a) attention over teacher layers
                by_obj: dict[str, list[tuple[np.ndarray, dict]]] = {}
                for r in g.runs:
                    for obj, entry in (r.diagnostics.get("layer_attention") or {}).items():
                        if isinstance(entry, dict) and "weights" in entry:
                            w = np.asarray(entry["weights"], dtype=np.float64)
                            if w.ndim == 2 and w.size:
                                by_obj.setdefault(obj, []).append((w, entry))
                for obj, items in by_obj.items():
                    shape = Counter(w.shape for w, _ in items).most_common(1)[0][0]
                    use = [(w, e) for w, e in items if w.shape == shape]
                    mean = np.mean([w for w, _ in use], axis=0)
                    rows, cols, rname, cname = _attention_axes(use[0][1], shape)
                    title = f"{obj} attention over teacher layers — {tname}, {s}, {m} (mean of {len(use)} seed(s))"
                    p = F.attention_heatmap(fig_dir / f"attention_{_slug(tname, s, m, obj)}.png", mean,
                                            row_labels=rows, col_labels=cols, title=title, row_name=rname,
                                            col_name=cname)
                    add("attention", p, f"{tname}, student {s}, {m}: `{obj}` — mean attention weight of each student "
                                        f"layer (row) over the teacher layers (columns) on dev, averaged over "
                                        f"{len(use)} seed(s); rows sum to 1.", tname)
                # (c) RAIL coverage
                by_obj_draws: dict[str, list[dict[int, list[int]]]] = {}
                for r in g.runs:
                    for obj, draws in (r.diagnostics.get("rail_draws") or {}).items():
                        if isinstance(draws, dict) and draws:
                            by_obj_draws.setdefault(obj, []).append(
                                {int(e): [int(x) for x in d] for e, d in draws.items()})
                for obj, per_run in by_obj_draws.items():
                    epochs = sorted({e for d in per_run for e in d})
                    drawn = sorted({x for d in per_run for v in d.values() for x in v})
                    n_t = max([_teacher_layers(r) or 0 for r in g.runs] + drawn)
                    layers = list(range(1, n_t + 1)) if drawn and min(drawn) >= 1 else list(range(min(drawn), n_t + 1))
                    frac = np.zeros((len(epochs), len(layers)))
                    for d in per_run:
                        for i, e in enumerate(epochs):
                            for x in d.get(e, []):
                                if x in layers:
                                    frac[i, layers.index(x)] += 1
                    frac /= len(per_run)
                    title = f"RAIL teacher layers drawn per epoch — {tname}, {s}, {m} ({obj}, {len(per_run)} seed(s))"
                    p = F.rail_coverage(fig_dir / f"rail_{_slug(tname, s, m, obj)}.png", frac,
                                        epochs=[e + 1 for e in epochs], layers=layers, n_runs=len(per_run), title=title)
                    add("rail", p, f"{tname}, student {s}, {m}: `{obj}` — teacher layers drawn at the start of each "
                                   f"epoch (cell: runs that drew the layer / runs; {len(per_run)} seed(s)). With "
                                   "per-batch resampling only the epoch's first draw is logged.", tname)
        # (b) teacher pseudo classifiers per layer
        series_by_teacher: dict[str, dict[str, dict[int, float]]] = {}
        metric = None
        task_runs = [r for key, grp in dev.items() if key[1] == tname for r in grp.runs]
        for r in task_runs:
            th = r.diagnostics.get("teacher_heads")
            if not isinstance(th, dict):
                continue
            metric = th.get("metric", r.task.main_metric)
            sc = _head_scores(th, r.task.main_metric)
            if not sc:
                continue
            fit_id = str(th.get("key") or f"{r.key}")
            series_by_teacher.setdefault(str(r.teacher.get("fingerprint") or th.get("teacher") or "teacher"), {})[
                fit_id] = sc
        if series_by_teacher:
            series = []
            for fp, fits in series_by_teacher.items():
                layers = sorted({x for f in fits.values() for x in f})
                stats = [mean_std([f.get(x, float("nan")) for f in fits.values()]) for x in layers]
                label = "pseudo classifiers" if len(series_by_teacher) == 1 else f"teacher {fp[:8]}"
                series.append({"label": label, "layers": layers, "mean": [s_[0] for s_ in stats],
                               "std": [s_[1] for s_ in stats], "n": len(fits)})
            n_fits = sum(len(f) for f in series_by_teacher.values())
            p = F.teacher_layer_scores(fig_dir / f"teacher_layers_{_slug(tname)}.png", series, metric=_mname(metric),
                                       title=f"Teacher pseudo classifiers per layer — {tname}",
                                       teacher_score=teacher_main(tname))
            add("teacher_layers", p, f"{tname}: dev {_mname(metric)} of a linear classifier on each frozen teacher layer "
                                     f"(mean ± std over {n_fits} distinct fit(s))"
                                     f"{dashed(tname, 'the teacher with its own classifier')}.", tname)
        # (d) learning curves
        for s in students:
            curves = {}
            task_info_ = None
            for m in methods:
                g = dev.get(("dev", tname, s, m))
                if g is None:
                    continue
                task_info_ = g.task
                c = _curve(g.runs, g.task.main_metric)
                if c is not None:
                    curves[m] = c
            if curves and task_info_ is not None:
                p = F.learning_curves(fig_dir / f"curves_{_slug(tname, s)}.png", curves,
                                      metric=_mname(task_info_.main_metric), colours=colours, baseline=baseline,
                                      teacher_score=teacher_main(tname),
                                      title=f"Dev {_mname(task_info_.main_metric)} during training — {tname}, "
                                            f"student {s} (mean ± std over seeds)")
                add("curves", p, f"{tname}, student {s}: dev {_mname(task_info_.main_metric)} at each evaluation, "
                                 f"mean over seeds with a ±1 std band (n seeds in the legend){dashed(tname)}.", tname)
        # (e) score against student size
        series_size: dict[str, list[dict[str, Any]]] = {}
        task_info_ = None
        for m in methods:
            for s in students:
                g = dev.get(("dev", tname, s, m))
                if g is None:
                    continue
                task_info_ = g.task
                params = [r.params for r in g.runs if r.params]
                if not params:
                    continue
                mean, std, _ = mean_std([r.metrics("best")[g.task.main_metric] for r in g.runs])
                series_size.setdefault(m, []).append({"params": int(np.median(params)), "mean": mean, "std": std,
                                                      "label": s})
        if series_size and task_info_ is not None:
            p = F.score_vs_size(fig_dir / f"size_{_slug(tname)}.png", series_size, metric=_mname(task_info_.main_metric),
                                colours=colours, teacher_score=teacher_main(tname),
                                title=f"Best-epoch dev {_mname(task_info_.main_metric)} against student size — {tname}")
            add("size", p, f"{tname}: best-epoch dev {_mname(task_info_.main_metric)} (mean ± std over seeds) against "
                           f"the student's parameter count (log scale), one marker per method{dashed(tname)}.", tname)
    return made


# ================================================================================================ the report
def build_report(
    results_dir: Path,
    out_dir: Path,
    *,
    baseline: str = "ce",
    n_boot: int = 10000,
    seed: int = 0,
    figures: bool = True,
    expected: list[dict[str, Any]] | None = None,
    method_order: Sequence[str] | None = None,
    suites: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Aggregate the results in ``results_dir`` and write report.md, summary.csv, significance.csv,
    glue_average.csv and figures/*.png into ``out_dir``.

    * ``baseline`` — the method every other method is tested against (paired bootstrap, see
      :mod:`layerkd.bench.stats`), per evaluation set × task × student;
    * ``n_boot``, ``seed`` — bootstrap resamples and the seed of their generator (the same
      resamples for every test on the same evaluation set: results are deterministic);
    * ``figures`` — draw the PNG figures (needs matplotlib; ConfigError if it is missing);
    * ``expected`` — cells (dicts with task, student, method, seed, e.g. ``Cell.describe()``) that
      should be there: missing ones are listed and ``n`` is shown as ``found/expected``; they also
      give the order of tasks, students and methods;
    * ``method_order`` — methods to list first (after the baseline); else first-seen order;
    * ``suites`` — only use results that belong to one of these suites.

    Means and stds are over seeds, std with ``ddof=1``; the GLUE average follows
    :data:`GLUE_AVERAGE_DESCRIPTION`. Returns ``{"rows", "tests", "glue", "figures", "missing",
    "skipped", "failed", "superseded", "n_results", "report"}``.
    """
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    if n_boot < 1:
        raise ConfigError(f"n_boot: expected at least 1 bootstrap resample, got {n_boot}")
    if figures:
        from .figures import require_matplotlib  # noqa: PLC0415

        require_matplotlib()
    runs, skipped, failed = load_results(results_dir)
    if suites:
        runs = [r for r in runs if set(r.suites) & set(suites)]
    if not runs:
        extra = f" (skipped {len(skipped)} unreadable or foreign file(s))" if skipped else ""
        which = f" of suite(s) {', '.join(suites)}" if suites else ""
        raise ConfigError(f"results directory {results_dir} holds no {SCHEMA} result files{which}{extra}; "
                          "run `layerkd bench` first")
    exp = _expected_cells(expected)

    # ---------------------------------------------------------------- order
    tasks = _first_seen([r.task.name for r in runs], [e[0] for e in exp])
    students = _first_seen([r.student for r in runs], [e[1] for e in exp])
    methods = _first_seen([r.method for r in runs], [baseline], list(method_order or []), [e[2] for e in exp])
    task_by_name = {r.task.name: r.task for r in runs}
    eval_sets = ["dev"] + _first_seen([n for r in runs for n in (r.result.get("extra_eval") or {})])

    def order(k: tuple[str, str, str, str]) -> tuple:
        ev, t, s, m = k
        return (eval_sets.index(ev), tasks.index(t), students.index(s), methods.index(m))

    # ---------------------------------------------------------------- groups and rows
    groups: dict[tuple[str, str, str, str], Group] = {}
    for r in runs:
        for ev in ["dev", *(r.result.get("extra_eval") or {})]:
            if ev != "dev" and not isinstance((r.result.get("extra_eval") or {}).get(ev), dict):
                continue
            if ev != "dev" and r.metrics("best", ev) is None:
                continue
            k = (ev, r.task.name, r.student, r.method)
            groups.setdefault(k, Group(ev, r.task, r.student, r.method, [])).runs.append(r)
    exp_n = Counter((t, s, m) for t, s, m, _, _ in exp)
    have = {r.identity for r in runs}
    missing = [{"task": t, "student": s, "method": m, "seed": sd} for t, s, m, sd, _ in exp if (t, s, m, sd) not in have]
    # expected cells whose key differs from the result found (the config changed since the result was written)
    by_ident = {r.identity: r for r in runs}
    stale = [{"task": t, "student": s, "method": m, "seed": sd, "expected_key": k, "found_key": by_ident[(t, s, m, sd)].key}
             for t, s, m, sd, k in exp if k and (t, s, m, sd) in by_ident and by_ident[(t, s, m, sd)].key != k]

    rows: list[dict[str, Any]] = []
    for k in sorted(groups, key=order):
        rows.append(_aggregate_row(groups[k], exp_n.get(k[1:]) if exp else None))
    # expected (task, student, method) with no result at all: an explicit empty row
    for (t, s, m), n_e in exp_n.items():
        if ("dev", t, s, m) not in groups:
            tinfo = task_by_name.get(t)
            rows.append({"eval_set": "dev", "task": t, "student": s, "method": m, "role": "student",
                         "main_metric": tinfo.main_metric if tinfo else "", "n": 0, "expected_n": n_e, "seeds": "",
                         "metrics": list(tinfo.metrics) if tinfo else []})
            if t not in tasks:
                tasks.append(t)
            for lst, v in ((students, s), (methods, m)):
                if v not in lst:
                    lst.append(v)
    rows.sort(key=lambda r: order((r["eval_set"], r["task"], r["student"], r["method"])))
    teachers = _teacher_rows(runs, tasks)

    # ---------------------------------------------------------------- tests
    tests = _run_tests(groups, baseline, n_boot, seed, order)
    test_at = {(t["eval_set"], t["task"], t["student"], t["method"], t["which"]): t for t in tests}

    # ---------------------------------------------------------------- GLUE average
    glue_rows: list[dict[str, Any]] = []
    student_tasks = {s: [t for t in tasks if any(k[1] == t and k[2] == s for k in groups if k[0] == "dev")
                         or (t, s) in {(e[0], e[1]) for e in exp}] for s in students}
    row_at = {(r["eval_set"], r["task"], r["student"], r["method"]): r for r in rows}
    for s in students:
        ts = student_tasks[s]
        for m in methods:
            per = {t: row_at.get(("dev", t, s, m)) for t in ts}
            if not any(v is not None and v.get("n") for v in per.values()):
                continue
            g: dict[str, Any] = {"student": s, "method": m, "tasks": " ".join(ts)}
            for which in WHICH:
                vals = {t: (v.get(f"{which}_glue_mean") if v and v.get("n") else None) for t, v in per.items()}
                for t, v in vals.items():
                    g[f"{which}_{t}"] = v
                got = [v for v in vals.values() if not _nan(v)]
                g[f"{which}_tasks_present"] = len(got)
                g[f"{which}_average"] = float(np.mean(got)) if len(got) == len(ts) and ts else float("nan")
            glue_rows.append(g)
    teacher_glue = {t: (teachers[t][0].get("best_glue_mean") if teachers.get(t) else None) for t in tasks}

    # ---------------------------------------------------------------- figures
    fig_records: list[dict[str, Any]] = []
    fig_dir = out_dir / "figures"
    if figures:
        fig_dir.mkdir(parents=True, exist_ok=True)
        fig_records = _make_figures(fig_dir, groups, tasks, students, methods, teachers, baseline)
        current = {Path(f["path"]).name for f in fig_records}
        for old in fig_dir.glob("*.png"):  # a previous report's figures that no longer apply
            if old.name not in current and old.name.startswith(_FIGURE_PREFIXES):
                old.unlink(missing_ok=True)

    # ---------------------------------------------------------------- files
    out_dir.mkdir(parents=True, exist_ok=True)
    all_rows = [tr for t in tasks for tr in teachers.get(t, [])] + rows
    metric_cols = _first_seen([m for r in all_rows for m in r.get("metrics", [])])
    cols = ["eval_set", "task", "student", "method", "role", "main_metric", "n", "expected_n", "seeds"]
    for which in WHICH:
        for m in metric_cols:
            cols += [f"{which}_{m}_mean", f"{which}_{m}_std", f"{which}_{m}_n"]
        cols += [f"{which}_glue_mean", f"{which}_glue_std"]
    cols += ["student_spec", "student_params", "best_epoch_mean", "train_seconds_mean", "teacher_path",
             "teacher_fingerprint", "keys"]
    _atomic_write(out_dir / "summary.csv", _csv_text(all_rows, cols))
    sig_cols = ["eval_set", "task", "student", "method", "baseline", "which", "metric", "n_seeds", "seeds",
                "n_examples", "method_score", "baseline_score", "delta", "ci_low", "ci_high", "p_value", "p_holm",
                "n_boot", "boot_seed", "test", "note"]
    _atomic_write(out_dir / "significance.csv", _csv_text(tests, sig_cols))
    glue_cols = ["student", "method", "tasks"] + [f"{w}_{t}" for w in WHICH for t in tasks] + [
        f"{w}_{k}" for w in WHICH for k in ("tasks_present", "average")]
    _atomic_write(out_dir / "glue_average.csv", _csv_text(glue_rows, glue_cols))

    md = _markdown(results_dir=results_dir, out_dir=out_dir, runs=runs, skipped=skipped, failed=failed, rows=rows,
                   teachers=teachers, tests=tests, test_at=test_at, glue_rows=glue_rows, teacher_glue=teacher_glue,
                   student_tasks=student_tasks, tasks=tasks, students=students, methods=methods,
                   eval_sets=eval_sets, task_by_name=task_by_name, baseline=baseline, n_boot=n_boot, seed=seed,
                   figures=fig_records, figures_on=figures, expected=bool(exp), missing=missing, stale=stale,
                   suites_filter=suites)
    _atomic_write(out_dir / "report.md", md)
    superseded = [{"kept": r.path.name, "superseded": r.superseded} for r in runs if r.superseded]
    return {
        "rows": all_rows, "tests": tests, "glue": glue_rows,
        "figures": [str(f["path"]) for f in fig_records], "missing": missing, "stale": stale,
        "skipped": [{"file": f, "reason": why} for f, why in skipped], "failed": failed, "superseded": superseded,
        "n_results": len(runs), "report": str(out_dir / "report.md"),
    }


# ================================================================================================ markdown
def _n_cell(row: dict[str, Any]) -> str:
    n, e = row.get("n", 0), row.get("expected_n")
    if e is None or n > e:  # more seeds than the expected grid asks for: other suites' cells
        return str(n)
    return f"{n}/{e}" + (" ⚠" if n < e else "")


def _markdown(**k: Any) -> str:
    runs: list[Run] = k["runs"]
    tasks, students, methods = k["tasks"], k["students"], k["methods"]
    baseline, n_boot = k["baseline"], k["n_boot"]
    rows_at = {(r["eval_set"], r["task"], r["student"], r["method"]): r for r in k["rows"]}
    test_at = k["test_at"]
    task_by_name: dict[str, TaskInfo] = k["task_by_name"]
    out: list[str] = []
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    versions = Counter(str((r.result.get("environment") or {}).get("layerkd", "?")) for r in runs)
    out.append("# Benchmark report\n")
    out.append(f"Generated {now} by layerkd {', '.join(sorted(versions))} from `{k['results_dir']}`: "
               f"{len(runs)} result file(s) used"
               + (f", {len(k['skipped'])} skipped" if k["skipped"] else "")
               + (f", {len(k['failed'])} failed cell(s)" if k["failed"] else "")
               + (f", {len(k['missing'])} expected cell(s) missing" if k["expected"] else "")
               + (f"; only suite(s) {', '.join(k['suites_filter'])}" if k["suites_filter"] else "") + ".\n")

    tabno = [0]

    def caption(text: str) -> str:
        tabno[0] += 1
        return f"**Table {tabno[0]}.** {text}\n"

    # ---------------------------------------------------------------- conventions
    out.append("## How to read this report\n")
    out.append("- Scores are ×100 (accuracy, F1, Matthews correlation, Pearson, Spearman). **mean ± std** is over "
               "training seeds; std is the *sample* standard deviation (ddof = 1); with a single seed no std is "
               "shown. **n** is the number of seeds" + (" found / expected (⚠: cells missing)" if k["expected"]
                                                        else "") + ".")
    out.append("- **best**: the epoch whose dev main metric was highest (the model is selected on the same dev set, "
               "so this is optimistic); **last**: the final epoch (no selection on dev). Both are kept separate.")
    out.append(f"- **GLUE average**: {GLUE_AVERAGE_DESCRIPTION}.")
    out.append(f"- **Significance** ({n_boot} resamples, generator seed {k['seed']}): {TEST_DESCRIPTION}. "
               f"Each method is tested against the baseline **{baseline}** on the same task, student and "
               "evaluation set; Holm-adjusted p-values are given within each task × student × best/last family. "
               "In the results tables, Δ is the observed best-epoch δ (×100) with * p < 0.05 and ** p < 0.01 "
               "(one-sided, unadjusted).")
    out.append("")

    # ---------------------------------------------------------------- dev tables
    out.append("## Dev results\n")
    for t in tasks:
        ti = task_by_name.get(t)
        if ti is None:
            continue
        mets = list(ti.metrics)
        main = ti.main_metric
        header = ["student", "method", "n"] + [f"{_mname(m)} {w}" for m in mets for w in WHICH] + [
            f"Δ {_mname(main)} vs {baseline}"]
        body = []
        for tr in k["teachers"].get(t, []):
            fp = str(tr.get("teacher_fingerprint") or "")[:8]
            body.append(["(teacher)", f"teacher `{fp}`" if fp else "teacher", ""]
                        + [_fmt(tr.get(f"{w}_{m}_mean"), m) for m in mets for w in WHICH]
                        + ["" if tr["n"] else "metrics not found"])
        for s in students:
            for m in methods:
                r = rows_at.get(("dev", t, s, m))
                if r is None:
                    continue
                if not r.get("n"):
                    body.append([s, m, _n_cell(r)] + ["missing"] * (2 * len(mets)) + [""])
                    continue
                tst = test_at.get(("dev", t, s, m, "best"))
                delta = "" if m == baseline else (
                    "n/a" if tst is None or _nan(tst.get("delta")) else
                    f"{_fmt(tst['delta'], main, signed=True)}{_stars(tst['p_value'])}")
                body.append([s, m, _n_cell(r)]
                            + [_fmt_ms(r.get(f"{w}_{mm}_mean"), r.get(f"{w}_{mm}_std"), mm) for mm in mets for w in WHICH]
                            + [delta])
        out.append(f"### {t} (main metric: {_mname(main)})\n")
        teach = k["teachers"].get(t) or []
        tdesc = f" The teacher is {teach[0].get('teacher_desc') or teach[0].get('teacher_path')}." if teach else ""
        out.append(caption(f"{t} dev set, mean ± std over seeds (×100); best = best epoch selected on dev, "
                           f"last = final epoch; Δ = paired-bootstrap δ of the best-epoch {_mname(main)} against "
                           f"{baseline}.{tdesc}"))
        out.append(_md_table(header, body))
        out.append("")

    # ---------------------------------------------------------------- GLUE average
    out.append("## GLUE-style average\n")
    for s in students:
        ts = k["student_tasks"][s]
        grows = [g for g in k["glue_rows"] if g["student"] == s]
        if not grows:
            continue
        header = ["student", "method"] + ts + ["average (best)", "average (last)"]
        body = []
        tg = k["teacher_glue"]
        tvals = [tg.get(t) for t in ts]
        if any(not _nan(v) for v in tvals):
            tavg = float(np.mean(tvals)) if all(not _nan(v) for v in tvals) else float("nan")
            body.append(["(teacher)", "teacher"] + [_fmt(v) for v in tvals]
                        + [_fmt(tavg) if not _nan(tavg) else f"— (partial {sum(not _nan(v) for v in tvals)}/{len(ts)})",
                           ""])
        for g in grows:
            cells = []
            for which in WHICH:
                avg = g.get(f"{which}_average")
                cells.append(_fmt(avg) if not _nan(avg) else f"— (partial {g[f'{which}_tasks_present']}/{len(ts)})")
            body.append([s, g["method"]] + [_fmt(g.get(f"best_{t}")) for t in ts] + cells)
        out.append(caption(f"Student {s}: per-task GLUE score of the best epoch (×100, mean over seeds) and its "
                           f"average over {', '.join(ts)} for the best and the last epoch. Per task: mean of F1 and "
                           "accuracy (MRPC, QQP), of Pearson and Spearman (STS-B), MCC (CoLA), accuracy (others)."))
        out.append(_md_table(header, body))
        out.append("")

    # ---------------------------------------------------------------- significance
    def sig_tables(ev: str) -> list[str]:
        lines: list[str] = []
        for t in tasks:
            ti = task_by_name.get(t)
            if ti is None:
                continue
            body = []
            for s in students:
                for m in methods:
                    if m == baseline:
                        continue
                    tb, tl = test_at.get((ev, t, s, m, "best")), test_at.get((ev, t, s, m, "last"))
                    if tb is None and tl is None:
                        continue
                    cells = [s, m]
                    for tt in (tb, tl):
                        if tt is None or _nan(tt.get("delta")):
                            cells += ["n/a", "—", "—"]
                            continue
                        cells += [f"{_fmt(tt['delta'], ti.main_metric, True)} "
                                  f"[{_fmt(tt['ci_low'], ti.main_metric, True)}, {_fmt(tt['ci_high'], ti.main_metric, True)}]",
                                  fmt_p(tt["p_value"]) + _stars(tt["p_value"]), fmt_p(tt.get("p_holm"))]
                    seeds_used = (tb or tl).get("seeds", "")
                    cells.insert(2, f"{(tb or tl).get('n_seeds', 0)} ({seeds_used})" if seeds_used else "0")
                    cells.append((tb or tl).get("n_examples", ""))
                    notes = "; ".join(x for x in {(tb or {}).get("note", ""), (tl or {}).get("note", "")} if x)
                    cells.append(notes)
                    body.append(cells)
            if not body:
                continue
            header = ["student", "method", "seeds", "δ best [95% CI]", "p", "p Holm", "δ last [95% CI]", "p", "p Holm",
                      "N", "note"]
            where = "dev" if ev == "dev" else f"{ev} ({t} model)"
            lines.append(f"### {t} — {where}\n" if ev == "dev" else f"#### {t} — {where}\n")
            lines.append(caption(f"{t}, {where}: paired bootstrap of {_mname(ti.main_metric)} (×100), method − "
                                 f"{baseline}, pooled over the seeds both have; N = evaluation examples; one-sided "
                                 f"p of H0: δ ≤ 0 ({n_boot} resamples)."))
            lines.append(_md_table(header, body, "lll" + "r" * 7 + "l"))
            lines.append("")
        return lines

    out.append(f"## Significance against {baseline}\n")
    out.append(f"Test: {TEST_DESCRIPTION}.\n")
    body = sig_tables("dev")
    out += body if body else [f"No test: no task has both {baseline} and another method with dev predictions and "
                              "labels.\n"]

    # ---------------------------------------------------------------- out of domain
    extra_sets = [e for e in k["eval_sets"] if e != "dev"]
    if extra_sets:
        out.append("## Out-of-domain evaluation\n")
        for ev in extra_sets:
            out.append(f"### {ev}\n")
            for t in tasks:
                ti = task_by_name.get(t)
                if ti is None:
                    continue
                body = []
                for s in students:
                    for m in methods:
                        r = rows_at.get((ev, t, s, m))
                        if r is None:
                            continue
                        tst = test_at.get((ev, t, s, m, "best"))
                        delta = "" if m == baseline else (
                            "n/a" if tst is None or _nan(tst.get("delta")) else
                            f"{_fmt(tst['delta'], ti.main_metric, True)}{_stars(tst['p_value'])}")
                        body.append([s, m, _n_cell({"n": r["n"]})]
                                    + [_fmt_ms(r.get(f"{w}_{mm}_mean"), r.get(f"{w}_{mm}_std"), mm)
                                       for mm in ti.metrics for w in WHICH] + [delta])
                if not body:
                    continue
                header = ["student", "method", "n"] + [f"{_mname(m)} {w}" for m in ti.metrics for w in WHICH] + [
                    f"Δ {_mname(ti.main_metric)} vs {baseline}"]
                out.append(caption(f"{ev}, evaluated with the {t} models (best-epoch model selected on {t} dev; "
                                   f"last = final epoch), mean ± std over seeds (×100)."))
                out.append(_md_table(header, body))
                out.append("")
            out += sig_tables(ev)

    # ---------------------------------------------------------------- figures
    out.append("## Figures\n")
    figs = k["figures"]
    if not k["figures_on"]:
        out.append("Figures were not drawn (`--no-figures`).\n")
    elif not figs:
        out.append("No figure: the results hold no curves, diagnostics or sizes to draw.\n")
    titles = {"attention": "Attention over teacher layers (ALP, Universal-KD)",
              "teacher_layers": "Teacher pseudo classifiers per layer",
              "rail": "RAIL-KD: teacher layers drawn per epoch", "curves": "Learning curves",
              "size": "Score against student size"}
    for kind, title in titles.items():
        these = [f for f in figs if f["kind"] == kind]
        if not these:
            continue
        out.append(f"### {title}\n")
        for i, f in enumerate(these, 1):
            rel = Path(f["path"]).relative_to(k["out_dir"]).as_posix()
            out.append(f"![{f['caption']}]({rel})\n")
            out.append(f"*{title} {i}.* {f['caption']}\n")

    # ---------------------------------------------------------------- completeness
    if k["expected"]:
        out.append("## Missing cells\n")
        miss = k["missing"]
        if not miss:
            out.append("Every expected cell has a result.\n")
        else:
            by: dict[tuple, list[int]] = {}
            for c in miss:
                by.setdefault((c["task"], c["student"], c["method"]), []).append(c["seed"])
            out.append(caption(f"{len(miss)} expected cell(s) without a result (task, student, method: seeds)."))
            out.append(_md_table(["task", "student", "method", "missing seeds"],
                                 [[t, s, m, ", ".join(map(str, sorted(sd)))] for (t, s, m), sd in by.items()], "llll"))
            out.append("")
        if k["stale"]:
            out.append(f"{len(k['stale'])} cell(s) have a result from an older config (its key differs from the "
                       "suite's): " + ", ".join(f"{c['task']}/{c['student']}/{c['method']}/seed {c['seed']}"
                                                for c in k["stale"]) + ".\n")
    if k["failed"]:
        out.append("## Failed cells\n")
        body = []
        for f in k["failed"]:
            c = f.get("cell") or {}
            tail = (f.get("tail") or [""])[-1] if isinstance(f.get("tail"), list) else ""
            body.append([c.get("task", "?"), c.get("student", "?"), c.get("method", "?"), c.get("seed", "?"),
                         f.get("returncode", "?"), f"`{f.get('key', '')}`", str(tail)[:120]])
        out.append(caption("Cells whose last attempt failed (`<key>.failed.json`)."))
        out.append(_md_table(["task", "student", "method", "seed", "exit", "key", "last log line"], body, "llllrll"))
        out.append("")

    # ---------------------------------------------------------------- provenance
    out.append("## Runs\n")
    suites = Counter(s for r in runs for s in r.suites)
    if suites:
        out.append(caption("Result files per suite (a cell shared by several suites counts in each)."))
        out.append(_md_table(["suite", "cells"], [[s, n] for s, n in sorted(suites.items())], "lr"))
        out.append("")
    studs = {}
    for r in runs:
        studs.setdefault(r.student, (r.student_spec, str(r.result.get("student", "")), r.params))
    out.append(caption("Students."))
    out.append(_md_table(["label", "spec", "architecture", "parameters"],
                         [[s, v[0], v[1], f"{v[2]:,}" if v[2] else "—"] for s, v in studs.items()], "lllr"))
    out.append("")
    env = Counter()
    mach = Counter()
    for r in runs:
        e = r.result.get("environment") or {}
        env[(e.get("layerkd", "?"), e.get("torch", "?"), e.get("transformers", "?"), e.get("python", "?"))] += 1
        mach[(e.get("platform", "?"), e.get("cpu_count", "?"), e.get("cuda") or "cpu",
              r.result.get("precision", "?"), r.result.get("processes", "?"))] += 1
    out.append(caption("Software versions found in the results."))
    out.append(_md_table(["layerkd", "torch", "transformers", "python", "runs"],
                         [[*v, n] for v, n in env.most_common()], "llllr"))
    out.append("")
    out.append(caption("Machines found in the results."))
    out.append(_md_table(["platform", "CPUs", "CUDA", "precision", "processes", "runs"],
                         [[*v, n] for v, n in mach.most_common()], "lrllrr"))
    out.append("")
    cmds = Counter(re.sub(r"\b[0-9a-f]{16}\b", "<key>", r.command) for r in runs if r.command)
    if cmds:
        out.append("Commands (cell keys replaced by `<key>`; each cell's exact config is stored in its result file "
                   "under `config`):\n")
        for c, n in cmds.most_common():
            out.append(f"- `{c}` ({n} run(s))")
        out.append("")
    wall = sum(r.wall_seconds or 0.0 for r in runs)
    train = sum(float(r.result.get("train_seconds") or 0.0) for r in runs)
    fins = sorted(r.finished_at for r in runs if r.finished_at)
    out.append(f"Compute: {wall / 3600:.2f} h wall time in total ({train / 3600:.2f} h of training)"
               + (f"; runs finished between {fins[0]} and {fins[-1]}" if fins else "") + ".\n")
    sup = [r for r in runs if r.superseded]
    if sup:
        out.append("Superseded results (same cell, an older result file; the newest is used): "
                   + ", ".join(f"`{x}` → `{r.path.name}`" for r in sup for x in r.superseded) + ".\n")
    if k["skipped"]:
        out.append("## Skipped files\n")
        out.append(_md_table(["file", "reason"], [[f"`{f}`", why] for f, why in k["skipped"]], "ll"))
        out.append("")
    return "\n".join(out).rstrip() + "\n"
