"""benchmarks/inference.py --smoke: tiny random models of every student kind, latency and
throughput rows (torch, and ONNX Runtime fp32/int8 where ``layerkd export`` exists), each with
its recorded dev metric and size on disk."""

from __future__ import annotations

import json

from scripts import load_script


def _load():
    return load_script("benchmarks/inference.py", "inference_bench")


def test_inference_smoke_measures_every_kind_with_its_metric_and_size(tmp_path):
    inference = _load()
    inference.main(["--smoke", "--quiet", "--out", str(tmp_path / "inference")])
    rep = json.loads((tmp_path / "inference.json").read_text())
    rows = rep["rows"]
    torch_rows = {r["model"] for r in rows.values() if r["backend"] == "torch"}
    assert torch_rows == {"teacher", "L2", "L3", "bilstm", "cnn"}
    for r in rows.values():
        assert 0 < r["p50_ms"] <= r["p95_ms"] and r["examples_per_s"] > 0 and r["size_mb"] > 0
        assert r["dev"]["metric"] == "accuracy"  # main metric named by results.json, value from metrics.json
    assert rows["teacher/torch"]["speedup_p50"] == 1.0 and rows["teacher/torch"]["dev"]["value"] == 0.5
    assert rows["L2/torch"]["dev"]["value"] == 0.55 and rows["cnn/torch"]["dev"]["value"] == 0.7
    # parameters and weight files follow the model: the 2-layer student is smaller than the 3-layer one
    assert rows["L2/torch"]["params"] < rows["L3/torch"]["params"] < rows["teacher/torch"]["params"]
    assert rows["L2/torch"]["size_mb"] < rows["L3/torch"]["size_mb"] < rows["teacher/torch"]["size_mb"]
    if inference.export_available():
        assert {b for r in rows.values() if r["model"] == "L2" for b in [r["backend"]]} == {"torch", "onnx-fp32", "onnx-int8"}
        assert rows["L2/onnx-int8"]["size_mb"] < rows["L2/onnx-fp32"]["size_mb"]
        assert 0 <= rows["L2/onnx-fp32"]["graph_metric"] <= 1  # the exported graph's own score from export.json
    else:
        assert any("no `layerkd export`" in n for n in rep["notes"])
    md = (tmp_path / "inference.md").read_text()
    assert "| model | backend | params | size on disk (MB) | dev metric | p50 batch 1 (ms) | p95 batch 1 (ms)" in md
    assert "| cnn | torch |" in md and "accuracy 0.7000" in md and "smoke run" in md
    assert rep["settings"]["max_length"] == 32 and rep["versions"]["torch"]
