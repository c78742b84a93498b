"""benchmarks/speed.py --smoke (paper-shaped rows, levers, bounds, end-to-end ratios, targets) and
benchmarks/levers.py --smoke (speed and quality per lever, the profiler pass), on tiny random
shapes and toy data, in-process; and the collected sections merged into a speed.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from scripts import load_script

REPO = Path(__file__).resolve().parents[1]


def _load(name: str):
    sys.path.insert(0, str(REPO / "benchmarks"))
    return load_script(f"benchmarks/{name}.py", f"bench_{name}")


def test_speed_smoke_paper_rows_levers_bounds_and_targets(tmp_path):
    speed = _load("speed")
    speed.main(["--smoke", "--quiet", "--task", "mrpc", "--levers",
                "--rows", "ce,pkd,alp,alp-live,textbrewer,teacher", "--out", str(tmp_path / "speed")])
    rep = json.loads((tmp_path / "speed.json").read_text())
    rows = rep["rows"]
    assert set(rows) == {"ce", "pkd", "alp", "alp-live", "textbrewer", "teacher", "ce@bf16", "alp@bf16", "ce@foreach",
                         "ce@fused", "ce@frozen-emb", "alp@frozen-emb"}
    assert {r["steps_per_epoch"] for r in rows.values()} == {3} and rows["ce"]["ratio_to_ce"] == 1.0
    assert rows["alp"]["teacher_source_modes"] == ["cache"] and rows["alp-live"]["teacher_source_modes"] == ["live"]
    assert rows["alp"]["cache_build_seconds"] > 0 and rows["teacher"]["kind"] == "forward"
    frozen = rows["ce@frozen-emb"]["frozen_embeddings"]
    assert frozen["frozen_params"] > 0 and frozen["trainable_params"] > 0
    # bounds: a 4-layer teacher over a 2-layer student of equal width is 1 + 4/6 by layer count
    b = rep["bounds"]
    assert b["layer_epoch"] == round(1 + 4 / 6, 3) and b["layer_e2e"] == round(4 * (1 + 4 / 6) / (4 / 6 + 4), 3)
    assert b["measured_epoch"] == round((rows["ce"]["median_epoch_seconds"] + rows["teacher"]["median_epoch_seconds"])
                                        / rows["ce"]["median_epoch_seconds"], 3)
    e = rep["end_to_end"]["alp"]
    assert e["live_s"] == round(4 * rows["alp-live"]["median_epoch_seconds"], 3)
    assert abs(e["cached_s"] - (e["build_s"] + 4 * rows["alp"]["median_epoch_seconds"])) < 1e-2
    targets = [t["target"] for t in rep["targets"]]
    assert any(t.startswith("cached alp epoch ≤ 1.1×") for t in targets)
    assert any("TextBrewer" in t for t in targets) and any(t.startswith("(context) end to end") for t in targets)
    md = (tmp_path / "speed.md").read_text()
    for part in ("(smoke run)", "## Student-side levers", "| ce@fused | fused |", "## Bounds", "## End to end", "## Targets"):
        assert part in md, part
    assert "| ce@bf16 |" not in md.split("## Student-side levers")[0]  # never in the fp32 table


def test_speed_shape_skips_what_does_not_fit_and_refuses_two_teachers(tmp_path, capsys):
    speed = _load("speed")
    speed.main(["--smoke", "--quiet", "--time-budget-h", "1e-9", "--rows", "ce,alp", "--out", str(tmp_path / "s")])
    rep = json.loads((tmp_path / "s.json").read_text())
    assert rep["skipped"].startswith("does not fit the time budget") and rep["rows"] == {}
    assert "skipped" in (tmp_path / "s.md").read_text()
    try:
        speed.main(["--shape", "bert-base", "--teacher", "x", "--data-dir", "d", "--out", str(tmp_path / "t")])
    except SystemExit as exc:
        assert exc.code == 2
    assert "give --shape or --teacher, not both" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()


def test_levers_smoke_speed_quality_and_profile_merged_into_speed_md(tmp_path):
    levers, report = _load("levers"), _load("speed_report")
    levers.main(["--smoke", "--quiet", "--methods", "ce", "--levers", "bf16,fused,frozen-emb", "--profile",
                 "--out", str(tmp_path / "levers")])
    rep = json.loads((tmp_path / "levers.json").read_text())
    assert set(rep["rows"]) == {"ce", "ce@bf16", "ce@fused", "ce@frozen-emb"}
    for r in rep["rows"].values():
        assert set(r["runs"]) == {"1", "2"} and r["metric"] == "accuracy" and 0 <= r["mean"] <= 1
        if r["lever"]:
            assert len(r["deltas"]) == 2 and r["quality_cost"] in ("nil", "costs") and r["speedup"] > 0
    prof = rep["profile"]
    assert prof["steps"] == 2 and set(prof["ms_per_step"]) == {"forward", "backward", "optimizer (AdamW)"}
    assert prof["top_ops"] and 0 < prof["params"]["share_word_embeddings"] < 1
    # the collected sections go between their markers; the rest of speed.md is left alone
    md = tmp_path / "speed.md"
    md.write_text("# Speed\n\nkept text\n")
    report.main(["--levers", str(tmp_path / "levers.json"), "--into", str(md)])
    report.main(["--levers", str(tmp_path / "levers.json"), "--into", str(md)])
    text = md.read_text()
    assert text.startswith("# Speed\n\nkept text\n") and text.count("<!-- levers:begin -->") == 1
    assert "| ce | fused |" in text and "Profiler (`torch.profiler`" in text


def test_missed_targets_are_explained_from_the_runs_own_rows():
    """A BERT-base → BERT-4 report whose TextBrewer and end-to-end targets miss: the generated lines
    decompose each miss into the run's rows (golden values worked out by hand below)."""
    report = _load("speed_report")

    def row(sec, method, cache=False, lever=None, build=None):
        return {"median_epoch_seconds": sec, "method": method, "cache": cache, "lever": lever, "ratio_to_ce": sec / 10.0,
                "cache_build_seconds": build, "steps_per_epoch": 5, "build_round": {"train_rows": 160} if build else None}

    rep = {"settings": {"shape": "bert-base", "student": "bottom:4", "task": "mrpc", "max_length": 128, "batch_size": 32,
                        "dims": {"teacher": {"layers": 12, "hidden": 768, "intermediate": 3072},
                                 "student": {"layers": 4, "hidden": 768, "intermediate": 3072}}},
           "rows": {"ce": row(10.0, "ce"), "teacher": row(9.0, "teacher"), "textbrewer": row(19.0, "pkd"),
                    "pkd": row(10.8, "pkd", cache=True, build=10.0), "pkd-live": row(19.5, "pkd")}}
    rep["bounds"], rep["end_to_end"] = report.bounds(rep), report.end_to_end(rep)
    rep["targets"] = report.targets(rep)
    assert rep["end_to_end"]["pkd"]["live_over_cached"] == round(4 * 19.5 / (10.0 + 4 * 10.8), 3)  # 1.466: missed
    lines = report.reasons(rep)
    assert len(lines) == 2
    # TextBrewer 19.0 / cached pkd 10.8 = 1.76 < 1.8; 1.8x would need pkd <= 1.9 / 1.8 = 1.056x ce
    assert "TextBrewer's live epoch is 1.90× ce (ce + teacher forward = 1.90×), our live pkd 1.95×" in lines[0]
    assert "our cached pkd is 1.080× ce, and 1.8× would need ≤ 1.056×" in lines[0] and "8.0 % of a student step" in lines[0]
    assert "end to end pkd: cached epoch 1.080× ce and a cache build of 1.11 teacher forwards" in lines[1]  # 10 / 9
    assert "a live epoch of 1.95× ce (ce + teacher forward: 1.90×)" in lines[1]
    assert "Where a target was missed" in report.paper_section([rep])
    # a teacher too cheap for the target: TextBrewer at 1.5x ce cannot be beaten 1.8x by any cached epoch >= ce
    rep["rows"]["textbrewer"] = row(15.0, "pkd")
    rep["targets"] = report.targets(rep)
    assert "1.8× would need a cached epoch faster than the student's own (0.833× ce)" in report.reasons(rep)[0]


def test_benchmark_reports_name_no_machine_path(tmp_path, monkeypatch):
    """speed.py, levers.py and inference.py write through timing.write_report: absolute folders of
    the machine become ${work}/${shared}/${repo}/${tmp} in both files."""
    timing = _load("timing")
    monkeypatch.setenv("LAYERKD_WORK", str(tmp_path / "w"))
    rep = {"settings": {"teacher": str(tmp_path / "w" / "teachers-v2" / "sts-b"), "scratch": str(tmp_path / "x"),
                        "vocab": str(REPO / "src")}}
    timing.write_report(tmp_path / "out" / "r", rep, f"teacher {tmp_path / 'w' / 't'}\n")
    data = json.loads((tmp_path / "out" / "r.json").read_text())["settings"]
    assert data["teacher"] == "${work}/teachers-v2/sts-b" and data["vocab"] == "${repo}/src"
    assert data["scratch"].startswith("${tmp}/") and str(tmp_path) not in data["scratch"]
    assert (tmp_path / "out" / "r.md").read_text() == "teacher ${work}/t\n"
