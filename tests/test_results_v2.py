"""benchmarks/results_v2.py: the v2 lead of docs/results.md is built from generated files only."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from scripts import load_script


def _mod():
    return load_script("benchmarks/results_v2.py")


def _write_csv(path: Path, rows: list[dict]) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        w.writerows(rows)


def test_headline_from_report_files(tmp_path):
    report = tmp_path / "report-v2"
    report.mkdir()
    t = {"eval_set": "dev", "student": "", "method": "teacher", "role": "teacher", "n": "1", "expected_n": ""}
    s = {"eval_set": "dev", "student": "L2", "role": "student", "expected_n": "5"}
    _write_csv(report / "summary.csv", [
        {**t, "task": "STS-B", "main_metric": "pearson", "best_pearson_mean": "0.857", "best_glue_mean": "0.856"},
        {**t, "task": "MRPC", "main_metric": "f1", "best_f1_mean": "0.86", "best_glue_mean": "0.83"},
        {**s, "task": "STS-B", "method": "ce", "main_metric": "pearson", "n": "5", "best_pearson_mean": "0.812", "best_pearson_std": "0.004"},
        {**s, "task": "MRPC", "method": "ce", "main_metric": "f1", "n": "3", "best_f1_mean": "0.824", "best_f1_std": "0.01"},
        {**s, "eval_set": "paws-wiki", "task": "MRPC", "method": "ce", "main_metric": "f1", "n": "3", "best_f1_mean": "0.5"},
        {**s, "task": "CoLA", "method": "ce", "main_metric": "", "n": "0"},  # expected, none run yet
    ])
    _write_csv(report / "glue_average.csv", [{"student": "L2", "method": "ce", "best_average": "0.8216"}])
    (report / "claims.md").write_text("# Claims\n\n| family | holds |\n|---|---|\n| kd-methods-vs-ce | no |\n")
    cal = tmp_path / "calibration.json"
    cal.write_text(json.dumps({"sts-b": {"teacher": {"test_best": 0.857}, "students": {
        "cut-cls": {"test_best": 0.359, "metric": "pearson"}, "cut-mean": {"test_best": 0.812, "metric": "pearson"}}}}))
    layers = [{"layer": 1, "cls_mean_cosine": 1.0, "mean_mean_cosine": 0.67},
              {"layer": 2, "cls_mean_cosine": 0.99981, "mean_mean_cosine": 0.72},
              {"layer": 3, "cls_mean_cosine": 0.83, "mean_mean_cosine": 0.78}]
    (tmp_path / "spread-sts-b.json").write_text(json.dumps({"task": "STS-B", "n_train": 2000, "layers": layers}))
    terms = {v: {"test_best": x, "train_rows": 1600, "epochs": 6} for v, x in [("kd", 0.732), ("stacked", 0.192), ("stacked-cos", 0.54), ("stacked-att", 0.178),
                                                 ("none", 0.386), ("none-att", 0.36), ("none-cos", 0.69)]}
    (tmp_path / "internal-terms.json").write_text(json.dumps(terms))
    into = tmp_path / "results.md"
    into.write_text("# Results\n\n<!-- v2:begin -->\nSTALE-TEXT\n<!-- v2:end -->\n\n## v1 kept\n")
    _mod().main(["--report", str(report), "--calibration", str(cal), "--into", str(into),
                 "--terms", str(tmp_path / "internal-terms.json")])
    md = into.read_text()
    assert "(1,600 training rows, 6 epochs, seed 1;" in md
    assert "`kd` alone and 19.2 with `internal-mean` as declared" in md
    assert "the attention KL gives 36.0 and the cosine term 69.0" in md
    assert md.startswith("# Results\n\n<!-- v2:begin -->") and md.rstrip().endswith("## v1 kept") and "STALE-TEXT" not in md
    assert "| method | MRPC (F1) | CoLA (MCC) | STS-B (Pearson) | GLUE avg. | / teacher |" in md
    assert "| teacher | 86.0 | missing | 85.7 | – | |" in md
    assert "| ce | 82.4 ± 1.0 (3/5 ⚠) | missing | 81.2 ± 0.4 (5/5) | 82.2 | – |" in md  # no teacher avg.: no ratio
    assert "| paws-wiki | MRPC | L2 | ce | f1 | 50.0 (3/5 ⚠) |" in md
    assert ("Not run yet: 7 of 15 cells (MRPC 2 of 5, CoLA 5 of 5). `layerkd bench configs/suites/ild-v2.yaml "
            "--results benchmarks/results/cells-v2 --var shared=../shared --var work=../layerkd-work --workers 2` runs them") in md
    assert "| kd-methods-vs-ce | no |" in md and "\n# Claims" not in md
    assert "sts-b: teacher 85.7; the same 2-layer cut with a [CLS] head 35.9, with a mean-pooled head 81.2" in md
    assert "STS-B (2000 training rows): layers 1–2, [CLS] ≥ 0.9998, mean-pooled ≤ 0.72" in md  # layer 3 varies: not listed


def test_no_report_yet_says_what_to_run(tmp_path):
    into = tmp_path / "results.md"
    into.write_text("# Results\n")
    _mod().main(["--report", str(tmp_path / "none"), "--calibration", str(tmp_path / "none.json"), "--into", str(into),
                 "--terms", str(tmp_path / "none-terms.json")])
    md = into.read_text()
    assert "Reading the `internal` row" not in md  # no decomposition run: no note
    assert "No v2 report yet" in md and "layerkd report benchmarks/results/cells-v2" in md
    assert "calibration.json not found" in md


def test_a_complete_headline_lists_nothing_to_run():
    row = {"eval_set": "dev", "student": "L3-pretrained", "role": "student", "task": "RTE", "method": "ce"}
    mod = _mod()
    assert mod.not_run([{**row, "n": "3", "expected_n": "3"}], "L3-pretrained") == ""
    text = mod.not_run([{**row, "n": "0", "expected_n": "3"}, {**row, "method": "kd", "n": "3", "expected_n": "3"}], "L3-pretrained")
    assert text.startswith("Not run yet: 3 of 6 cells (RTE 3 of 6). `layerkd bench configs/suites/pretrained-student-v2.yaml ")
