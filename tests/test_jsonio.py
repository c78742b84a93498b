"""Strict JSON everywhere (issue 19, point 19): non-finite numbers are written as null, files of
older versions with NaN tokens still read, and the report reads null metrics back as nan."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from layerkd import jsonio
from layerkd.bench.results import Run, TaskInfo

SRC = Path(__file__).resolve().parents[1] / "src" / "layerkd"


def test_non_finite_numbers_become_null_and_numpy_values_numbers():
    obj = {"acc": float("nan"), "loss": float("inf"), "neg": -math.inf, "ok": 0.5, "n": np.int64(3),
           "f32": np.float32(0.25), "bad32": np.float32("nan"), "arr": np.array([1.0, np.nan]), "t": torch.tensor(2.5),
           "nested": [(1, float("nan"))], "flag": True, "none": None}
    text = jsonio.dumps(obj, indent=1)
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"acc": None, "loss": None, "neg": None, "ok": 0.5, "n": 3, "f32": 0.25, "bad32": None,
                                "arr": [1.0, None], "t": 2.5, "nested": [[1, None]], "flag": True, "none": None}
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsonio.dumps({"x": object()})


def test_old_files_with_nan_tokens_still_read(tmp_path):
    p = tmp_path / "demo.json"
    p.write_text('{"rows": [{"pearson": NaN, "mse": Infinity}]}')
    row = jsonio.read_json(p)["rows"][0]
    assert math.isnan(row["pearson"]) and row["mse"] == math.inf


def test_the_report_reads_null_metrics_as_nan(tmp_path):
    run = Run(path=tmp_path / "r.json", key="k", task=TaskInfo("STS-B", "pearson", ("pearson",), True, True),
              student="S", student_spec="bottom:2", method="kd", seed=1, suites=[], teacher={}, wall_seconds=None,
              command="", finished_at="",
              result={"best": {"pearson": None, "spearmanr": 0.5}, "dev_predictions": {"best": [0.5, None]}})
    best = run.metrics("best")
    assert math.isnan(best["pearson"]) and best["spearmanr"] == 0.5
    preds = run.predictions("best")
    assert preds.dtype == float and math.isnan(preds[1])


def test_files_are_written_through_jsonio():
    """No module writes JSON text with the json module's defaults (NaN tokens); json.dumps stays
    only where its text is hashed or deep-copied, and in the checkpoint's exact-round-trip state."""
    offenders = []
    for p in sorted(SRC.rglob("*.py")):
        if p.name == "jsonio.py":
            continue
        for i, line in enumerate(p.read_text().splitlines(), 1):
            if not re.search(r"\bjson\.dumps?\(", line) or line.lstrip().startswith("#"):
                continue
            if re.search(r"json\.dumps\(.*\)\.encode\(\)|sort_keys=True|json\.loads\(json\.dumps\(", line):
                continue  # hashed, or a deep copy: not written
            offenders.append(f"{p.relative_to(SRC)}:{i}: {line.strip()}")
    allowed = {"checkpoint.py"}  # state.json: -inf ("no best epoch yet") must round-trip for --resume
    assert [o for o in offenders if o.split(":")[0] not in allowed] == []
