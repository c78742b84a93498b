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
