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
* ``comparisons.csv`` — the declared pairwise tests (``comparisons``), if any;
* ``claims.md``, ``claims.csv`` — the suite files' declared comparison families decided on the
  primary score by one rule (:mod:`layerkd.bench.claims`), if any family is declared;
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

This module holds :func:`build_report` and the aggregation; which tests run on which seeds is in
:mod:`layerkd.bench.significance`, reading the results in :mod:`layerkd.bench.results`, the
figure data in :mod:`layerkd.bench.report_figures` (drawn by :mod:`layerkd.bench.figures`) and
the markdown in :mod:`layerkd.bench.report_md`.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..outputs import writes_report_dir
from ..tasks import get_task
from .claims import COLUMNS as CLAIM_COLUMNS
from .claims import claim_tests, claims_markdown, claims_summary
from .report_figures import _FIGURE_PREFIXES, _make_figures
from .report_md import GLUE_AVERAGE_DESCRIPTION, _markdown
from .results import SCHEMA, WHICH, Group, Run, TaskInfo, _nan, load_results, task_info
from .significance import COLUMNS as SIG_COLUMNS
from .significance import baseline_tests, comparison_tests
from .stats import BOOTSTRAP_LEVELS, TEST_DESCRIPTION, TWO_LEVEL_DESCRIPTION, mean_std

# kept importable from here: the entry point and the input side it builds on
__all__ = ["GLUE_AVERAGE_DESCRIPTION", "SCHEMA", "WHICH", "Group", "Run", "TaskInfo", "build_report", "load_results",
           "task_info"]


# ================================================================================================ helpers
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
    # seeds trained from different teacher weights are not replicates of one experiment: flag them
    row["teachers"] = len({str(r.teacher.get("fingerprint") or "") for r in runs} - {""})
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
# ================================================================================================ the report
@writes_report_dir  # --out: never over or around the results, locked; see layerkd.outputs
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
    comparisons: Sequence[tuple[str, str]] = (),
    only_expected: bool = False,
    declared_methods: Sequence[str] = (),
    bootstrap: str = "two-level",
    families: Sequence[Any] = (),
    loaded: tuple[list[Run], list[tuple[str, str]], list[dict[str, Any]]] | None = None,
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
    * ``suites`` — only use results that were run by one of these suites;
    * ``only_expected`` — only use the results that are ``expected`` cells: the same task, student,
      method and seed (and key, where the expected cell gives one), whichever suite ran them — e.g.
      the report of one suite's grid, including its cells that another suite with the same
      settings ran;
    * ``comparisons`` — extra pairwise tests ``(A, B)``: A against B on every evaluation set, task
      and student where both have results (:mod:`layerkd.bench.significance`); written to
      ``comparisons.csv`` and a report section. A method with no result that neither an
      ``expected`` cell nor ``declared_methods`` (e.g. every method of the suite files) names is a
      ConfigError.
    * ``bootstrap`` — ``two-level`` (training seeds and examples resampled) or ``examples`` (the
      one-level test of the reports written before it) for significance.csv and comparisons.csv;
    * ``families`` — declared comparison families (:func:`layerkd.bench.claims.families_of` of
      the suites): claims.md and claims.csv, always by the two-level test on the primary score;
    * ``loaded`` — runs already read elsewhere, as :func:`load_results` returns them (plain run
      folders: :mod:`layerkd.bench.run_folders`); ``results_dir`` then only names them.

    Means and stds are over seeds, std with ``ddof=1``; the GLUE average follows
    :data:`GLUE_AVERAGE_DESCRIPTION`. Returns ``{"rows", "tests", "comparisons", "glue", "figures",
    "missing", "skipped", "failed", "superseded", "n_results", "report"}``.
    """
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    if n_boot < 1:
        raise ConfigError(f"n_boot: expected at least 1 bootstrap resample, got {n_boot}")
    if bootstrap not in BOOTSTRAP_LEVELS:
        raise ConfigError(f"--bootstrap {bootstrap!r}: expected one of {', '.join(BOOTSTRAP_LEVELS)}")
    two_level = BOOTSTRAP_LEVELS[bootstrap]
    if figures:
        from .figures import require_matplotlib  # noqa: PLC0415

        require_matplotlib()
    runs, skipped, failed = loaded if loaded is not None else load_results(results_dir)
    if suites:
        runs = [r for r in runs if set(r.suites) & set(suites)]
    exp = _expected_cells(expected)
    if only_expected:
        if not exp:
            raise ConfigError("only_expected: no expected cells given (pass the suite files)")
        want = {e[:4]: e[4] for e in exp}
        runs = [r for r in runs if r.identity in want and want[r.identity] in (None, "", r.key)]
    if not runs:
        extra = f" (skipped {len(skipped)} unreadable or foreign file(s))" if skipped else ""
        which = f" of suite(s) {', '.join(suites)}" if suites else ""
        which += " that are cells of the expected grid" if only_expected else ""
        raise ConfigError(f"results directory {results_dir} holds no {SCHEMA} result files{which}{extra}; "
                          "run `layerkd bench` first")

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
    tests = baseline_tests(groups, baseline, n_boot, seed, order, resample_seeds=two_level)
    comparisons_run = comparison_tests(groups, comparisons, n_boot, seed, order,
                                       declared=[e[2] for e in exp] + list(declared_methods), resample_seeds=two_level)
    claims = claim_tests(list(families), runs, n_boot, seed)
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
             "teacher_fingerprint", "teachers", "keys"]
    _atomic_write(out_dir / "summary.csv", _csv_text(all_rows, cols))
    _atomic_write(out_dir / "significance.csv", _csv_text(tests, SIG_COLUMNS))
    if comparisons:
        _atomic_write(out_dir / "comparisons.csv", _csv_text(comparisons_run, SIG_COLUMNS))
    glue_cols = ["student", "method", "tasks"] + [f"{w}_{t}" for w in WHICH for t in tasks] + [
        f"{w}_{k}" for w in WHICH for k in ("tasks_present", "average")]
    _atomic_write(out_dir / "glue_average.csv", _csv_text(glue_rows, glue_cols))
    if families:
        _atomic_write(out_dir / "claims.csv", _csv_text(claims, CLAIM_COLUMNS))
        _atomic_write(out_dir / "claims.md", claims_markdown(claims, n_boot, seed))

    md = _markdown(results_dir=results_dir, out_dir=out_dir, runs=runs, skipped=skipped, failed=failed, rows=rows,
                   teachers=teachers, tests=tests, test_at=test_at, comparisons=comparisons_run,
                   glue_rows=glue_rows, teacher_glue=teacher_glue,
                   student_tasks=student_tasks, tasks=tasks, students=students, methods=methods,
                   eval_sets=eval_sets, task_by_name=task_by_name, baseline=baseline, n_boot=n_boot, seed=seed,
                   figures=fig_records, figures_on=figures, expected=bool(exp), missing=missing, stale=stale,
                   suites_filter=suites, only_expected=only_expected,
                   test_description=TWO_LEVEL_DESCRIPTION if two_level else TEST_DESCRIPTION)
    _atomic_write(out_dir / "report.md", md + (f"\n{claims_summary(claims)}" if families else ""))
    superseded = [{"kept": r.path.name, "superseded": r.superseded} for r in runs if r.superseded]
    return {
        "rows": all_rows, "tests": tests, "comparisons": comparisons_run, "claims": claims, "glue": glue_rows,
        "figures": [str(f["path"]) for f in fig_records], "missing": missing, "stale": stale,
        "skipped": [{"file": f, "reason": why} for f, why in skipped], "failed": failed, "superseded": superseded,
        "n_results": len(runs), "report": str(out_dir / "report.md"),
    }
