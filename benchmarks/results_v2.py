#!/usr/bin/env python
"""Write the v2 lead of docs/results.md (issue 20 point 6) from generated files only.

Reads ``layerkd report``'s output for the v2 cells (``summary.csv``, ``glue_average.csv``,
``claims.md``) and ``benchmarks/results/calibration.json``, and writes, between
``<!-- v2:begin -->`` and ``<!-- v2:end -->`` in docs/results.md (the rest of the page is left as it is):

* the headline table: rows = the teacher and each method of the 2-layer student, columns = the
  tasks' main metric on the test set (GLUE dev) at the validation-selected epoch, mean ± std over
  seeds with n found / expected, then the GLUE-style average and student / teacher;
* the same table for the pretrained 3-layer student (``pretrained-student-v2``), when it has cells;
* the OOD table (the MRPC students on PAWS-Wiki dev, ``ood-v2``);
* the generated claims table (``claims.md`` as ``layerkd report`` wrote it);
* "what changed and why", its numbers read from calibration.json and spread-*.json
  (`probe_layers.py --spread-only`).

No number is typed here: a missing file or cell is printed as missing, with the command that makes it.

    layerkd report benchmarks/results/cells-v2 --out benchmarks/results/report-v2 \\
        --suite configs/suites/ild-v2.yaml --suite configs/suites/ood-v2.yaml \\
        --suite configs/suites/pretrained-student-v2.yaml --var shared=../shared --var work=../layerkd-work
    python benchmarks/results_v2.py          # --report, --calibration, --into to change the paths
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_report import merge_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TASKS = ["SST-2", "MRPC", "CoLA", "STS-B", "RTE"]  # the summary's task names, in the headline's order
STUDENTS = {"L2": "2-layer student (bottom 2 blocks of the teacher), `ild-v2`",
            "L3-pretrained": "pretrained 3-layer student (paraphrase-MiniLM-L3-v2), `pretrained-student-v2`"}
SUITES = {"L2": "ild-v2", "L3-pretrained": "pretrained-student-v2"}  # the suite whose cells fill each headline
BENCH_CMD = ("layerkd bench configs/suites/{suite}.yaml --results benchmarks/results/cells-v2 "
             "--var shared=../shared --var work=../layerkd-work --workers 2")
REPORT_CMD = ("layerkd report benchmarks/results/cells-v2 --out benchmarks/results/report-v2 "
              "--suite configs/suites/ild-v2.yaml --suite configs/suites/ood-v2.yaml "
              "--suite configs/suites/pretrained-student-v2.yaml --var shared=../shared --var work=../layerkd-work")


def _num(x: str | None) -> float | None:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _score(row: dict[str, str]) -> str:
    m = row["main_metric"]
    mean, std = _num(row.get(f"best_{m}_mean")), _num(row.get(f"best_{m}_std"))
    if mean is None:
        return "missing"
    n, exp = row.get("n") or "", row.get("expected_n") or ""
    text = f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")
    if row.get("role") == "teacher":
        return text
    short = exp and n != exp
    return text + f" ({n}/{exp}{' ⚠' if short else ''})" if exp else text + f" ({n})"


def headline(summary: list[dict[str, str]], glue: list[dict[str, str]], student: str) -> str | None:
    rows = [r for r in summary if r["eval_set"] == "dev" and r["student"] == student and r["role"] != "teacher"]
    if not rows:
        return None
    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    teacher = {r["task"]: r for r in summary if r["eval_set"] == "dev" and r["role"] == "teacher"}
    tglue = [_num(teacher[t].get("best_glue_mean")) if t in teacher else None for t in tasks]
    tavg = sum(tglue) / len(tglue) if tglue and all(v is not None for v in tglue) else None
    lines = ["| method | " + " | ".join(f"{t} ({rows_metric(rows, t)})" for t in tasks) + " | GLUE avg. | / teacher |",
             "|---|" + "---:|" * (len(tasks) + 2)]
    lines.append("| teacher | " + " | ".join(_score(teacher[t]) if t in teacher else "missing" for t in tasks)
                 + f" | {_pct(tavg)} | |")
    gavg = {r["method"]: _num(r.get("best_average")) for r in glue if r["student"] == student}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for m in methods:
        by_task = {r["task"]: r for r in rows if r["method"] == m}
        avg = gavg.get(m)
        ratio = f"{100 * avg / tavg:.0f} %" if avg is not None and tavg else "–"
        lines.append(f"| {m} | " + " | ".join(_score(by_task[t]) if t in by_task else "missing" for t in tasks)
                     + f" | {_pct(avg)} | {ratio} |")
    return "\n".join(lines)


def not_run(summary: list[dict[str, str]], student: str) -> str:
    """The headline's cells that have not run, per task, and the command that runs them ('' when none)."""
    rows = [r for r in summary if r["eval_set"] == "dev" and r["student"] == student and r["role"] != "teacher"]
    missing: dict[str, int] = {}
    expected: dict[str, int] = {}
    for r in rows:
        n, exp = int(r.get("n") or 0), int(r.get("expected_n") or 0)
        missing[r["task"]] = missing.get(r["task"], 0) + max(exp - n, 0)
        expected[r["task"]] = expected.get(r["task"], 0) + exp
    if not any(missing.values()):
        return ""
    per_task = ", ".join(f"{t} {missing[t]} of {expected[t]}" for t in TASKS if missing.get(t))
    return (f"Not run yet: {sum(missing.values())} of {sum(expected.values())} cells ({per_task}). `{BENCH_CMD.format(suite=SUITES[student])}` "
            "runs them (finished cells are skipped, interrupted ones resume from their checkpoints; `--seed S` or "
            "`--task T` runs a part; the teachers are `bash benchmarks/calibration/run.sh teachers`), then "
            "`bash benchmarks/report_v2.sh`.")


def rows_metric(rows: list[dict[str, str]], task: str) -> str:
    from layerkd.bench.results import _mname  # noqa: PLC0415  (the report's own metric names)
    from layerkd.tasks import get_task  # noqa: PLC0415

    m = next((r["main_metric"] for r in rows if r["task"] == task and r["main_metric"]), None)
    return _mname(m or get_task(task.lower()).main_metric)  # no cell run yet: the task's own main metric


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def ood(summary: list[dict[str, str]]) -> str | None:
    rows = [r for r in summary if r["eval_set"] != "dev" and r["role"] != "teacher"]
    if not rows:
        return None
    lines = ["| evaluation set | task model | student | method | main metric | test (selected epoch) |", "|---|---|---|---|---|---:|"]
    for r in rows:
        lines.append(f"| {r['eval_set']} | {r['task']} | {r['student']} | {r['method']} | {r['main_metric']} | {_score(r)} |")
    return "\n".join(lines)


def what_changed(cal: dict | None) -> str:
    if not cal:
        return "calibration.json not found: run `python benchmarks/calibration/collect.py`."
    out = []
    for task, row in cal.items():
        st, teacher = row.get("students") or {}, row.get("teacher")
        cls, mean = st.get("cut-cls"), st.get("cut-mean")
        if not (cls and mean and teacher):
            continue
        out.append(f"{task}: teacher {_pct(teacher['test_best'])}; the same 2-layer cut with a [CLS] head "
                   f"{_pct(cls['test_best'])}, with a mean-pooled head {_pct(mean['test_best'])} ({mean['metric']}"
                   + (f"; majority class {_pct(row['majority'])}" if row.get("majority") is not None else "") + ")")
    return ("The v1 students' classifiers read the [CLS] vector of an encoder trained with mean pooling, whose "
            "lower-layer [CLS] vectors barely vary, and every v1 cell chose its epoch on the split it reports. v2 "
            "pools the classifier input by the masked mean (teachers and students), chooses every epoch on a "
            "validation split carved from the training set, scores GLUE dev once as the test set, and tests claims "
            "by a two-level (seeds × examples) bootstrap, Holm within declared families. Calibration "
            "(`benchmarks/results/calibration.md`, one seed, `ce` only): " + ("; ".join(out) or "no task calibrated yet")
            + ".")


#: a layer whose [CLS] vectors have a mean pairwise cosine above this points one way for every input
SAME_DIRECTION = 0.999


def layer_vectors_note(spreads: list[Path]) -> str:
    """Why the v2 methods match mean-pooled layer vectors, with the numbers of probe_layers.py --spread-only."""
    found = []
    for f in sorted(spreads):
        d = json.loads(f.read_text())
        flat = [r for r in d["layers"] if r["cls_mean_cosine"] > SAME_DIRECTION]
        if flat:
            lo = min(r["cls_mean_cosine"] for r in flat)
            mean_hi = max(r["mean_mean_cosine"] for r in flat)
            found.append(f"{d['task']} ({d['n_train']} training rows): layers {flat[0]['layer']}–{flat[-1]['layer']}, [CLS] ≥ {lo:.4f}, "
                         f"mean-pooled ≤ {mean_hi:.2f}")
    if not found:
        return ""
    return (" The methods' layer vectors (PKD, ALP-KD, Internal's cosine) and Universal-KD's pseudo classifiers "
            "read the masked token mean too (the `-mean` presets): on the v2 teachers the [CLS] vectors of the "
            "lower layers point the same way for every input (mean pairwise cosine; "
            + "; ".join(found) + "; `benchmarks/results/spread-*.json`), so a [CLS]-based layer loss would match "
            "one constant vector.")


def internal_note(terms: Path) -> str:
    """What lowers the ``internal`` row, from diagnostic_terms.py's decomposition (empty until it has run)."""
    if not terms.exists():
        return ""
    d = json.loads(terms.read_text())
    need = ("kd", "stacked", "stacked-cos", "stacked-att", "none-cos", "none-att")
    if any(d.get(v) is None for v in need):
        return ""
    t = {v: _pct(d[v]["test_best"]) for v in need}
    return ("### Reading the `internal` row\n\n"
            "Aguilar et al.'s method has two terms: a KL between attention maps and a cosine between layer vectors. On a "
            f"small STS-B run ({d['kd']['train_rows']:,} training rows, {d['kd']['epochs']} epochs, seed 1; "
            "`benchmarks/results/diagnostics/internal-terms.md`) "
            f"the test Pearson is {t['kd']} with `kd` alone and {t['stacked']} with `internal-mean` as declared. "
            f"The stages with the attention KL alone give {t['stacked-att']}, with the cosine term alone {t['stacked-cos']}. "
            f"Beside `ce + kd` from the first step, the attention KL gives {t['none-att']} and the cosine term {t['none-cos']}. "
            "So the attention KL (student layers 1, 2 matched to the teacher's layers 3, 6) is what lowers this student; "
            "the head-less stages cost more on top. The attention maps are the student's own softmax: its attention "
            "dropout is off whenever a recipe matches attention maps (docs/methods.md §3.9).\n")


def section(report: Path, calibration: Path, spreads: list[Path] | None = None, terms: Path | None = None) -> str:
    parts = ["## v2: the calibrated setting (headline)", ""]
    cal = json.loads(calibration.read_text()) if calibration.exists() else None
    summary_f = report / "summary.csv"
    if not summary_f.exists():
        parts += [f"No v2 report yet (`{report.name}/summary.csv` is missing). Run the suites (their commands are at "
                  "the top of `configs/suites/ild-v2.yaml`), then `bash benchmarks/report_v2.sh`, which runs:", "",
                  f"    {REPORT_CMD}", "    python benchmarks/results_v2.py", ""]
    else:
        summary = _csv(summary_f)
        glue = _csv(report / "glue_average.csv") if (report / "glue_average.csv").exists() else []
        for student, desc in STUDENTS.items():
            table = headline(summary, glue, student)
            if table:
                parts += [f"**{desc}.** Test set = GLUE dev, main metric ×100 at the epoch selected on the validation "
                          "split (the primary score), mean ± std over seeds (n found / expected); GLUE avg. as in "
                          "`layerkd report`; / teacher = the student's GLUE avg. over the teacher's.", "", table, ""]
                pending = not_run(summary, student)
                if pending:
                    parts += [pending, ""]
        table = ood(summary)
        parts += ["**Out of distribution** (`ood-v2`: the MRPC models on PAWS-Wiki dev).", "",
                  table or "No out-of-distribution rows yet.", ""]
        claims = report / "claims.md"
        if claims.exists():
            body = [ln for ln in claims.read_text().splitlines() if not ln.startswith("# ")]
            parts += ["### Claims (generated by `layerkd report` from the suites' declared comparisons)", "", *body, ""]
        else:
            parts += ["No claims table yet (`claims.md` is written by `layerkd report --suite …`).", ""]
    parts += ["### What changed and why", "", what_changed(cal) + layer_vectors_note(spreads or []), ""]
    note = internal_note(terms) if terms else ""
    if note:
        parts += [note]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--report", default=str(REPO / "benchmarks" / "results" / "report-v2"))
    ap.add_argument("--calibration", default=str(REPO / "benchmarks" / "results" / "calibration.json"))
    ap.add_argument("--into", default=str(REPO / "docs" / "results.md"))
    ap.add_argument("--terms", default=str(REPO / "benchmarks" / "results" / "diagnostics" / "internal-terms.json"))
    a = ap.parse_args(argv)
    spreads = sorted(Path(a.calibration).parent.glob("spread-*.json"))
    merge_section(Path(a.into), "v2", section(Path(a.report), Path(a.calibration), spreads, Path(a.terms)))
    print(f"wrote {a.into}")


if __name__ == "__main__":
    main()
