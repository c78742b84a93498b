"""`layerkd report` on plain run folders (issue 23 point 5): two tiny distillation runs, read from
their results.json/config.yaml into the same tables and figures a bench report has."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from clihelp import assert_user_error, run_cli
from conftest import distill_config
from layerkd.bench.run_folders import find_run_folders, load_run_folders, seeds_note


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, tiny_teacher_dir, toy_data):
    from layerkd.stages.distill import distill

    root = tmp_path_factory.mktemp("runs")
    for method in ("kd", "alp"):
        distill(distill_config(tiny_teacher_dir, toy_data, method, root / "runs" / f"toy-{method}", epochs=1,
                               cache_dir=root / "cache"), progress=False)
    return root / "runs"


def _rows(path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_report_on_a_folder_of_runs(two_runs, tiny_teacher_dir, tmp_path, capsys):
    out = tmp_path / "report"
    code, stdout, err = run_cli("report", two_runs, "--out", out, "--baseline", "kd", "--n-boot", "200", capsys=capsys)
    assert code == 0, err
    assert "(2 run folder(s)" in stdout
    assert "significance (and a std) needs ≥2 seeds per method; these runs have 1 per method (train more with --seed N)" in stdout.splitlines()
    rows = {r["method"]: r for r in _rows(out / "summary.csv")}
    assert set(rows) == {"teacher", "kd", "alp"}
    for m in ("kd", "alp"):
        res = json.loads((two_runs / f"toy-{m}" / "results.json").read_text())
        assert rows[m]["task"] == "toy-sentiment" and rows[m]["student"] == "bottom:2" and rows[m]["seeds"] == "0"
        assert rows[m]["n"] == "1" and float(rows[m]["best_accuracy_mean"]) == pytest.approx(res["best"]["accuracy"])
    teacher = json.loads((tiny_teacher_dir / "results.json").read_text())
    assert float(rows["teacher"]["best_accuracy_mean"]) == pytest.approx(teacher["best"]["accuracy"])
    assert any(p.name.startswith("attention_") for p in (out / "figures").glob("*.png"))  # ALP's attention heatmap
    assert (out / ".layerkd-run").is_file()


def test_run_folders_named_one_by_one_and_the_teacher_run_among_them(two_runs, tiny_teacher_dir, tmp_path, capsys):
    out = tmp_path / "report"
    code, stdout, err = run_cli("report", two_runs / "toy-kd", two_runs / "toy-alp", tiny_teacher_dir, "--out", out,
                                "--no-figures", "--n-boot", "100", capsys=capsys)
    assert code == 0, err
    # the fine-tuning run is the teacher of both: the teacher row, not a method row
    assert sorted(r["method"] for r in _rows(out / "summary.csv")) == ["alp", "kd", "teacher"]


def test_alike_runs_keep_their_folders_apart_and_seeds_are_counted(two_runs, tmp_path):
    copy = tmp_path / "toy-kd-again"
    shutil.copytree(two_runs / "toy-kd", copy)
    runs, skipped, _ = load_run_folders([*find_run_folders([two_runs]), copy])
    assert not skipped
    assert sorted(r.method for r in runs) == ["alp", "kd (toy-kd)", "kd (toy-kd-again)"]
    kd = [r for r in runs if r.method.startswith("kd")]
    for r, seed in zip(kd, (1, 2), strict=True):
        r.method, r.seed = "kd", seed
    assert seeds_note(runs) == "significance (and a std) needs ≥2 seeds per method; alp has 1 (train more with --seed N)"
    assert seeds_note(kd) is None


def test_suite_with_run_folders_is_refused(two_runs, tmp_path, capsys):
    code, _, err = run_cli("report", two_runs, "--out", tmp_path / "r", "--suite", tmp_path / "s.yaml", capsys=capsys)
    assert_user_error(code, err, r"report: --suite applies to bench results .*, not to run folders")
    assert not (tmp_path / "r").exists()
