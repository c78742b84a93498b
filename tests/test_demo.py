"""`layerkd demo` on the generated task (a short version): runs offline and prints the table."""

from __future__ import annotations

import json

from clihelp import run_cli


def _not_json(token: str):
    raise AssertionError(f"demo.json holds {token}, which is not JSON")


def test_demo_runs_and_prints_a_comparison_table(tmp_path, capsys):
    code, out, err = run_cli("demo", "--output-dir", tmp_path / "demo", "--methods", "kd,alp", "--epochs", "2",
                             capsys=capsys)
    assert code == 0, err
    lines = [ln for ln in out.splitlines() if ln.startswith("| ")]
    assert [ln.split("|")[1].strip() for ln in lines[1:]] == ["(teacher)", "kd", "alp"]
    data = json.loads((tmp_path / "demo" / "demo.json").read_text(), parse_constant=_not_json)
    assert [r["method"] for r in data["rows"]] == ["(teacher)", "kd", "alp"]
    assert data["rows"][0]["last"] is None  # the teacher row has no last epoch: null, not a bare NaN
    assert data["rows"][0]["best"] > 0.8  # the teacher learned the task
    for r in data["rows"][1:]:
        assert 0.0 <= r["best"] <= 1.0 and 0.0 <= r["agreement"] <= 1.0
        assert (tmp_path / "demo" / "students" / r["method"] / "metrics.json").exists()
