"""Declared comparison families (suite files) and the claims table of `layerkd report`."""

from __future__ import annotations

import csv
import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from clihelp import assert_user_error, run_cli
from layerkd.bench.claims import (
    PRIMARY,
    SELECTED_OFF_TEST,
    DeclaredFamily,
    claim_tests,
    claims_markdown,
    families_of,
)
from layerkd.bench.report import load_results
from layerkd.bench.stats import holm
from layerkd.bench.suite import cell_key, load_suite
from layerkd.errors import ConfigError
from layerkd.metrics import compute_metrics
from scripts import load_script

synthetic = load_script("tests/fixtures/bench/synthetic.py", "bench_synthetic")


# ---------------------------------------------------------------------------------------------- suite families
def _suite_file(tmp_path: Path, comparisons=None, name: str = "s") -> Path:
    spec = {"name": name, "base": {"data": {"data_dir": "${work}/glue"}, "train": {"epochs": 1}},
            "tasks": {"mrpc": {"teacher": "${work}/teachers/mrpc",
                               "extra_eval": {"paws": {"file": "${work}/paws.tsv"}}},
                      "sts-b": {"teacher": "${work}/teachers/sts-b"}},
            "students": {"L2": "bottom:2"}, "methods": ["ce", "kd", {"label": "alp", "method": "alp"}],
            "seeds": [1, 2, 3]}
    if comparisons is not None:
        spec["comparisons"] = comparisons
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(spec, sort_keys=False))
    return p


def test_declared_families_leave_every_cell_key_unchanged(tmp_path):
    v = {"work": str(tmp_path)}
    plain = load_suite(_suite_file(tmp_path, name="plain"), v)
    fams = [{"name": "ilds", "pairs": [["alp", "kd"], ["kd", "ce"]]},
            {"name": "ood", "pairs": [["alp", "ce"]], "alternative": "two-sided", "tasks": ["mrpc"],
             "eval_sets": ["dev", "paws"]}]
    declared = load_suite(_suite_file(tmp_path, fams, name="declared"), v)
    assert [c.key for c in declared.cells] == [c.key for c in plain.cells] and plain.comparisons == []
    f = families_of(declared)
    assert [x.name for x in f] == ["ilds", "ood"] and f[0].alternative == "greater"
    assert f[0].tasks == ["MRPC", "STS-B"] and f[1].tasks == ["MRPC"] and f[1].eval_sets == ["dev", "paws"]
    assert f[0].pairs == [("alp", "kd"), ("kd", "ce")] and f[0].students == ["L2"]
    assert f[0].cells[("MRPC", "L2", "alp", 2)] == declared.cells[[c.describe() for c in declared.cells].index(
        {"task": "mrpc", "student": "L2", "student_spec": "bottom:2", "method": "alp", "seed": 2})].key


@pytest.mark.parametrize("fam, msg", [
    ({"name": "f", "pairs": [["alp", "pkd"]]}, r"comparisons\[0\] \(f\): pair \[alp, pkd\]: 'pkd' is not a method label"),
    ({"name": "f", "pairs": [["kd", "kd"]]}, r"compares a method with itself"),
    ({"name": "f", "pairs": [["kd", "ce"], ["kd", "ce"]]}, r"pair \[kd, ce\] is declared twice"),
    ({"name": "f", "pairs": [["kd", "ce"]], "alternative": "bigger"}, r"alternative 'bigger' \(expected one of: greater"),
    ({"name": "f", "pairs": [["kd", "ce"]], "tasks": ["rte"]}, r"task 'rte' is not a task of the suite"),
    ({"name": "f", "pairs": [["kd", "ce"]], "eval_sets": ["hans"]}, r"eval set 'hans' is not dev or an extra_eval"),
    ({"name": "f", "pairs": [["kd", "ce", "alp"]]}, r"comparisons"),
    ({"name": "f", "pairs": [["kd", "ce"]], "holm": True}, r"comparisons"),
])
def test_bad_families_are_config_errors_naming_the_file(tmp_path, fam, msg):
    p = _suite_file(tmp_path, [fam])
    with pytest.raises(ConfigError, match=msg) as e:
        load_suite(p, {"work": str(tmp_path)})
    assert str(p) in str(e.value)


def test_a_family_name_used_twice_is_an_error(tmp_path):
    p = _suite_file(tmp_path, [{"name": "f", "pairs": [["kd", "ce"]]}, {"name": "f", "pairs": [["alp", "ce"]]}])
    with pytest.raises(ConfigError, match="the family name 'f' is used twice"):
        load_suite(p, {"work": str(tmp_path)})


# ---------------------------------------------------------------------------------------------- the claims table
def _results(d: Path, suite, quality: dict, *, validated: set[str] = frozenset(), seeds=(1, 2, 3)) -> None:
    """Result files for the suite's MRPC cells (its keys), predictions of the given quality per method;
    the cells of methods in ``validated`` chose their epoch on the validation split."""
    gold = synthetic.gold_labels("mrpc", synthetic.N_DEV)
    for c in suite.cells:
        if c.task != "mrpc" or c.seed not in seeds or c.method not in quality:
            continue
        rng = np.random.default_rng(zlib.crc32(f"{c.method}/{c.seed}".encode()))
        best = synthetic.predictions("mrpc", gold, (quality[c.method], 1.0), rng)
        last = synthetic.predictions("mrpc", gold, (quality[c.method] - 0.2, 1.0), rng)
        rec = synthetic.record(task="mrpc", student="L2", method=c.method, seed=c.seed, key=c.key, dev_labels=gold,
                               dev_predictions={"best": best, "last": last}, suites=(suite.name,),
                               best=compute_metrics(["f1", "accuracy"], np.asarray(best), np.asarray(gold)),
                               last=compute_metrics(["f1", "accuracy"], np.asarray(last), np.asarray(gold)))
        if c.method in validated:
            rec["result"]["selection"] = {"split": "validation", "rows": 367, "best": {}, "last": {}, "row_ids": []}
        _write(d, rec)


def _write(d: Path, rec: dict) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{rec['key']}.json").write_text(json.dumps(rec), encoding="utf-8")


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def declared(tmp_path):
    fams = [{"name": "main", "pairs": [["kd", "ce"], ["alp", "ce"], ["alp", "kd"]], "tasks": ["mrpc"]},
            {"name": "worse", "pairs": [["ce", "alp"]], "alternative": "less", "tasks": ["mrpc", "sts-b"]}]
    p = _suite_file(tmp_path, fams)
    return p, load_suite(p, {"work": str(tmp_path)})


def test_claims_are_holm_adjusted_within_each_declared_family(tmp_path, declared):
    _, suite = declared
    res = tmp_path / "res"
    _results(res, suite, {"ce": 0.60, "kd": 0.62, "alp": 0.95})
    runs, _, _ = load_results(res)
    tests = claim_tests(families_of(suite), runs, n_boot=1000, seed=0)
    main = [t for t in tests if t["family"] == "main"]
    worse = [t for t in tests if t["family"] == "worse"]
    assert [(t["method"], t["baseline"]) for t in main] == [("kd", "ce"), ("alp", "ce"), ("alp", "kd")]
    assert all(t["family_size"] == 3 and t["selection"] == "test set (6 of 6 cells)" and t["n_seeds"] == 3 for t in main)
    assert [t["p_holm"] for t in main] == pytest.approx(holm([t["p_value"] for t in main]))
    alp_ce = main[1]
    assert alp_ce["p_holm"] < 0.05 and alp_ce["holds"] == "yes" and main[0]["holds"] == "no"
    # the "less" family: ce < alp holds on MRPC; STS-B has no results, a declared test that counts as p = 1
    assert [t["task"] for t in worse] == ["MRPC", "STS-B"] and worse[0]["delta"] < 0
    assert worse[0]["p_holm"] == pytest.approx(min(1.0, 2 * worse[0]["p_value"])) and worse[0]["holds"] == "yes"
    assert worse[1]["holds"] == "n/a" and math.isnan(worse[1]["p_value"]) and "no results" in worse[1]["note"]


def test_tests_that_cannot_run_are_noted_once_per_group_not_once_per_test(tmp_path, declared):
    _, suite = declared
    res = tmp_path / "res"
    _results(res, suite, {"ce": 0.60}, seeds=(1, 2))  # kd and alp have no cells; ce on 2 of 3 seeds
    runs, _, _ = load_results(res)
    tests = claim_tests(families_of(suite), runs, n_boot=200, seed=0)
    assert sum("no results" in t["note"] for t in tests) == 5  # claims.csv keeps one note per test
    notes = claims_markdown(tests, 200, 0).split("Notes:\n")[1].splitlines()
    assert notes == ["- s/main MRPC L2 dev: 3 test(s) n/a, no results for kd, alp",
                     "- s/worse MRPC L2 dev: 1 test(s) n/a, no results for alp",
                     "- s/worse STS-B L2 dev: 1 test(s) n/a, no results for ce, alp"]  # both sides named


def test_the_primary_score_and_where_each_cell_chose_its_epoch(tmp_path, declared):
    _, suite = declared
    res = tmp_path / "res"
    _results(res, suite, {"ce": 0.60, "alp": 0.95}, validated={"ce", "alp"})
    runs, _, _ = load_results(res)
    fam = [f for f in families_of(suite) if f.name == "main"]
    t = [x for x in claim_tests(fam, runs, n_boot=200, seed=0) if (x["method"], x["baseline"]) == ("alp", "ce")][0]
    # the primary score is the selected epoch's test metric (not the last epoch's)
    assert PRIMARY == "best" and t["method_score"] == pytest.approx(np.mean([r.metrics("best")["f1"] for r in runs
                                                                              if r.method == "alp"]))
    assert t["selection"] == SELECTED_OFF_TEST
    md = claims_markdown([t], 200, 0)
    assert "| F1 |" in md and "†" not in md
    # one cell that chose its epoch on the test set (an old cell, or data.validation.source: eval): marked
    for r in runs:
        if r.method == "ce" and r.seed == 2:
            r.result["selection"] = {"split": "dev"}
    t2 = [x for x in claim_tests(fam, runs, n_boot=200, seed=0) if (x["method"], x["baseline"]) == ("alp", "ce")][0]
    assert t2["selection"] == "test set (1 of 6 cells)" and t2["delta"] == t["delta"]
    assert "| F1 † |" in claims_markdown([t2], 200, 0)


def test_cells_of_another_config_do_not_enter_the_claims(tmp_path, declared):
    _, suite = declared
    res = tmp_path / "res"
    _results(res, suite, {"ce": 0.60, "kd": 0.62})
    runs, _, _ = load_results(res)
    fam = DeclaredFamily(suite="s", name="f", pairs=[("kd", "ce")], alternative="greater", tasks=["MRPC"],
                         students=["L2"], eval_sets=["dev"],
                         cells={k: ("0" * 16 if k[2] == "kd" and k[3] == 1 else v) for k, v in families_of(suite)[0].cells.items()})
    t = claim_tests([fam], runs, n_boot=200, seed=0)[0]
    assert t["seeds"] == "2 3"  # seed 1 of kd has another key: not the declared cell


def test_a_claim_on_fewer_seeds_than_declared_is_pending_not_decided(tmp_path, declared):
    _, suite = declared
    res = tmp_path / "res"
    _results(res, suite, {"ce": 0.60, "kd": 0.62, "alp": 0.95}, seeds=(1, 2))
    runs, _, _ = load_results(res)
    fam = [f for f in families_of(suite) if f.name == "main"]
    tests = claim_tests(fam, runs, n_boot=500, seed=0)
    alp_ce = tests[1]
    assert (alp_ce["method"], alp_ce["baseline"], alp_ce["n_seeds"], alp_ce["declared_seeds"]) == ("alp", "ce", 2, 3)
    assert alp_ce["p_value"] < 0.05 and alp_ce["delta"] > 0  # interim evidence is shown ...
    assert alp_ce["holds"] == "pending" and math.isnan(alp_ce["p_holm"])  # ... but not decided
    assert "interim: 2 of 3 declared seeds" in alp_ce["note"]
    assert "| pending (2/3) |" in claims_markdown(tests, 500, 0)
    # every declared seed run: the same comparison is decided
    _results(res, suite, {"ce": 0.60, "kd": 0.62, "alp": 0.95}, seeds=(3,))
    runs, _, _ = load_results(res)
    assert claim_tests(fam, runs, n_boot=500, seed=0)[1]["holds"] == "yes"


def test_report_writes_the_claims_files_and_the_cli_reads_the_families(tmp_path, declared, capsys):
    p, suite = declared
    res = tmp_path / "res"
    _results(res, suite, {"ce": 0.60, "kd": 0.62, "alp": 0.95})
    out = tmp_path / "out"
    code, _, err = run_cli("report", res, "--out", out, "--suite", p, "--var", f"work={tmp_path}", "--no-figures",
                           "--n-boot", "500", capsys=capsys)
    assert code == 0, err
    rows = _csv(out / "claims.csv")
    assert [(r["family"], r["method"], r["baseline"], r["task"]) for r in rows] == [
        ("main", "kd", "ce", "MRPC"), ("main", "alp", "ce", "MRPC"), ("main", "alp", "kd", "MRPC"),
        ("worse", "ce", "alp", "MRPC"), ("worse", "ce", "alp", "STS-B")]
    assert [r["holds"] for r in rows] == ["no", "yes", "yes", "yes", "n/a"]
    md = (out / "claims.md").read_text()
    assert "do not edit by hand" in md and "| s/main | alp > ce | MRPC | L2 | F1 † | 1 2 3 |" in md
    assert "| s/worse | ce < alp | STS-B |" in md and "† some or all cells chose their epoch on the test set" in md
    assert "Generated" not in md  # no timestamp: regenerating unchanged results gives the same file
    report = (out / "report.md").read_text()
    assert "## Declared claims" in report and "5 declared test(s), 4 run (0 pending their declared seeds), 3 hold" in report
    # the significance tests are two-level by default, one-level with --bootstrap examples
    two = _csv(out / "significance.csv")
    assert all(r["test"].startswith("two-level") for r in two)
    code, _, err = run_cli("report", res, "--out", tmp_path / "out1", "--bootstrap", "examples", "--no-figures",
                           "--n-boot", "500", capsys=capsys)
    one = _csv(tmp_path / "out1" / "significance.csv")
    assert code == 0 and not (tmp_path / "out1" / "claims.md").exists()  # no --suite: no declared family
    assert all(r["test"].startswith("paired bootstrap") for r in one)
    by = {(r["method"], r["which"]): r for r in one}
    for r in two:  # the same observed δ, whichever test
        o = by[(r["method"], r["which"])]
        assert float(r["delta"]) == pytest.approx(float(o["delta"]))


def test_an_unknown_bootstrap_is_a_one_line_error_and_writes_nothing(tmp_path, declared, capsys):
    _, suite = declared
    res = tmp_path / "res"
    _results(res, suite, {"ce": 0.60, "kd": 0.62})
    code, _, err = run_cli("report", res, "--out", tmp_path / "out", "--bootstrap", "seeds", "--no-figures",
                           capsys=capsys)
    assert_user_error(code, err, r"--bootstrap 'seeds': expected one of two-level, examples")
    assert not (tmp_path / "out").exists()


def test_report_reading_notes_follow_where_the_epoch_was_selected():
    """The report must not call a validation-selected score 'optimistic', nor a dev-selected one clean."""
    from types import SimpleNamespace

    from layerkd.bench.selection import best_note, selected_where

    val = SimpleNamespace(result={"selection": {"split": "validation", "rows": 10}})
    dev = SimpleNamespace(result={})  # v1 cells: no selection record, chosen on dev
    assert "carved from the training set" in best_note([val, val]) and "optimistic" not in best_note([val])
    assert "optimistic" in best_note([dev]) and "1 of 2 cells" in best_note([val, dev])
    assert selected_where([val]).startswith("the epoch selected on the validation split")
    assert selected_where([dev, dev]) == "the epoch selected on dev itself"


def test_without_the_teacher_weights_cells_are_matched_on_the_hash_they_recorded(tmp_path):
    """The work area (the teachers) is lost: the claims must still be decided from the committed cells,
    matched on the declared config and the teacher hash they recorded, and said so; cells that record
    two different teachers for one task are never paired."""
    teacher = tmp_path / "teachers" / "mrpc"
    teacher.mkdir(parents=True)
    (teacher / "model.safetensors").write_bytes(b"the mrpc teacher")
    fams = [{"name": "main", "pairs": [["kd", "ce"]], "tasks": ["mrpc"]}]
    p = _suite_file(tmp_path, fams)
    here = load_suite(p, {"work": str(tmp_path)})
    h = next(c.teacher_hash for c in here.cells if c.task == "mrpc")
    assert h
    res = tmp_path / "res"
    _results(res, here, {"ce": 0.60, "kd": 0.75})
    for f in res.glob("*.json"):  # the cells record the teacher they ran on
        rec = json.loads(f.read_text())
        rec["teacher"]["fingerprint"] = h
        f.write_text(json.dumps(rec))
    runs, _, _ = load_results(res)
    with_teacher = claim_tests(families_of(here), runs, n_boot=300, seed=0)[0]
    assert with_teacher["seeds"] == "1 2 3" and with_teacher["teacher_recorded"] == []

    (teacher / "model.safetensors").unlink()  # the work area is gone
    gone = load_suite(p, {"work": str(tmp_path)})
    assert {c.key for c in gone.cells if c.task == "mrpc"}.isdisjoint({c.key for c in here.cells})
    t = claim_tests(families_of(gone), runs, n_boot=300, seed=0)[0]
    assert t["seeds"] == "1 2 3" and t["p_value"] == with_teacher["p_value"] and t["teacher_recorded"] == [h]
    assert f"MRPC: the teacher's weights are not on this machine; its cells were matched on the config the suite " \
           f"declares and on the teacher hash they recorded ({h[:12]}, the same in every cell)" in claims_markdown([t], 300, 0)

    # one cell says it ran on another teacher (its key agrees with that): the task's cells are not paired
    odd = next(f for f in res.glob("*.json") if json.loads(f.read_text())["cell"]["method"] == "kd")
    rec = json.loads(odd.read_text())
    other = "f" * 64
    cell = next(c for c in gone.cells if (c.method, c.seed, c.task) == ("kd", rec["cell"]["seed"], "mrpc"))
    rec["teacher"]["fingerprint"], rec["key"] = other, cell_key(cell.config, gone.variables, other)
    odd.unlink()
    _write(res, rec)
    runs, _, _ = load_results(res)
    t = claim_tests(families_of(gone), runs, n_boot=300, seed=0)[0]
    assert t["holds"] == "n/a" and t["n_seeds"] == 0 and sorted(t["teacher_recorded"]) == sorted([h, other])
    assert "2 different hashes: not paired" in claims_markdown([t], 300, 0)
