"""The claims table of ``layerkd report``: the suite files' declared comparisons, decided by one rule.

Each declared family (:mod:`layerkd.bench.families`) expands into tests: pair × task × student
× evaluation set. A test compares the two methods' cells of that suite's grid (same task,
student, method, seed and cell key as the suite declares), paired by training seed, on the
**primary score** of each cell, by the two-level paired bootstrap of
:func:`layerkd.bench.stats.paired_bootstrap` (training seeds and test examples resampled, the
same draws for both methods), one-sided as the family declares. Holm's adjustment runs over
every test the family declares; a test that cannot run (cells missing, one seed) counts as p = 1
there, so a family's size is fixed by its declaration, not by what has finished.

**Interim tests.** A test whose two methods have fewer paired seeds than the suite declares is
*pending*: its δ, interval and raw p are shown, but it enters Holm's adjustment as p = 1 and is not
decided (``holds`` = ``pending``). Deciding on the seeds that happen to have finished would be
optional stopping: looking after every seed and stopping at the first p < 0.05 inflates the error
rate. A claim is decided once, on the declared seeds.

**The rule**: a claim *holds* when its Holm-adjusted p is below :data:`HOLDS_ALPHA` (0.05). That
is the only rule: ``claims.md`` (a markdown fragment with no timestamp, for docs/results.md to
include verbatim) and ``claims.csv`` are generated, never edited by hand.

**Primary score.** One score per cell: the test-set (GLUE dev) metrics of the epoch selected on
the validation split carved from the training set (:mod:`layerkd.data.validation`), read from
the result field named by :data:`PRIMARY` — metrics ``result[PRIMARY]``, predictions
``result["dev_predictions"][PRIMARY]``; for an extra evaluation set ``extra_eval[name][PRIMARY]``
and ``extra_eval[name]["predictions"][PRIMARY]``. Where the epoch was chosen is recorded in
``result["selection"]["split"]`` (:data:`SELECTED_OFF_TEST` = ``validation``). Cells run before
the validation split (no ``selection``) or with ``data.validation.source: eval`` have the same
field, chosen on the test set itself (optimistic): they are still tested, and their rows are
marked (``selection`` column, † in claims.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..errors import ConfigError
from ..tasks import get_task
from .report_md import _fmt, _md_table
from .results import Run, _mname, _nan
from .selection import SELECTED_OFF_TEST, on_test
from .significance import TWO_LEVEL_TEST_NAME, paired_inputs
from .stats import fmt_p, holm, paired_bootstrap

#: the result field of each cell's primary score: test metrics and predictions at the selected epoch
PRIMARY = "best"
HOLDS_ALPHA = 0.05

COLUMNS = ["suite", "family", "alternative", "eval_set", "task", "student", "method", "baseline", "metric", "selection",
           "n_seeds", "seeds", "declared_seeds", "n_examples", "method_score", "baseline_score", "delta", "ci_low", "ci_high", "p_value",
           "p_holm", "holds", "family_size", "n_boot", "boot_seed", "test", "note"]

_NO_RESULTS = "no results for "  # the note of a test one or both of whose methods have no cells
_RELATION = {"greater": ">", "less": "<", "two-sided": "≠"}


@dataclass
class DeclaredFamily:
    """A comparison family with the suite grid it is decided on."""

    suite: str
    name: str
    pairs: list[tuple[str, str]]
    alternative: str
    tasks: list[str]  # registered task names (as results name them)
    students: list[str]
    eval_sets: list[str]
    cells: dict[tuple[str, str, str, int], str] = field(default_factory=dict)  # (task, student, method, seed) -> key
    #: cells whose teacher weights are not on this machine (the work area is elsewhere or lost): their key
    #: computed again from a teacher hash, so a result is matched on the declared config and the hash it recorded
    rekey: dict[tuple[str, str, str, int], Callable[[str], str]] = field(default_factory=dict)


def _task_name(name: str) -> str:
    try:
        return get_task(name).name
    except ConfigError:
        return name


def families_of(suite: Any) -> list[DeclaredFamily]:
    """The declared families of a loaded :class:`layerkd.bench.suite.Suite`."""
    cells = {(_task_name(c.task), c.student_label, c.method, c.seed): c.key for c in suite.cells}
    from .suite import cell_key  # noqa: PLC0415  (suite imports the families' checks)

    rekey = {(_task_name(c.task), c.student_label, c.method, c.seed): partial(cell_key, c.config, suite.variables)
             for c in suite.cells if not c.teacher_hash}
    all_tasks = list(dict.fromkeys(c.task for c in suite.cells))
    students = list(dict.fromkeys(c.student_label for c in suite.cells))
    return [DeclaredFamily(suite=suite.name, name=f.name, pairs=[tuple(p) for p in f.pairs], alternative=f.alternative,
                           tasks=[_task_name(t) for t in (f.tasks or all_tasks)], students=students,
                           eval_sets=list(f.eval_sets), cells=cells, rekey=rekey)
            for f in suite.comparisons]


def _selection(runs: list[Run]) -> str:
    n = on_test(runs)
    return SELECTED_OFF_TEST if not n else f"test set ({n} of {len(runs)} cells)"


def _test(fam: DeclaredFamily, runs: dict[tuple, Run], ev: str, task: str, student: str, a: str, b: str,
          n_boot: int, seed: int) -> dict[str, Any]:
    ra = [r for (t, s, m, _), r in runs.items() if (t, s, m) == (task, student, a)]
    rb = [r for (t, s, m, _), r in runs.items() if (t, s, m) == (task, student, b)]
    metric = (ra or rb)[0].task.main_metric if ra or rb else ""
    declared = {x for (t, s, m, x) in fam.cells if (t, s, m) == (task, student, a)} & {
        x for (t, s, m, x) in fam.cells if (t, s, m) == (task, student, b)}
    rec: dict[str, Any] = {"declared_seeds": len(declared), "suite": fam.suite, "family": fam.name, "alternative": fam.alternative, "eval_set": ev,
                           "task": task, "student": student, "method": a, "baseline": b, "metric": metric,
                           "selection": _selection(ra + rb), "n_boot": n_boot, "boot_seed": seed, "test": TWO_LEVEL_TEST_NAME,
                           "n_seeds": 0, "seeds": "", "n_examples": 0}
    nan = float("nan")
    rec.update(method_score=nan, baseline_score=nan, delta=nan, ci_low=nan, ci_high=nan, p_value=nan)
    if not ra or not rb:
        rec["note"] = _NO_RESULTS + ", ".join(m for m, r in ((a, ra), (b, rb)) if not r)
        return rec
    inputs, note = paired_inputs(ra, rb, PRIMARY, ev)
    rec["note"] = note
    if inputs is None:
        return rec
    seeds, pa, pb, gold = inputs
    res = paired_bootstrap(metric, pa, pb, gold, n_boot=n_boot, seed=seed, alternative=fam.alternative,
                           resample_seeds=True)
    rec.update(n_seeds=res.n_seeds, seeds=" ".join(map(str, seeds)), n_examples=res.n_examples,
               method_score=res.method_score, baseline_score=res.baseline_score, delta=res.delta,
               ci_low=res.ci_low, ci_high=res.ci_high, p_value=res.p_value)
    if res.n_seeds < 2:
        rec["note"] = "; ".join(x for x in (note, "one seed: no p (seed variance not estimable)") if x)
    elif pending(rec):
        rec["note"] = "; ".join(x for x in (note, f"interim: {res.n_seeds} of {len(declared)} declared seeds, decided "
                                                  "when all have run") if x)
    return rec


def pending(rec: dict[str, Any]) -> bool:
    """A test that ran on fewer paired seeds than the suite declares: shown, not decided."""
    return 0 < rec["n_seeds"] < rec.get("declared_seeds", 0)


def declared_runs(fam: DeclaredFamily, runs: list[Run]) -> tuple[dict[tuple, Run], dict[str, set[str]]]:
    """The family's cells among ``runs``, and, per task, the recorded teacher hashes they were matched on.

    A result belongs to the family when its key is the one the suite declares. Where the teacher's
    weights are not on this machine that key cannot be computed; the result is then matched on the
    declared config with the teacher hash it recorded, and only if every such cell of the task recorded
    the same hash (two teachers are never paired silently: the task's tests have no results then).
    """
    mine = {r.identity: r for r in runs if r.identity in fam.cells and fam.cells[r.identity] in ("", r.key)}
    recorded: dict[str, dict[str, list[Run]]] = {}
    for r in runs:
        redo = fam.rekey.get(r.identity)
        if r.identity not in mine and redo is not None and redo(r.teacher_hash) == r.key:
            recorded.setdefault(r.identity[0], {}).setdefault(r.teacher_hash, []).append(r)
    for by_hash in recorded.values():
        if len(by_hash) == 1:
            mine.update({r.identity: r for rs in by_hash.values() for r in rs})
    return mine, {task: set(by_hash) for task, by_hash in recorded.items()}


def claim_tests(families: list[DeclaredFamily], runs: list[Run], n_boot: int, seed: int) -> list[dict[str, Any]]:
    """Every declared test, Holm-adjusted within its family, with ``holds`` decided by the rule."""
    out: list[dict[str, Any]] = []
    for fam in families:
        mine, recorded = declared_runs(fam, runs)
        recs = [_test(fam, mine, ev, t, s, a, b, n_boot, seed)
                for ev in fam.eval_sets for t in fam.tasks for s in fam.students for a, b in fam.pairs]
        # the declared family size counts: a test that could not run, or has not all its seeds, enters as p = 1
        adjusted = holm([1.0 if _nan(r["p_value"]) or pending(r) else r["p_value"] for r in recs])
        for r, p in zip(recs, adjusted, strict=True):
            r["family_size"] = len(recs)
            r["teacher_recorded"] = sorted(recorded.get(r["task"], ()))
            r["p_holm"] = float("nan") if _nan(r["p_value"]) or pending(r) else p
            r["holds"] = ("pending" if pending(r) else "n/a" if _nan(r["p_holm"])
                          else "yes" if r["p_holm"] < HOLDS_ALPHA else "no")
        out += recs
    return out


def claims_markdown(tests: list[dict[str, Any]], n_boot: int, seed: int) -> str:
    """claims.md: the rule, then one table row per declared test (no timestamp: stable when unchanged)."""
    lines = ["<!-- generated by `layerkd report` from the suite files' `comparisons:`; do not edit by hand -->", "",
             f"A claim **holds** when its Holm-adjusted p < {HOLDS_ALPHA:g} (Holm within each declared family; a "
             "test that could not run counts as p = 1). A test on fewer seeds than the suite declares is "
             "**pending**: shown, counted as p = 1, decided only when every declared seed has run. Test: two-level paired bootstrap over training seeds and "
             f"test examples ({n_boot} resamples, generator seed {seed}), one-sided as declared, on the primary "
             "score (the test metric at the epoch selected on the validation split); δ = mean over seeds of method − baseline (×100 "
             "for scores in [0, 1]), 95 % percentile interval.", ""]
    on_test = any(t["selection"] != SELECTED_OFF_TEST for t in tests if t["n_seeds"])
    body = []
    for t in tests:
        m = t["metric"]
        mark = " †" if t["selection"] != SELECTED_OFF_TEST and t["n_seeds"] else ""
        ci = "" if _nan(t["ci_low"]) else f" [{_fmt(t['ci_low'], m, True)}, {_fmt(t['ci_high'], m, True)}]"
        body.append([f"{t['suite']}/{t['family']}", f"{t['method']} {_RELATION[t['alternative']]} {t['baseline']}",
                     t["task"] + ("" if t["eval_set"] == "dev" else f" → {t['eval_set']}"), t["student"],
                     _mname(m) + mark if m else "—", t["seeds"] or "—",
                     f"{_fmt(t['method_score'], m)} vs {_fmt(t['baseline_score'], m)}",
                     f"{_fmt(t['delta'], m, True)}{ci}", fmt_p(t["p_value"]), fmt_p(t["p_holm"]),
                     f"pending ({t['n_seeds']}/{t['declared_seeds']})" if t["holds"] == "pending" else t["holds"]])
    lines.append(_md_table(["family", "claim", "task", "student", "metric", "seeds", "method vs baseline",
                            "δ [95 % CI]", "p", "p Holm", "holds"], body, "lllll" + "r" * 5 + "c"))
    if on_test:
        lines += ["", "† some or all cells chose their epoch on the test set itself (run before the validation "
                  "split, or with `data.validation.source: eval`): optimistic."]
    notes = _missing_notes(tests) + _recorded_notes(tests) + [
        f"{t['suite']}/{t['family']} {t['method']}:{t['baseline']} {t['task']} {t['student']} {t['eval_set']}: "
        f"{t['note']}" for t in tests if t.get("note") and not t["note"].startswith(_NO_RESULTS)]
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def _missing_notes(tests: list[dict[str, Any]]) -> list[str]:
    """One note per family, task, student and evaluation set whose tests lack a method's cells.

    claims.csv keeps the per-test note; the markdown names each group once, with the methods
    that have no cells, instead of one line per test that could not run.
    """
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    for t in tests:
        if t.get("note", "").startswith(_NO_RESULTS):
            key = (f"{t['suite']}/{t['family']}", t["task"], t["student"], t["eval_set"])
            groups.setdefault(key, []).append(t["note"][len(_NO_RESULTS):])
    return [f"{fam} {task} {student} {ev}: {len(g)} test(s) n/a, no results for "
            f"{', '.join(dict.fromkeys(m for n in g for m in n.split(', ')))}"
            for (fam, task, student, ev), g in groups.items()]


def _recorded_notes(tests: list[dict[str, Any]]) -> list[str]:
    """One note per task whose cells were matched on the teacher hash they recorded (teacher not here)."""
    seen: dict[str, list[str]] = {}
    for t in tests:
        if t.get("teacher_recorded"):
            seen.setdefault(t["task"], t["teacher_recorded"])
    return [f"{task}: the teacher's weights are not on this machine; its cells were matched on the config the suite "
            "declares and on the teacher hash they recorded" + (f" ({hashes[0][:12]}, the same in every cell)"
                                                              if len(hashes) == 1 else
                                                              f" — {len(hashes)} different hashes: not paired")
            for task, hashes in seen.items()]


def claims_summary(tests: list[dict[str, Any]]) -> str:
    """One line for report.md."""
    held = sum(t["holds"] == "yes" for t in tests)
    ran = sum(not math.isnan(t["p_value"]) for t in tests)
    waiting = sum(t["holds"] == "pending" for t in tests)
    return (f"## Declared claims\n\n{len(tests)} declared test(s), {ran} run ({waiting} pending their declared seeds), "
            f"{held} hold (Holm-adjusted p < "
            f"{HOLDS_ALPHA:g}, primary score): see `claims.md` and `claims.csv`.\n")
