"""Which paired bootstrap tests a report runs, and on what: every method against the baseline,
and the pairwise comparisons a user declares (``--compare A:B``, e.g. the papers' claims “ALP
beats PKD”).

Both kinds pair the two rows' runs by training seed, on the same evaluation set, task and student,
keep the seeds whose labels and predictions line up, and call
:func:`layerkd.bench.stats.paired_bootstrap` once for the best and once for the last epoch —
with ``resample_seeds=True`` the two-level test (training seeds and examples resampled; what
``layerkd report`` runs by default), else the one-level test over examples that the reports
before it used (``layerkd report --bootstrap examples``).
Holm-adjusted p-values are computed within a family: evaluation set × task × student ×
best/last, over the baseline tests or over the declared comparisons (the two families are
adjusted separately)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from .results import WHICH, Group, Run
from .stats import holm, paired_bootstrap

TEST_NAME = "paired bootstrap, one-sided H0: delta <= 0, shift method, add-one"
TWO_LEVEL_TEST_NAME = "two-level paired bootstrap (seeds, examples), one-sided H0: delta <= 0, shift method, add-one"


def test_label(resample_seeds: bool) -> str:
    return TWO_LEVEL_TEST_NAME if resample_seeds else TEST_NAME

# significance.csv / comparisons.csv columns: "baseline" is the row tested against (B of A:B)
COLUMNS = ["eval_set", "task", "student", "method", "baseline", "which", "metric", "n_seeds", "seeds", "n_examples",
           "method_score", "baseline_score", "delta", "ci_low", "ci_high", "p_value", "p_holm", "n_boot", "boot_seed",
           "test", "note"]

GroupKey = tuple[str, str, str, str]  # evaluation set, task, student, method


def parse_comparison(text: str) -> tuple[str, str]:
    """``"A:B"`` → ``(A, B)``: test method A against method B (one-sided, H0: A ≤ B)."""
    a, sep, b = (x.strip() for x in text.partition(":"))
    if not sep or not a or not b or ":" in b:
        raise ConfigError(f"--compare {text!r}: expected METHOD:BASELINE, e.g. alp:pkd")
    if a == b:
        raise ConfigError(f"--compare {text!r}: a method compared with itself")
    return a, b


def paired_inputs(method_runs: list[Run], base_runs: list[Run], which: str, eval_set: str):
    """Seeds both have, with predictions and identical labels: ((seeds, A [S,N], B [S,N], gold [N]), note)
    or (None, reason)."""
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


def _pair_records(g: Group, base: Group, n_boot: int, seed: int, resample_seeds: bool = False) -> list[dict[str, Any]]:
    """The best- and last-epoch test records of ``g`` against ``base``."""
    out = []
    for which in WHICH:
        rec: dict[str, Any] = {"eval_set": g.eval_set, "task": g.task.name, "student": g.student, "method": g.method,
                               "baseline": base.method, "which": which, "metric": g.task.main_metric,
                               "n_boot": n_boot, "boot_seed": seed, "test": test_label(resample_seeds)}
        inputs, note = paired_inputs(g.runs, base.runs, which, g.eval_set)
        rec["note"] = note
        if inputs is None:
            rec.update(n_seeds=0, seeds="", n_examples=0, delta=float("nan"), ci_low=float("nan"), ci_high=float("nan"),
                       p_value=float("nan"), method_score=float("nan"), baseline_score=float("nan"))
        else:
            seeds, pa, pb, gold = inputs
            res = paired_bootstrap(g.task.main_metric, pa, pb, gold, n_boot=n_boot, seed=seed,
                                   resample_seeds=resample_seeds)
            if resample_seeds and res.n_seeds < 2:
                rec["note"] = "; ".join(x for x in (note, "one seed: no p (seed variance not estimable)") if x)
            rec.update(n_seeds=res.n_seeds, seeds=" ".join(map(str, seeds)), n_examples=res.n_examples,
                       delta=res.delta, ci_low=res.ci_low, ci_high=res.ci_high, p_value=res.p_value,
                       method_score=res.method_score, baseline_score=res.baseline_score)
        out.append(rec)
    return out


def _holm_within_families(tests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    fams: dict[tuple, list[int]] = {}
    for i, t in enumerate(tests):
        fams.setdefault((t["eval_set"], t["task"], t["student"], t["which"]), []).append(i)
    for idx in fams.values():
        for i, p in zip(idx, holm([tests[i]["p_value"] for i in idx]), strict=True):
            tests[i]["p_holm"] = p
    return tests


def baseline_tests(groups: dict[GroupKey, Group], baseline: str, n_boot: int, seed: int,
                   order: Callable[[GroupKey], Any], resample_seeds: bool = False) -> list[dict[str, Any]]:
    """Every method against ``baseline`` wherever both have a row."""
    tests: list[dict[str, Any]] = []
    for key in sorted(groups, key=order):
        g = groups[key]
        base = groups.get((g.eval_set, g.task.name, g.student, baseline))
        if g.method != baseline and base is not None:
            tests += _pair_records(g, base, n_boot, seed, resample_seeds)
    return _holm_within_families(tests)


def comparison_tests(groups: dict[GroupKey, Group], comparisons: Sequence[tuple[str, str]], n_boot: int, seed: int,
                     order: Callable[[GroupKey], Any], declared: Sequence[str] = (),
                     resample_seeds: bool = False) -> list[dict[str, Any]]:
    """Each declared ``(A, B)`` wherever both rows exist (every evaluation set, task and student).

    A method that neither has a result nor is ``declared`` (a method of the expected suite cells)
    is a ConfigError, most likely a typo; a pair that never meets on the same task and student
    gives no test and no error."""
    known = {k[3] for k in groups} | set(declared)
    for a, b in comparisons:
        for m in (a, b):
            if m not in known:
                raise ConfigError(f"--compare {a}:{b}: no results for method {m!r} "
                                  f"(methods found: {', '.join(sorted(known))})")
    tests: list[dict[str, Any]] = []
    for key in sorted(groups, key=order):
        ev, t, s, m = key
        for a, b in comparisons:
            if m == a and (ev, t, s, b) in groups:
                tests += _pair_records(groups[key], groups[(ev, t, s, b)], n_boot, seed, resample_seeds)
    return _holm_within_families(tests)
