"""`layerkd demo` on the generated task (a short version): runs offline, prints the table with its
explanation, draws demo.png, and a rerun starts from scratch (no student of an earlier demo left)."""

from __future__ import annotations

import json

import pytest

from clihelp import run_cli
from layerkd.errors import ConfigError
from layerkd.stages import demo_tour

PNG = b"\x89PNG\r\n\x1a\n"


def _not_json(token: str):
    raise AssertionError(f"demo.json holds {token}, which is not JSON")


def test_demo_runs_explains_draws_and_reruns_from_scratch(tmp_path, capsys, monkeypatch):
    demo = tmp_path / "demo"
    code, out, err = run_cli("demo", "--output-dir", demo, "--methods", "kd,alp", "--epochs", "2", capsys=capsys)
    assert code == 0, err
    lines = [ln for ln in out.splitlines() if ln.startswith("| ")]
    assert [ln.split("|")[1].strip() for ln in lines[1:]] == ["(teacher)", "kd", "alp"]
    data = json.loads((demo / "demo.json").read_text(), parse_constant=_not_json)
    assert [r["method"] for r in data["rows"]] == ["(teacher)", "kd", "alp"]
    assert data["rows"][0]["last"] is None  # the teacher row has no last epoch: null, not a bare NaN
    assert data["rows"][0]["best"] > 0.8  # the teacher learned the task
    for r in data["rows"][1:]:
        assert 0.0 <= r["best"] <= 1.0 and 0.0 <= r["agreement"] <= 1.0
        assert (demo / "students" / r["method"] / "metrics.json").exists()
        assert len(r["validation_curve"]) == 2  # one validation score per epoch
    # the explanation, with this run's numbers
    assert "How to read this." in out
    kd, alp = data["rows"][1], data["rows"][2]
    left = [f"{r['method']} " + ("never" if r["left_chance"] is None else f"epoch {r['left_chance']}") for r in (kd, alp)]
    flat = " ".join(out.split())
    assert f"first >= {data['majority'] + 0.1:.2f}: {left[0]}." in flat and f": {left[1]}." in flat
    # the figure beside demo.json, named in the output
    png = demo / "demo.png"
    assert png.read_bytes()[:8] == PNG and png.stat().st_size > 10_000
    assert f"figure: {png}" in out

    # a rerun with fewer methods: the earlier demo is replaced whole (and without matplotlib, no figure, one line)
    def no_matplotlib():
        raise ConfigError("figures need matplotlib: pip install 'layerkd[plots]'")

    monkeypatch.setattr("layerkd.bench.figures.require_matplotlib", no_matplotlib)
    code, out, err = run_cli("demo", "--output-dir", demo, "--methods", "kd", "--epochs", "1", capsys=capsys)
    assert code == 0, err
    assert "replaced the earlier demo" in err
    assert sorted(p.name for p in (demo / "students").iterdir()) == ["kd"]
    assert [r["method"] for r in json.loads((demo / "demo.json").read_text())["rows"]] == ["(teacher)", "kd"]
    assert not png.exists()
    assert "no figure: figures need matplotlib: pip install 'layerkd[plots]'" in out.splitlines()


def test_demo_refuses_a_folder_it_did_not_make(tmp_path, capsys):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    code, _, err = run_cli("demo", "--output-dir", other, "--methods", "kd", "--epochs", "1", capsys=capsys)
    assert code == 2 and "was not created by layerkd" in err
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(("curve", "expected"), [([0.52, 0.58, 0.61], 3), ([0.5, 0.55], None), ([0.7], 1)])
def test_left_chance_is_the_first_epoch_ten_points_above_the_majority(curve, expected):
    assert demo_tour.left_chance(curve, 0.505) == expected


def test_the_explanation_says_what_this_run_shows():
    rows = [{"method": "(teacher)", "best": 0.99, "metric": "accuracy", "left_chance": 4},
            {"method": "ce", "best": 0.53, "metric": "accuracy", "left_chance": None},
            {"method": "kd", "best": 0.74, "metric": "accuracy", "left_chance": 3},
            {"method": "alp", "best": 0.93, "metric": "accuracy", "left_chance": 2}]
    text = " ".join(demo_tour.explain(rows, 0.53).split())
    assert "Validation accuracy first >= 0.63: ce never, kd epoch 3." in text
    assert "Here ce never left chance within the run" in text and "kd left it and reached 0.74" in text
    assert "alp also match the student's per-layer vectors" in text and "first >= 0.63: alp epoch 2." in text
    assert "hold a student back" not in text  # alp did not end below ce/kd here
    rows[3]["best"] = 0.70
    assert "here alp ended below ce/kd" in " ".join(demo_tour.explain(rows, 0.53).split())
