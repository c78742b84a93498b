"""benchmarks/calibration/reproduce.py: a rerun teacher is called bit-identical only when its weights
hash the same; any differing results field (timing aside) is named; records merge per task."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from scripts import load_script


def _reproduce():
    return load_script("benchmarks/calibration/reproduce.py", "calibration_reproduce")


def _teacher(path: Path, weights: bytes, best: float, seconds: float) -> None:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(weights)
    (path / "results.json").write_text(json.dumps({
        "best": {"accuracy": best}, "train_seconds": seconds,
        "environment": {"layerkd": "0.1.0", "torch": "2.13.0+cpu", "transformers": "5.25.0", "torch_threads": 1}}))


def test_identical_rerun_is_recorded_and_timing_is_ignored(tmp_path):
    _teacher(tmp_path / "a" / "rte", b"weights", 0.545, 1074.2)
    _teacher(tmp_path / "b" / "rte", b"weights", 0.545, 1832.6)
    out = tmp_path / "out"
    rc = _reproduce().main(["--original", str(tmp_path / "a"), "--rerun", str(tmp_path / "b"), "--out", str(out),
                            "--note", "resumed original", "rte"])
    assert rc == 0
    rec = json.loads((out / "teacher-reproduction.json").read_text())["rte"]
    assert rec["bit_identical"] is True
    assert rec["weights_sha256_rerun"] == hashlib.sha256(b"weights").hexdigest()
    assert rec["results_fields_differing"] == []
    assert rec["teacher"] == "teachers-v2/rte"
    md = (out / "teacher-reproduction.md").read_text()
    assert f"| rte | {rec['checked_on']} | {rec['weights_sha256_original'][:12]} |" in md
    assert "| yes | none |" in md and "resumed original" in md
    assert str(tmp_path) not in md + (out / "teacher-reproduction.json").read_text()


def test_different_weights_or_scores_fail_and_merge_with_earlier_records(tmp_path):
    _teacher(tmp_path / "a" / "rte", b"weights", 0.545, 1.0)
    _teacher(tmp_path / "b" / "rte", b"weights", 0.545, 2.0)
    _teacher(tmp_path / "a" / "cola", b"weights", 0.30, 1.0)
    _teacher(tmp_path / "b" / "cola", b"weights, one bit off", 0.31, 1.0)
    out = tmp_path / "out"
    mod = _reproduce()
    assert mod.main(["--original", str(tmp_path / "a"), "--rerun", str(tmp_path / "b"), "--out", str(out), "rte"]) == 0
    assert mod.main(["--original", str(tmp_path / "a"), "--rerun", str(tmp_path / "b"), "--out", str(out), "cola"]) == 1
    recs = json.loads((out / "teacher-reproduction.json").read_text())
    assert sorted(recs) == ["cola", "rte"]
    assert recs["cola"]["bit_identical"] is False
    assert recs["cola"]["results_fields_differing"] == ["best"]
    assert "| **no** | best |" in (out / "teacher-reproduction.md").read_text()


synthetic = load_script("tests/fixtures/bench/synthetic.py", "bench_synthetic")


def _cell(cells: Path, name: str, task: str, weights: bytes, best: float, preds: list[int], method: str = "ce") -> None:
    """A committed cell result (the report's schema) that ran on the teacher with these weights."""
    cells.mkdir(parents=True, exist_ok=True)
    metric = synthetic.TASKS[task][1]
    rec = synthetic.record(task=task, student="L2", method=method, seed=1, key=name.ljust(16, "0"))
    rec["teacher"] = {"path": f"${{work}}/teachers-v2/{task}", "fingerprint": hashlib.sha256(weights).hexdigest(),
                      "best": {metric: best}, "last": {metric: best}, "dev_predictions": preds}
    (cells / f"{rec['key']}.json").write_text(json.dumps(rec))


def _rebuilt(path: Path, weights: bytes, best: float, preds: list[int], metric: str = "f1") -> None:
    _teacher(path, weights, best, 5.0)
    res = json.loads((path / "results.json").read_text())
    res.update(best={metric: best}, last={metric: best}, dev_predictions={"best": preds, "last": preds})
    (path / "results.json").write_text(json.dumps(res))


def test_a_rebuilt_teacher_is_checked_against_what_the_committed_cells_recorded(tmp_path):
    """The work area was lost: the rebuilt teacher must match the hash in the cells' keys, and its
    scores and test predictions must match those the cells recorded; a one-label change is named."""
    cells = tmp_path / "cells"
    _cell(cells, "a", "mrpc", b"w", 0.898, [1, 0, 1])
    _cell(cells, "b", "mrpc", b"w", 0.898, [1, 0, 1], method="kd")
    _cell(cells, "c", "sts-b", b"other", 0.5, [0])
    _rebuilt(tmp_path / "work" / "mrpc", b"w", 0.898, [1, 0, 1])
    out = tmp_path / "out"
    mod = _reproduce()
    assert mod.main(["--recorded", str(cells), "--rerun", str(tmp_path / "work"), "--out", str(out), "mrpc"]) == 0
    rec = json.loads((out / "teacher-reproduction.json").read_text())["mrpc"]
    assert rec["bit_identical"] is True and rec["results_fields_differing"] == []
    assert rec["original"] == "recorded in 2 committed cells"
    assert "original: recorded in 2 committed cells" in (out / "teacher-reproduction.md").read_text()

    _rebuilt(tmp_path / "work2" / "mrpc", b"w2", 0.898, [1, 1, 1])
    assert mod.main(["--recorded", str(cells), "--rerun", str(tmp_path / "work2"), "--out", str(out), "mrpc"]) == 1
    rec = json.loads((out / "teacher-reproduction.json").read_text())["mrpc"]
    assert rec["bit_identical"] is False and rec["results_fields_differing"] == ["dev_predictions.best"]


def test_recorded_check_refuses_a_task_without_cells_or_with_two_teachers(tmp_path, capsys):
    cells = tmp_path / "cells"
    _cell(cells, "a", "sts-b", b"w", 0.3, [0])
    _cell(cells, "b", "sts-b", b"w-changed", 0.3, [0], method="kd")
    _rebuilt(tmp_path / "work" / "sts-b", b"w", 0.3, [0], "pearson")
    mod = _reproduce()
    for task, expected in (("rte", "no cell of task 'rte'"), ("sts-b", "2 different teacher hashes")):
        try:
            mod.main(["--recorded", str(cells), "--rerun", str(tmp_path / "work"), "--out", str(tmp_path / "o"), task])
        except SystemExit as e:
            assert e.code == 2
        else:
            raise AssertionError("expected exit code 2")
        assert expected in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_scores_equal_to_the_last_digits_match_but_a_real_difference_does_not():
    same = _reproduce().same
    assert same({"pearson": 0.8573632777461881}, {"pearson": 0.857363277746188})  # one unit in the last place
    assert not same({"pearson": 0.8573632777461881}, {"pearson": 0.8573632777})
    assert not same({"pearson": 0.857}, {"pearson": 0.857, "spearmanr": 0.85})
    assert not same([1, 0, 1], [1, 1, 1]) and same([1, 0], [1, 0])
