"""benchmarks/diagnostic_terms.py and its configs: the decomposition of ``internal``'s terms varies
the recipe only, and every number of internal-terms.md comes from the runs' results.json."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from scripts import load_script

REPO = Path(__file__).resolve().parents[1]
TERMS = REPO / "benchmarks" / "results" / "diagnostics" / "terms"


def _terms():
    return load_script("benchmarks/diagnostic_terms.py", "diagnostic_terms")


def test_every_variant_has_a_config_and_only_the_recipe_differs():
    variants = _terms().VARIANTS
    configs = {p.stem: yaml.safe_load(p.read_text()) for p in TERMS.glob("*.yaml")}
    assert set(configs) == set(variants)
    shared = {k: v for k, v in configs["kd"].items() if k != "recipe"}
    for name, cfg in configs.items():
        assert {k: v for k, v in cfg.items() if k != "recipe"} == shared, name
    internal = {n: next((o for o in c["recipe"]["objectives"] if o["name"] == "internal"), None) for n, c in configs.items()}
    assert internal["kd"] is None
    assert (internal["stacked-att"]["kl_weight"], internal["stacked-att"]["cos_weight"]) == (1.0, 0.0)
    assert (internal["stacked-cos"]["kl_weight"], internal["stacked-cos"]["cos_weight"]) == (0.0, 1.0)
    assert {internal[n]["schedule"] for n in ("none", "none-att", "none-cos")} == {"none"}
    # `stacked` is the internal-mean preset as ild-v2 declares it (the weights spelt out at their defaults)
    preset = yaml.safe_load((REPO / "src" / "layerkd" / "presets" / "internal-mean.yaml").read_text())["objectives"]
    for o in preset:
        if o["name"] == "internal":
            o.update(kl_weight=1.0, cos_weight=1.0)
    assert configs["stacked"]["recipe"]["objectives"] == preset

def test_table_reads_the_runs_and_marks_missing_ones(tmp_path):
    run = tmp_path / "out-kd"
    run.mkdir()
    history = [{"epoch": i + 1, "end_of_epoch": True, "pearson": v} for i, v in enumerate([0.31, 0.62, 0.77])]
    (run / "results.json").write_text(json.dumps({
        "main_metric": "pearson", "best": {"pearson": 0.732}, "last": {"pearson": 0.731}, "best_epoch": 3,
        "epochs_run": 3, "history": history, "train_rows": 1600, "selection": {"split": "validation", "best": {"pearson": 0.77}}}))
    (run / "log.jsonl").write_text("\n".join(json.dumps(e) for e in [
        {"event": "start"}, {"event": "train", "step": 20, "term/internal": 2.61, "loss": 2.61},
        {"event": "train", "step": 40, "term/ce": 0.5, "loss": 0.5}, {"event": "train", "step": 60, "term/internal": 1.87}]))
    out = tmp_path / "out"
    out.mkdir()
    _terms().main(["--runs", str(tmp_path), "--out", str(out)])
    md = (out / "internal-terms.md").read_text()
    assert "1,600 training rows" in md
    assert "| kd | 31.0 | 62.0 | 77.0 | 73.2 | 73.1 | 2.61 → 1.87 |" in md
    assert "| stacked | – | – | – | – | – | – |" in md  # not run: shown as missing, never invented
    assert json.loads((out / "internal-terms.json").read_text())["stacked"] is None
