"""`layerkd report`: aggregation over seeds, GLUE average, paired bootstrap, report files, bad inputs."""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from layerkd.bench.report import build_report, load_results
from layerkd.bench.stats import (
    TWO_LEVEL_DESCRIPTION,
    bootstrap_p_value,
    holm,
    mean_std,
    paired_bootstrap,
    resampled_scores,
)
from layerkd.errors import ConfigError
from layerkd.metrics import compute_metrics
from scripts import load_script

synthetic = load_script("tests/fixtures/bench/synthetic.py", "bench_synthetic")

PNG = b"\x89PNG\r\n\x1a\n"


def _write(d: Path, rec: dict) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{rec['key']}.json").write_text(json.dumps(rec), encoding="utf-8")


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------------------------------------- statistics
def test_mean_std_is_the_sample_std():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0, 3)
    m, s, n = mean_std([0.5])
    assert m == 0.5 and math.isnan(s) and n == 1
    assert mean_std([1.0, float("nan"), 3.0])[2] == 2


@pytest.mark.parametrize("metric", ["accuracy", "f1", "matthews_correlation", "pearson", "spearmanr", "mse"])
def test_resampled_scores_equal_the_metric_on_the_resampled_examples(metric):
    rng = np.random.default_rng(3)
    n = 40
    if metric in ("pearson", "spearmanr", "mse"):
        gold = np.round(rng.uniform(0, 5, n), 0)  # many ties, for Spearman
        preds = np.round(gold + rng.normal(0, 1, (3, n)), 1)
    else:
        k = 3 if metric == "matthews_correlation" else 2
        gold, preds = rng.integers(0, k, n), rng.integers(0, k, (3, n))
    for _ in range(10):
        idx = rng.integers(0, n, n)
        w = np.bincount(idx, minlength=n)[None, :]
        got = resampled_scores(metric, preds, gold, w)[0]
        want = [compute_metrics([metric], p[idx], gold[idx])[metric] for p in preds]
        np.testing.assert_allclose(got, want, atol=1e-10)


def test_bootstrap_p_value_and_holm_by_hand():
    # δ = 0.2: resamples with δ* − δ ≥ δ, i.e. δ* ≥ 0.4: one (0.5) → p = (1 + 1) / (4 + 1)
    assert bootstrap_p_value(np.array([0.0, 0.1, 0.3, 0.5]), 0.2) == pytest.approx(0.4)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(holm([float("nan"), 0.2])[0]) and holm([float("nan"), 0.2])[1] == pytest.approx(0.2)


def _holm_by_closed_testing(p):
    """Holm as closed testing with Bonferroni local tests: p̃_i = max over S ∋ i of |S|·min_{j∈S} p_j."""
    from itertools import combinations
    m = len(p)
    return [max(min(1.0, len(S) * min(p[j] for j in S))
                for k in range(1, m + 1) for S in combinations(range(m), k) if i in S) for i in range(m)]


def test_a_claim_that_holds_while_others_are_pending_still_holds_once_they_are_decided():
    # Pending and n/a tests enter Holm as p = 1. Holm is monotone: when they are decided their p can
    # only fall, and no adjusted p of another test may rise, so a "holds" is final (docs/bench.md).
    rng = np.random.default_rng(7)
    for _ in range(200):
        m = int(rng.integers(2, 7))
        p = rng.uniform(0, 0.1, m) ** rng.uniform(0.5, 3)
        pending = rng.random(m) < 0.5
        before = holm(np.where(pending, 1.0, p))
        after = holm(p)
        assert before == pytest.approx(_holm_by_closed_testing(np.where(pending, 1.0, p).tolist()))
        assert after == pytest.approx(_holm_by_closed_testing(p.tolist()))
        for i in np.flatnonzero(~pending):
            assert after[i] <= before[i] + 1e-12


def test_paired_bootstrap_identical_systems():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 100)
    preds = rng.integers(0, 2, (3, 100))
    r = paired_bootstrap("f1", preds, preds.copy(), gold, n_boot=1000, seed=1)
    assert r.delta == 0.0 and r.ci_low == 0.0 and r.ci_high == 0.0
    assert r.p_value == 1.0


def test_paired_bootstrap_strictly_better_system():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 200)
    base = np.where(rng.random((3, 200)) < 0.6, gold, 1 - gold)
    better = np.tile(gold, (3, 1))  # right on every example
    r = paired_bootstrap("accuracy", better, base, gold, n_boot=1000, seed=0)
    assert r.delta > 0.3 and r.ci_low > 0
    assert r.p_value < 0.01
    worse = paired_bootstrap("accuracy", base, better, gold, n_boot=1000, seed=0)
    assert worse.delta < 0 and worse.p_value > 0.5


def test_paired_bootstrap_known_small_case_and_determinism():
    gold = np.array([1, 1, 0, 0])
    # seed 1: baseline 2/4 right, method 3/4 right; seed 2: baseline 1/4, method 4/4
    base = np.array([[1, 0, 0, 1], [0, 0, 0, 1]])
    meth = np.array([[1, 1, 0, 1], [1, 1, 0, 0]])
    r = paired_bootstrap("accuracy", meth, base, gold, n_boot=500, seed=7)
    assert r.delta == pytest.approx(((0.75 - 0.5) + (1.0 - 0.25)) / 2)  # 0.5
    assert r.method_score == pytest.approx(0.875) and r.baseline_score == pytest.approx(0.375)
    assert r.n_seeds == 2 and r.n_examples == 4
    again = paired_bootstrap("accuracy", meth, base, gold, n_boot=500, seed=7)
    assert (again.p_value, again.ci_low, again.ci_high) == (r.p_value, r.ci_low, r.ci_high)
    other = paired_bootstrap("accuracy", meth, base, gold, n_boot=500, seed=8, keep_deltas=True)
    assert other.deltas is not None and len(other.deltas) == 500
    # lower-is-better metric: δ is still "improvement of the method"
    g = np.array([0.0, 1.0, 2.0, 3.0])
    m = paired_bootstrap("mse", g[None, :] + 0.1, g[None, :] + 1.0, g, n_boot=200, seed=0)
    assert m.delta == pytest.approx(1.0 - 0.01) and m.p_value < 0.01


def test_aggregation_over_seeds_known_values(tmp_path):
    res = tmp_path / "res"
    best_f1, last_f1 = [0.80, 0.82, 0.84], [0.70, 0.72, 0.77]
    for seed, bf, lf in zip((1, 2, 3), best_f1, last_f1, strict=True):
        _write(res, synthetic.record(task="mrpc", student="L2", method="ce", seed=seed,
                                     best={"f1": bf, "accuracy": 0.7}, last={"f1": lf, "accuracy": 0.6 + seed / 100}))
    out = build_report(res, tmp_path / "out", n_boot=100, figures=False)
    (row,) = [r for r in out["rows"] if r["role"] == "student"]
    assert row["n"] == 3 and row["seeds"] == "1 2 3"
    assert row["best_f1_mean"] == pytest.approx(0.82) and row["best_f1_std"] == pytest.approx(0.02)
    assert row["last_f1_mean"] == pytest.approx(0.73)
    assert row["last_f1_std"] == pytest.approx(math.sqrt((0.03**2 + 0.01**2 + 0.04**2) / 2))  # ddof = 1
    assert row["last_accuracy_mean"] == pytest.approx(0.62) and row["last_accuracy_std"] == pytest.approx(0.01)
    assert row["best_accuracy_std"] == pytest.approx(0.0)
    # the per-task GLUE score of MRPC is the mean of F1 and accuracy
    assert row["best_glue_mean"] == pytest.approx((0.82 + 0.7) / 2)
    csv_rows = _csv(tmp_path / "out" / "summary.csv")
    student = [r for r in csv_rows if r["role"] == "student"][0]
    assert float(student["best_f1_mean"]) == pytest.approx(0.82) and student["best_f1_n"] == "3"
    assert float(student["last_f1_std"]) == pytest.approx(row["last_f1_std"])
    teacher = [r for r in csv_rows if r["role"] == "teacher"][0]
    assert teacher["task"] == "MRPC" and float(teacher["best_f1_mean"]) == pytest.approx(0.9)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "82.00 ± 2.00" in md and "73.00 ± 3.61" in md and "ddof = 1" in md


def test_seeds_from_different_teachers_are_flagged(tmp_path):
    res = tmp_path / "res"
    for seed in (1, 2):
        rec = synthetic.record(task="mrpc", student="L2", method="kd", seed=seed)
        if seed == 2:  # the teacher was retrained between the two seeds
            rec["teacher"]["fingerprint"] = "f" * 64
        _write(res, rec)
    _write(res, synthetic.record(task="mrpc", student="L2", method="ce", seed=1))
    out = build_report(res, tmp_path / "out", n_boot=100, figures=False)
    rows = {r["method"]: r for r in out["rows"] if r["role"] == "student"}
    assert rows["kd"]["teachers"] == 2 and rows["ce"]["teachers"] == 1
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| L2 | kd | 2 (2 teachers ⚠) |" in md and "| L2 | ce | 1 |" in md


def test_glue_average_known_example(tmp_path):
    res = tmp_path / "res"
    # ce: MRPC (F1 .8, acc .7) → .75; STS-B (Pearson .8, Spearman .9) → .85; average .80
    _write(res, synthetic.record(task="mrpc", student="L2", method="ce", seed=1, best={"f1": 0.8, "accuracy": 0.7},
                                 finished_at="2026-01-01T00:00:00+00:00"))  # MRPC first: the order of the columns
    _write(res, synthetic.record(task="sts-b", student="L2", method="ce", seed=1,
                                 best={"pearson": 0.8, "spearmanr": 0.9}, last={"pearson": 0.6, "spearmanr": 0.7}))
    # kd has MRPC only: no average
    _write(res, synthetic.record(task="mrpc", student="L2", method="kd", seed=1, best={"f1": 0.9, "accuracy": 0.8}))
    out = build_report(res, tmp_path / "out", n_boot=100, figures=False)
    glue = {g["method"]: g for g in out["glue"]}
    assert glue["ce"]["best_average"] == pytest.approx(0.80)
    assert glue["ce"]["last_average"] == pytest.approx((0.75 + 0.65) / 2)
    assert glue["ce"]["best_MRPC"] == pytest.approx(0.75) and glue["ce"]["best_STS-B"] == pytest.approx(0.85)
    assert math.isnan(glue["kd"]["best_average"]) and glue["kd"]["best_tasks_present"] == 1
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| L2 | ce | 75.00 | 85.00 | 80.00 | 70.00 |" in md
    assert "— (partial 1/2)" in md
    assert "mean of F1 and accuracy for MRPC and QQP" in md


# ---------------------------------------------------------------------------------------------- the full report
@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    synthetic.write_results(root / "res")
    expected = [{"task": t, "student": "L2", "method": "ce", "seed": s} for t in ("mrpc", "sts-b") for s in (1, 2, 3, 4)]
    summary = build_report(root / "res", root / "out", baseline="ce", n_boot=1000, seed=0, expected=expected)
    return root, summary


def test_report_files_and_figures(full_report):
    root, summary = full_report
    out = root / "out"
    for name in ("report.md", "summary.csv", "significance.csv", "glue_average.csv"):
        assert (out / name).stat().st_size > 200, name
    figs = sorted((out / "figures").glob("*.png"))
    kinds = {p.name.split("_")[0] for p in figs}
    assert kinds == {"attention", "teacher", "rail", "curves", "size"}
    assert len(figs) == len(summary["figures"]) == 13
    for p in figs:
        data = p.read_bytes()
        assert data[:8] == PNG and len(data) > 10_000, p.name
    assert not list((out / "figures").glob(".*.tmp")) and not list(out.glob(".*.tmp"))
    md = (out / "report.md").read_text()
    assert "(teacher)" in md and "| (teacher) | teacher `" in md
    assert TWO_LEVEL_DESCRIPTION in md  # the default test: seeds and examples resampled
    for f in figs:
        assert f"(figures/{f.name})" in md
    assert "## Out-of-domain evaluation" in md and "### paws-wiki" in md
    assert "| ild | 36 |" in md and "| smoke | 12 |" in md
    assert "2.13.0+cpu" in md and "Linux-test-x86_64" in md and "layerkd distill --config <key>.yaml" in md


def test_report_tables_and_tests(full_report):
    root, summary = full_report
    out = root / "out"
    rows = _csv(out / "summary.csv")
    dev = [r for r in rows if r["eval_set"] == "dev" and r["role"] == "student"]
    assert len(dev) == 2 * 5 + 2  # L2 × 5 methods × 2 tasks + L1 × 2 methods on MRPC
    assert {r["eval_set"] for r in rows} == {"dev", "paws-wiki"}
    assert sum(r["role"] == "teacher" for r in rows) == 2
    # the baseline comes first, then methods in first-seen order
    assert [r["method"] for r in dev if r["task"] == "MRPC" and r["student"] == "L2"] == [
        "ce", "kd", "alp", "rail", "universal"]
    sig = _csv(out / "significance.csv")
    # (dev: 4 L2 methods × 2 tasks + 1 L1 method; paws-wiki: 5) × best/last
    assert len(sig) == (4 * 2 + 1 + 5) * 2 == len(summary["tests"])
    assert all(r["n_seeds"] == "3" and r["baseline"] == "ce" for r in sig)
    uni = [r for r in sig if r["eval_set"] == "dev" and r["task"] == "STS-B" and r["method"] == "universal"
           and r["which"] == "best"][0]
    assert float(uni["delta"]) > 0 and float(uni["p_value"]) < 0.05 and float(uni["ci_low"]) > 0
    assert float(uni["p_holm"]) >= float(uni["p_value"])
    # the observed δ is the mean over seeds of the per-seed metric differences (here: of the recorded metrics)
    by = {(r["task"], r["student"], r["method"]): r for r in rows if r["eval_set"] == "dev"}
    want = float(by[("STS-B", "L2", "universal")]["best_pearson_mean"]) - float(by[("STS-B", "L2", "ce")]["best_pearson_mean"])
    assert float(uni["delta"]) == pytest.approx(want)
    # missing cells: seed 4 of the expected grid
    assert len(summary["missing"]) == 2 and {m["seed"] for m in summary["missing"]} == {4}
    md = (out / "report.md").read_text()
    assert "## Missing cells" in md and "| MRPC | L2 | ce | 4 |" in md and "3/4 ⚠" in md
    # failed cells and skipped files are listed
    assert "deadbeefdeadbeef" in md and "`foreign.json`" in md and "`broken.json`" in md
    # the results tables give the best- and the last-epoch δ of the same test, with its stars
    assert "| Δ Pearson best | Δ Pearson last |" in md
    uni_last = [r for r in sig if r["eval_set"] == "dev" and r["task"] == "STS-B" and r["method"] == "universal"
                and r["which"] == "last"][0]
    cells = []
    for r in (uni, uni_last):
        p = float(r["p_value"])
        cells.append(f"{100 * float(r['delta']):+.2f}" + ("**" if p < 0.01 else "*" if p < 0.05 else ""))
    row = [line for line in md.splitlines() if line.startswith("| L2 | universal |")][1]  # MRPC first, then STS-B
    assert row.endswith(f"| {cells[0]} | {cells[1]} |"), row


def test_report_is_deterministic(full_report, tmp_path):
    root, summary = full_report
    again = build_report(root / "res", tmp_path / "out", n_boot=1000, seed=0, figures=False,
                         expected=[{"task": t, "student": "L2", "method": "ce", "seed": s}
                                   for t in ("mrpc", "sts-b") for s in (1, 2, 3, 4)])
    assert [(t["p_value"], t["ci_low"]) for t in again["tests"]] == [(t["p_value"], t["ci_low"]) for t in summary["tests"]]
    assert (tmp_path / "out" / "significance.csv").read_text() == (root / "out" / "significance.csv").read_text()


# ---------------------------------------------------------------------------------------------- bad inputs
def test_malformed_and_foreign_files_are_skipped_with_a_warning(tmp_path, caplog):
    res = tmp_path / "res"
    _write(res, synthetic.record(task="mrpc", student="L2", method="ce", seed=1))
    (res / "broken.json").write_text("{not json", encoding="utf-8")
    (res / "foreign.json").write_text(json.dumps({"schema": "other/1"}), encoding="utf-8")
    (res / "list.json").write_text("[1, 2]", encoding="utf-8")
    bad = synthetic.record(task="mrpc", student="L2", method="kd", seed=1)
    del bad["result"]["best"]
    (res / "nobest.json").write_text(json.dumps(bad), encoding="utf-8")
    (res / "sub").mkdir()
    (res / "sub" / "x.json").write_text("{", encoding="utf-8")  # sub-folders are not read
    with caplog.at_level(logging.WARNING, logger="layerkd"):
        out = build_report(res, tmp_path / "out", n_boot=100, figures=False)
    skipped = {s["file"] for s in out["skipped"]}
    assert skipped == {"broken.json", "foreign.json", "list.json", "nobest.json"}
    for name in skipped:
        assert any(name in rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING)
    assert out["n_results"] == 1


def test_duplicate_cells_keep_the_newest(tmp_path, caplog):
    res = tmp_path / "res"
    _write(res, synthetic.record(task="mrpc", student="L2", method="ce", seed=1, key="a" * 16,
                                 best={"f1": 0.1, "accuracy": 0.1}, finished_at="2026-01-01T00:00:00+00:00"))
    _write(res, synthetic.record(task="mrpc", student="L2", method="ce", seed=1, key="b" * 16,
                                 best={"f1": 0.6, "accuracy": 0.5}, finished_at="2026-02-01T00:00:00+00:00"))
    with caplog.at_level(logging.WARNING, logger="layerkd"):
        runs, _, _ = load_results(res)
    assert len(runs) == 1 and runs[0].key == "b" * 16 and runs[0].superseded == ["a" * 16 + ".json"]
    assert any("supersedes" in r.getMessage() for r in caplog.records)


def test_empty_or_foreign_only_directory_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError) as e:
        build_report(tmp_path / "empty", tmp_path / "out", figures=False)
    msg = str(e.value)
    assert "no layerkd.bench.result/1 result files" in msg and "\n" not in msg
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError, match="skipped 1"):
        build_report(tmp_path / "foreign", tmp_path / "out", figures=False)
    with pytest.raises(ConfigError, match="not found"):
        build_report(tmp_path / "nope", tmp_path / "out", figures=False)
    assert not (tmp_path / "out" / "report.md").exists()


def test_figures_without_matplotlib_is_a_config_error(tmp_path, monkeypatch):
    res = tmp_path / "res"
    _write(res, synthetic.record(task="mrpc", student="L2", method="ce", seed=1))
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    with pytest.raises(ConfigError, match=r"figures need matplotlib: pip install 'layerkd\[plots\]'"):
        build_report(res, tmp_path / "out", figures=True)
    out = build_report(res, tmp_path / "out", n_boot=50, figures=False)  # still fine without figures
    assert out["figures"] == [] and "not drawn" in (tmp_path / "out" / "report.md").read_text()


# ---------------------------------------------------------------------------------------------- declared comparisons
def test_comparisons_match_the_baseline_test_and_the_means(full_report, tmp_path):
    root, _ = full_report
    out = build_report(root / "res", tmp_path / "out", n_boot=1000, seed=0, figures=False,
                       comparisons=[("kd", "ce"), ("universal", "alp")])
    comp = out["comparisons"]
    # A:B is tested wherever both rows exist: dev (MRPC and STS-B for L2; MRPC for L1, which has no alp or
    # universal) and paws-wiki (MRPC: L2 and L1), best and last
    kd_ce = [c for c in comp if c["method"] == "kd"]
    uni_alp = [c for c in comp if c["method"] == "universal"]
    assert len(kd_ce) == (3 + 2) * 2 and len(uni_alp) == (2 + 1) * 2
    # kd:ce is the very test the baseline section runs (same resamples): same δ, CI and p
    base = {(t["eval_set"], t["task"], t["student"], t["which"]): t for t in out["tests"] if t["method"] == "kd"}
    for c in kd_ce:
        b = base[(c["eval_set"], c["task"], c["student"], c["which"])]
        assert (c["delta"], c["ci_low"], c["ci_high"], c["p_value"]) == (b["delta"], b["ci_low"], b["ci_high"], b["p_value"])
    # universal:alp: δ is the difference of the two rows' means (same seeds), tested against alp
    rows = {(r["eval_set"], r["task"], r["student"], r["method"]): r for r in out["rows"] if r["role"] == "student"}
    c = [c for c in uni_alp if (c["eval_set"], c["task"], c["which"]) == ("dev", "STS-B", "last")][0]
    want = rows[("dev", "STS-B", "L2", "universal")]["last_pearson_mean"] - rows[("dev", "STS-B", "L2", "alp")]["last_pearson_mean"]
    assert c["baseline"] == "alp" and c["delta"] == pytest.approx(want) and c["n_seeds"] == 3
    # Holm within the family (dev × MRPC × L2 × best) of the two comparisons
    fam = [x for x in comp if (x["eval_set"], x["task"], x["student"], x["which"]) == ("dev", "MRPC", "L2", "best")]
    assert len(fam) == 2
    assert sorted(x["p_holm"] for x in fam) == pytest.approx(holm(sorted(x["p_value"] for x in fam)))
    saved = _csv(tmp_path / "out" / "comparisons.csv")
    assert len(saved) == len(comp) and {r["baseline"] for r in saved} == {"ce", "alp"}
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Pairwise comparisons" in md and "| dev | STS-B | L2 | universal | alp | 3 (1 2 3) |" in md


def test_without_comparisons_there_is_no_section_or_file(full_report):
    root, _ = full_report
    assert not (root / "out" / "comparisons.csv").exists()
    assert "## Pairwise comparisons" not in (root / "out" / "report.md").read_text()


def test_comparison_of_an_unknown_method_is_a_config_error(full_report, tmp_path):
    root, _ = full_report
    with pytest.raises(ConfigError, match=r"--compare alp:pkd: no results for method 'pkd' \(methods found: alp, ce,"):
        build_report(root / "res", tmp_path / "out", n_boot=10, figures=False, comparisons=[("alp", "pkd")])
    assert not (tmp_path / "out").exists()
    # a method the expected grid names but that has no result yet: no test, no error
    expected = [{"task": "mrpc", "student": "L2", "method": "pkd", "seed": 1}]
    out = build_report(root / "res", tmp_path / "out", n_boot=10, figures=False, comparisons=[("alp", "pkd")],
                       expected=expected)
    assert out["comparisons"] == [] and len(out["missing"]) == 1


@pytest.mark.parametrize("text", ["alp", "alp:", ":ce", "alp:alp", "a:b:c"])
def test_malformed_compare_is_a_cli_error(text, full_report, tmp_path, capsys):
    from clihelp import assert_user_error, run_cli

    root, _ = full_report
    code, _, err = run_cli("report", root / "res", "--out", tmp_path / "out", "--no-figures", "--compare", text,
                           capsys=capsys)
    assert_user_error(code, err, r"--compare .*(expected METHOD:BASELINE|compared with itself)")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- one suite's grid
def test_only_expected_keeps_the_cells_of_the_grid(full_report, tmp_path):
    root, _ = full_report
    grid = [{"task": "mrpc", "student": "L2", "method": m, "seed": s} for m in ("ce", "kd", "pkd") for s in (1, 2, 3)]
    out = build_report(root / "res", tmp_path / "out", n_boot=100, figures=False, expected=grid, only_expected=True)
    assert out["n_results"] == 6  # ce and kd seeds 1-3; pkd never ran
    students = [r for r in out["rows"] if r["role"] == "student" and r["eval_set"] == "dev"]
    assert {(r["task"], r["student"], r["method"]) for r in students} == {("MRPC", "L2", m) for m in ("ce", "kd", "pkd")}
    assert [m["method"] for m in out["missing"]] == ["pkd"] * 3
    # Holm now runs over the grid's methods only: one test per family, so p Holm = p
    assert all(t["p_holm"] == t["p_value"] for t in out["tests"])
    md = (tmp_path / "out" / "report.md").read_text()
    assert "only the cells of the suite grid(s) below" in md and "### STS-B" not in md
    # an expected cell that names a key keeps only the result with that key
    keyed = [dict(e, key="0" * 16) if e["method"] == "kd" else e for e in grid]
    out = build_report(root / "res", tmp_path / "out2", n_boot=100, figures=False, expected=keyed, only_expected=True)
    assert out["n_results"] == 3


def test_only_expected_needs_expected_cells_and_only_needs_a_suite(full_report, tmp_path, capsys):
    from clihelp import assert_user_error, run_cli

    root, _ = full_report
    with pytest.raises(ConfigError, match="only_expected: no expected cells"):
        build_report(root / "res", tmp_path / "out", n_boot=10, figures=False, only_expected=True)
    code, _, err = run_cli("report", root / "res", "--out", tmp_path / "out", "--no-figures", "--only", "ild",
                           capsys=capsys)
    assert_user_error(code, err, r"--only ild: not one of the --suite files' suites \(no --suite given\)")
    assert not (tmp_path / "out").exists()


def test_small_heatmap_wraps_title_and_colour_bar_label(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from layerkd.bench import figures

    seen = {}
    real_save = figures._save

    def keep(fig, path):  # read the texts back before the figure is closed
        ax, cax = fig.axes
        seen["title"], seen["colorbar"] = ax.get_title(), cax.get_ylabel()
        return real_save(fig, path)

    monkeypatch.setattr(figures, "_save", keep)
    figures.attention_heatmap(tmp_path / "a.png", np.full((2, 6), 1 / 6), row_labels=[1, 2], col_labels=range(1, 7),
                              title="universal attention over teacher layers — STS-B, L2, universal+rail (mean of 3 seeds)")
    plt.close("all")
    assert (tmp_path / "a.png").exists()
    # a 2 × 6 map is 7 × 2.9 inches: no line longer than the figure can show
    assert "\n" in seen["title"] and max(map(len, seen["title"].split("\n"))) <= 70
    assert "\n" in seen["colorbar"] and max(map(len, seen["colorbar"].split("\n"))) <= 26


@pytest.mark.parametrize("draw", ["teacher_layers", "curves"])
def test_teacher_line_above_every_curve_is_inside_the_axes(tmp_path, monkeypatch, draw):
    # STS-B: pseudo classifiers up to 80.8, teacher 85.7; autoscaling alone puts the line on the top spine
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from layerkd.bench import figures

    seen = {}
    real_save = figures._save

    def keep(fig, path):
        seen["ylim"] = fig.axes[0].get_ylim()
        return real_save(fig, path)

    monkeypatch.setattr(figures, "_save", keep)
    mean = [-0.024, -0.165, -0.019, 0.74, 0.808]
    if draw == "teacher_layers":
        figures.teacher_layer_scores(tmp_path / "t.png", [{"label": "heads", "layers": [1, 2, 3, 4, 5], "mean": mean,
                                                           "std": [0.01] * 5, "n": 3}],
                                     metric="Pearson", title="t", teacher_score=0.8573)
    else:
        figures.learning_curves(tmp_path / "c.png", {"ce": {"x": [1, 2, 3, 4, 5], "mean": mean, "std": [0.01] * 5,
                                                            "n": 3}},
                                metric="Pearson", title="c", colours={}, teacher_score=0.8573)
    plt.close("all")
    lo, hi = seen["ylim"]
    assert hi - 85.73 >= 0.05 * (hi - lo)


def test_teacher_layer_figure_keeps_standardised_fits_apart(tmp_path, monkeypatch):
    # two heads fits of one teacher are different classifiers: one band per fit setting, never their mean
    pytest.importorskip("matplotlib")
    from layerkd.bench import figures

    synthetic.write_results(tmp_path / "res")
    changed = 0
    for f in sorted((tmp_path / "res").glob("*.json")):
        try:
            rec = json.loads(f.read_text())
        except json.JSONDecodeError:  # the fixture's deliberately malformed file
            continue
        if rec.get("cell", {}).get("method") == "universal" and rec["cell"]["seed"] == 1:
            rec["config"]["teacher"] = {"fit_heads": {"standardize": True}}
            scores = rec["result"]["diagnostics"]["teacher_heads"]["dev_scores"]
            rec["result"]["diagnostics"]["teacher_heads"]["dev_scores"] = {k: 0.99 for k in scores}
            f.write_text(json.dumps(rec))
            changed += 1
    assert changed
    seen: dict[str, list] = {}
    real = figures.teacher_layer_scores

    def keep(path, series, **kw):
        seen[path.name] = series
        return real(path, series, **kw)

    monkeypatch.setattr(figures, "teacher_layer_scores", keep)
    runs = load_results(tmp_path / "res")[0]
    build_report(tmp_path / "res", tmp_path / "out", baseline="ce", n_boot=100, seed=0)
    for name, series in seen.items():
        labels = {s["label"]: s for s in series}
        assert set(labels) == {"pseudo classifiers", "pseudo classifiers, standardised inputs"}, name
        std = labels["pseudo classifiers, standardised inputs"]
        assert std["n"] == 1 and all(m == pytest.approx(0.99) for m in std["mean"])
        assert all(m < 0.99 for m in labels["pseudo classifiers"]["mean"])
    assert seen and sum(r.heads_standardized for r in runs) == changed
