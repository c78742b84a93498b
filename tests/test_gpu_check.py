"""``benchmarks/gpu_check.sh --dry-run``: the GPU check's steps on the CPU (tiny shapes, toy data),
so the script cannot rot before a GPU machine runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_passes_and_writes_every_section(tmp_path):
    out = tmp_path / "gpu.md"
    gpu_md = REPO / "benchmarks" / "results" / "gpu.md"
    before = gpu_md.stat().st_mtime_ns if gpu_md.exists() else None
    env = {**os.environ, "LAYERKD_CACHE": str(tmp_path / "cache")}
    p = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    text = out.read_text()
    for section in ("# GPU check (dry run on CPU)", "## Environment", "- device: cpu (dry run)", "## a. Device tests",
                    "## b. Speed rows (bf16)", "## c. Distillation on real data"):
        assert section in text, section
    rep = json.loads(out.with_suffix(".json").read_text())
    steps = rep["steps"]
    assert all(s["ok"] for s in steps.values())
    # the device tests are selected by their marker (collected only in a dry run)
    assert "-m device" in steps["tests"]["command"] and "tests collected" in steps["tests"]["summary"]
    # speed.py ran its rows in bf16, the cached row with its build round, each ratio against ce
    assert "--precision bf16" in steps["speed"]["command"]
    assert set(steps["speed"]["rows"]) == {"ce", "alp"} and steps["speed"]["rows"]["ce"]["ratio"] == 1.0
    assert steps["speed"]["rows"]["alp"]["build"] is not None and steps["speed"]["rows"]["alp"]["steps"] == 3
    assert [x["summary"].split(" (")[0] for x in steps["distill"]["parts"]] == ["teacher", "student"]
    assert "| c. Distillation on real data | teacher (finetune, 1 epoch): dev accuracy" in text
    assert str(REPO) not in text and "$WORK/speed-teacher" in text  # no machine paths in a report meant to be committed
    # the recorded GPU report is left alone
    assert (gpu_md.stat().st_mtime_ns if gpu_md.exists() else None) == before


def test_gpu_check_refuses_a_real_run_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        return  # on a GPU machine the real run is the check itself
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path / "x.md")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "no CUDA device" in p.stderr
    assert not (tmp_path / "x.md").exists()
