"""benchmarks/calibration/collect.py: every number in calibration.md comes from the runs' results.json,
including the extra budgets of ``run.sh budget TASK LR EPOCHS`` and the task's other test metrics."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from scripts import load_script

REPO = Path(__file__).resolve().parents[1]
GLUE = REPO.parent / "shared" / "data" / "glue"


def _collect():
    return load_script("benchmarks/calibration/collect.py", "calibration_collect")


def _run(path: Path, curve: list[float], best: dict, last: dict, best_epoch: int) -> None:
    path.mkdir(parents=True)
    history = [{"epoch": i + 1, "end_of_epoch": True, "f1": v} for i, v in enumerate(curve)]
    (path / "results.json").write_text(json.dumps({
        "main_metric": "f1", "best": best, "last": last, "best_epoch": best_epoch, "epochs_run": len(curve),
        "history": history, "selection": {"split": "validation", "best": {"f1": max(curve)}}, "train_rows": 3300}))


@pytest.mark.skipif(not (GLUE / "MRPC").is_dir(), reason="needs ../shared/data/glue")
def test_budget_rows_and_other_metrics(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    _run(work / "teachers-v2" / "mrpc", [0.80, 0.85], {"f1": 0.86, "accuracy": 0.80}, {"f1": 0.85, "accuracy": 0.79}, 2)
    (work / "teachers-v2" / "mrpc" / "model.safetensors").write_bytes(b"not really weights")
    _run(work / "calibration" / "mrpc-cut-mean", [0.81, 0.80, 0.78], {"f1": 0.824, "accuracy": 0.701},
         {"f1": 0.755, "accuracy": 0.66}, 1)
    _run(work / "calibration" / "mrpc-cut-mean-lr3e-5-e8", [0.79, 0.82, 0.84], {"f1": 0.845, "accuracy": 0.773},
         {"f1": 0.843, "accuracy": 0.77}, 3)
    _collect().main(["--work", str(work), "--shared", str(REPO.parent / "shared"), "--out", str(out)])
    md = (out / "calibration.md").read_text()
    rows = {line.split(" | ")[6]: line for line in md.splitlines() if line.startswith("| mrpc | f1 |")}
    assert set(rows) == {"lr 1e-4, 8 ep.", "lr 3e-5, 8 ep."}
    assert "| 84.5 | 84.3 | 98 % | accuracy 77.3 | 3 |" in rows["lr 3e-5, 8 ep."]
    assert "| 82.4 | 75.5 | 96 % | accuracy 70.1 | 1 |" in rows["lr 1e-4, 8 ep."]
    data = json.loads((out / "calibration.json").read_text())
    assert data["mrpc"]["students"]["cut-mean-lr3e-5-e8"]["test_best"] == 0.845
    assert data["rte"]["students"]["cut-mean"] is None  # not run: listed, never invented
    assert "1 more budgets" in md


@pytest.mark.skipif(not (GLUE / "RTE").is_dir(), reason="needs ../shared/data/glue")
def test_teacher_near_majority_and_skipped_inits_are_said(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    for t in ("rte", "mrpc"):
        _run(work / "teachers-v2" / t, [0.6, 0.55], {"f1": 0.545}, {"f1": 0.617}, 1)
        _run(work / "calibration" / f"{t}-cut-mean", [0.5, 0.52], {"f1": 0.53}, {"f1": 0.52}, 2)
    _run(work / "calibration" / "mrpc-pre-mean", [0.5, 0.52], {"f1": 0.81}, {"f1": 0.80}, 2)
    _collect().main(["--work", str(work), "--shared", str(REPO.parent / "shared"), "--out", str(out)])
    md = (out / "calibration.md").read_text()
    # RTE's majority class scores 52.7 on dev: a teacher at 54.5 is flagged; MRPC's (F1 81.2) even more so
    assert "Teachers less than 5 points above the majority class on the main metric: mrpc (test 54.5" in md
    assert "rte (test 54.5 at the selected epoch, 61.7 at the last; majority class 52.7)" in md
    assert "Pretrained-init (pre) students not run on rte: the initialisation was chosen on the tasks where both ran (mrpc)." in md


def test_a_variant_keeps_its_colour_in_every_panel():
    data = {"sts-b": {"students": {"pre-cls": {}, "cut-cls": {"x": 1}, "cut-mean": {"x": 1}}},
            "rte": {"students": {"pre-cls": None, "cut-cls": {"x": 1}, "cut-mean": {"x": 1}, "cut-mean-lr2e-5-e8": {"x": 1}}}}
    colours = _collect().variant_colours(data)
    # pre-cls ran nowhere (empty or None): it takes no colour, and cut-cls is the same colour on both panels
    assert colours == {"cut-cls": 0, "cut-mean": 1, "cut-mean-lr2e-5-e8": 2}


@pytest.mark.skipif(not (GLUE / "RTE").is_dir(), reason="needs ../shared/data/glue")
def test_reproduction_records_count_only_for_the_teachers_current_weights(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    for t, weights in (("rte", b"rte weights"), ("cola", b"cola weights")):
        _run(work / "teachers-v2" / t, [0.6, 0.55], {"f1": 0.545}, {"f1": 0.617}, 1)
        (work / "teachers-v2" / t / "model.safetensors").write_bytes(weights)
    record = {"bit_identical": True, "checked_on": "2026-12-06"}
    (out / "teacher-reproduction.json").write_text(json.dumps({
        "rte": {**record, "weights_sha256_original": hashlib.sha256(b"rte weights").hexdigest()},
        "cola": {**record, "weights_sha256_original": hashlib.sha256(b"earlier cola weights").hexdigest()}}))
    _collect().main(["--work", str(work), "--shared", str(REPO.parent / "shared"), "--out", str(out)])
    md = (out / "calibration.md").read_text()
    assert "Teachers fine-tuned again from scratch (teacher-reproduction.md): rte bit-identical (2026-12-06)." in md


@pytest.mark.skipif(not (GLUE / "MRPC").is_dir(), reason="needs ../shared/data/glue")
def test_from_json_renders_the_page_again_without_the_work_area(tmp_path):
    """The work area is lost: --from-json re-renders calibration.md from the committed calibration.json
    (a new reproduction record shows) and leaves calibration.json untouched."""
    work, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    _run(work / "teachers-v2" / "rte", [0.6, 0.55], {"f1": 0.545}, {"f1": 0.617}, 1)
    (work / "teachers-v2" / "rte" / "model.safetensors").write_bytes(b"rte weights")
    mod = _collect()
    mod.main(["--work", str(work), "--shared", str(REPO.parent / "shared"), "--out", str(out)])
    before = (out / "calibration.json").read_bytes()
    (out / "teacher-reproduction.json").write_text(json.dumps({"rte": {
        "bit_identical": True, "checked_on": "2026-12-07",
        "weights_sha256_original": hashlib.sha256(b"rte weights").hexdigest()}}))
    mod.main(["--work", str(tmp_path / "lost"), "--out", str(out), "--from-json"])
    assert (out / "calibration.json").read_bytes() == before
    md = (out / "calibration.md").read_text()
    assert "(teacher-reproduction.md): rte bit-identical (2026-12-07)." in md
    assert f"Teacher weights (SHA-256, first 12): rte {hashlib.sha256(b'rte weights').hexdigest()[:12]}" in md


def test_from_json_without_the_json_is_one_line_and_writes_nothing(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _collect().main(["--out", str(tmp_path), "--from-json"])
    assert e.value.code == 2
    assert f"{tmp_path / 'calibration.json'}: missing" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
