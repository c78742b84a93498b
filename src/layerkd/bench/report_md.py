"""Markdown of ``layerkd report``: renders report.md from the aggregated rows, tests and figures.

Holds :func:`_markdown` (every section of report.md: conventions, dev tables, GLUE average,
significance, out-of-domain sets, figures, missing / failed cells, provenance),
:data:`GLUE_AVERAGE_DESCRIPTION` and the number / table formatting helpers it uses.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .results import WHICH, Run, TaskInfo, _mname, _nan
from .selection import best_note, selected_where
from .stats import TEST_DESCRIPTION, fmt_p

_SCALED = {"accuracy", "f1", "matthews_correlation", "pearson", "spearmanr"}

GLUE_AVERAGE_DESCRIPTION = (
    "per task the GLUE leaderboard score — mean of F1 and accuracy for MRPC and QQP, mean of Pearson and "
    "Spearman for STS-B, Matthews correlation for CoLA, accuracy for the other GLUE tasks, the main metric for a "
    "non-GLUE task — averaged over seeds, then averaged over the tasks listed; a row missing any of them gets no "
    "average (marked “partial k/n”)"
)


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


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    align = align or ("l" * 2 + "r" * (len(header) - 2))
    sep = ["---:" if a == "r" else ":---:" if a == "c" else "---" for a in align.ljust(len(header), "r")]
    out = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join(sep) + "|"]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def _delta_cells(test_at: dict, key: tuple, metric: str, is_baseline: bool) -> list[str]:
    """The best- and last-epoch Δ cells of a results-table row: δ (×100) with * / ** for the
    unadjusted one-sided p; empty for the baseline row, "n/a" where no test could be run."""
    if is_baseline:
        return ["", ""]
    cells = []
    for which in WHICH:
        tst = test_at.get((*key, which))
        cells.append("n/a" if tst is None or _nan(tst.get("delta")) else
                     f"{_fmt(tst['delta'], metric, signed=True)}{_stars(tst['p_value'])}")
    return cells


def _test_cells(tb: dict[str, Any] | None, tl: dict[str, Any] | None, metric: str) -> list[str]:
    """Significance-table cells of one pair of tests (best, last epoch): the seeds used, then
    δ [95 % CI], p (starred) and Holm p for each; "n/a — —" where a test could not run."""
    first = tb or tl or {}
    seeds = first.get("seeds", "")
    cells = [f"{first.get('n_seeds', 0)} ({seeds})" if seeds else "0"]
    for tt in (tb, tl):
        if tt is None or _nan(tt.get("delta")):
            cells += ["n/a", "—", "—"]
            continue
        cells += [f"{_fmt(tt['delta'], metric, True)} [{_fmt(tt['ci_low'], metric, True)}, {_fmt(tt['ci_high'], metric, True)}]",
                  fmt_p(tt["p_value"]) + _stars(tt["p_value"]), fmt_p(tt.get("p_holm"))]
    return cells


def _stars(p: float | None) -> str:
    if _nan(p):
        return ""
    return "**" if p < 0.01 else "*" if p < 0.05 else ""


def _n_cell(row: dict[str, Any]) -> str:
    n, e = row.get("n", 0), row.get("expected_n")
    mixed = f" ({row['teachers']} teachers ⚠)" if row.get("teachers", 0) > 1 else ""
    if e is None or n > e:  # more seeds than the expected grid asks for: other suites' cells
        return f"{n}{mixed}"
    return f"{n}/{e}" + (" ⚠" if n < e else "") + mixed


def _markdown(**k: Any) -> str:
    runs: list[Run] = k["runs"]
    tasks, students, methods = k["tasks"], k["students"], k["methods"]
    baseline, n_boot = k["baseline"], k["n_boot"]
    test_description = k.get("test_description", TEST_DESCRIPTION)  # the two-level test's, from build_report
    rows_at = {(r["eval_set"], r["task"], r["student"], r["method"]): r for r in k["rows"]}
    test_at = k["test_at"]
    task_by_name: dict[str, TaskInfo] = k["task_by_name"]
    known_tasks = [(t, task_by_name[t]) for t in tasks if t in task_by_name]  # (name, info) in report order
    out: list[str] = []
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    versions = Counter(str((r.result.get("environment") or {}).get("layerkd", "?")) for r in runs)
    out.append("# Benchmark report\n")
    out.append(f"Generated {now} by layerkd {', '.join(sorted(versions))} from `{k['results_dir']}`: "
               f"{len(runs)} result file(s) used"
               + (f", {len(k['skipped'])} skipped" if k["skipped"] else "")
               + (f", {len(k['failed'])} failed cell(s)" if k["failed"] else "")
               + (f", {len(k['missing'])} expected cell(s) missing" if k["expected"] else "")
               + (f"; only suite(s) {', '.join(k['suites_filter'])}" if k["suites_filter"] else "")
               + ("; only the cells of the suite grid(s) below" if k.get("only_expected") else "") + ".\n")

    tabno = [0]

    def caption(text: str) -> str:
        tabno[0] += 1
        return f"**Table {tabno[0]}.** {text}\n"

    # ---------------------------------------------------------------- conventions
    out.append("## How to read this report\n")
    out.append("- Scores are ×100 (accuracy, F1, Matthews correlation, Pearson, Spearman). **mean ± std** is over "
               "training seeds; std is the *sample* standard deviation (ddof = 1); with a single seed no std is "
               "shown. **n** is the number of seeds" + (" found / expected (⚠: cells missing)" if k["expected"]
                                                        else "") + "; “k teachers ⚠” marks a row whose seeds "
               "were distilled from k different teacher weights (not replicates: keep one teacher per results "
               "folder).")
    out.append(best_note(runs))
    out.append(f"- **GLUE average**: {GLUE_AVERAGE_DESCRIPTION}.")
    out.append(f"- **Significance** ({n_boot} resamples, generator seed {k['seed']}): {test_description}. "
               f"Each method is tested against the baseline **{baseline}** on the same task, student and "
               "evaluation set; Holm-adjusted p-values are given within each task × student × best/last family. "
               "In the results tables, Δ best and Δ last are the observed δ (×100) of the best and of the last epoch "
               "with * p < 0.05 and ** p < 0.01 (one-sided, unadjusted); the significance section gives CIs and Holm "
               "p-values.")
    out.append("")

    # ---------------------------------------------------------------- dev tables
    out.append("## Dev results\n")
    for t, ti in known_tasks:
        mets = list(ti.metrics)
        main = ti.main_metric
        header = ["student", "method", "n"] + [f"{_mname(m)} {w}" for m in mets for w in WHICH] + [
            f"Δ {_mname(main)} {w}" for w in WHICH]
        body = []
        for tr in k["teachers"].get(t, []):
            fp = str(tr.get("teacher_fingerprint") or "")[:8]
            body.append(["(teacher)", f"teacher `{fp}`" if fp else "teacher", ""]
                        + [_fmt(tr.get(f"{w}_{m}_mean"), m) for m in mets for w in WHICH]
                        + ["" if tr["n"] else "metrics not found", ""])
        for s in students:
            for m in methods:
                r = rows_at.get(("dev", t, s, m))
                if r is None:
                    continue
                if not r.get("n"):
                    body.append([s, m, _n_cell(r)] + ["missing"] * (2 * len(mets)) + ["", ""])
                    continue
                body.append([s, m, _n_cell(r)]
                            + [_fmt_ms(r.get(f"{w}_{mm}_mean"), r.get(f"{w}_{mm}_std"), mm) for mm in mets for w in WHICH]
                            + _delta_cells(test_at, ("dev", t, s, m), main, m == baseline))
        out.append(f"### {t} (main metric: {_mname(main)})\n")
        teach = k["teachers"].get(t) or []
        tdesc = f" The teacher is {teach[0].get('teacher_desc') or teach[0].get('teacher_path')}." if teach else ""
        out.append(caption(f"{t} dev set, mean ± std over seeds (×100); best = {selected_where(runs)}, "
                           f"last = final epoch; Δ best / Δ last = paired-bootstrap δ of the best- / last-epoch "
                           f"{_mname(main)} against {baseline} (* p < 0.05, ** p < 0.01, one-sided, unadjusted)."
                           f"{tdesc}"))
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
        for t, ti in known_tasks:
            body = []
            for s in students:
                for m in methods:
                    if m == baseline:
                        continue
                    tb, tl = test_at.get((ev, t, s, m, "best")), test_at.get((ev, t, s, m, "last"))
                    if tb is None and tl is None:
                        continue
                    cells = [s, m, *_test_cells(tb, tl, ti.main_metric), (tb or tl).get("n_examples", "")]
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
                                 f"{baseline}, over the seeds both have; N = evaluation examples; one-sided "
                                 f"p of H0: δ ≤ 0 ({n_boot} resamples)."))
            lines.append(_md_table(header, body, "lll" + "r" * 7 + "l"))
            lines.append("")
        return lines

    out.append(f"## Significance against {baseline}\n")
    out.append(f"Test: {test_description}.\n")
    body = sig_tables("dev")
    out += body if body else [f"No test: no task has both {baseline} and another method with dev predictions and "
                              "labels.\n"]

    # ---------------------------------------------------------------- out of domain
    extra_sets = [e for e in k["eval_sets"] if e != "dev"]
    if extra_sets:
        out.append("## Out-of-domain evaluation\n")
        for ev in extra_sets:
            out.append(f"### {ev}\n")
            for t, ti in known_tasks:
                body = []
                for s in students:
                    for m in methods:
                        r = rows_at.get((ev, t, s, m))
                        if r is None:
                            continue
                        body.append([s, m, _n_cell({"n": r["n"]})]
                                    + [_fmt_ms(r.get(f"{w}_{mm}_mean"), r.get(f"{w}_{mm}_std"), mm)
                                       for mm in ti.metrics for w in WHICH]
                                    + _delta_cells(test_at, (ev, t, s, m), ti.main_metric, m == baseline))
                if not body:
                    continue
                header = ["student", "method", "n"] + [f"{_mname(m)} {w}" for m in ti.metrics for w in WHICH] + [
                    f"Δ {_mname(ti.main_metric)} {w}" for w in WHICH]
                out.append(caption(f"{ev}, evaluated with the {t} models (best-epoch model selected on {t} dev; "
                                   f"last = final epoch), mean ± std over seeds (×100)."))
                out.append(_md_table(header, body))
                out.append("")
            out += sig_tables(ev)

    # ---------------------------------------------------------------- declared pairwise comparisons
    if k.get("comparisons"):
        out.append("## Pairwise comparisons\n")
        out.append(f"Declared with `--compare METHOD:BASELINE`; the same test ({n_boot} resamples), one-sided H0: "
                   "METHOD ≤ BASELINE, over the seeds both have; Holm-adjusted within each evaluation set × "
                   "task × student × best/last family of these comparisons (separately from the tests against "
                   f"{baseline}).\n")
        pairs: dict[tuple, dict[str, dict[str, Any]]] = {}
        for tt in k["comparisons"]:
            pairs.setdefault((tt["eval_set"], tt["task"], tt["student"], tt["method"], tt["baseline"]), {})[tt["which"]] = tt
        body = []
        for (ev, t, s, m, b), by in pairs.items():
            any_t = by.get("best") or by.get("last")
            body.append([ev, t, s, m, b, *_test_cells(by.get("best"), by.get("last"), any_t["metric"]),
                         any_t.get("n_examples", "")])
        header = ["eval set", "task", "student", "method", "vs", "seeds", "δ best [95% CI]", "p", "p Holm",
                  "δ last [95% CI]", "p", "p Holm", "N"]
        out.append(_md_table(header, body, "lllll" + "r" * 8))
        out.append("")

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
