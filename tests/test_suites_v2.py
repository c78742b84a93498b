"""The v2 suite files as committed: ood-v2 selects ild-v2's MRPC cells, and every layer vector is mean-pooled."""

from pathlib import Path

import pytest

from layerkd.bench.suite import load_suite
from layerkd.stages.distill import resolve_recipe

SUITES = Path(__file__).resolve().parents[1] / "configs" / "suites"
V2 = ("ild-v2", "ood-v2", "pretrained-student-v2")


def _load(name: str, tmp_path: Path):
    # teachers and data need not exist: a missing teacher gets a placeholder fingerprint in the key
    return load_suite(SUITES / f"{name}.yaml", {"shared": str(tmp_path / "shared"), "work": str(tmp_path / "work")})


def test_ood_v2_cells_are_ild_v2_mrpc_cells(tmp_path):
    ild = {c.key for c in _load("ild-v2", tmp_path).cells if c.task == "mrpc"}
    ood = {c.key for c in _load("ood-v2", tmp_path).cells}
    assert len(ood) == 40 and ood == ild  # editing one file without the other would run 40 more cells


@pytest.mark.parametrize("name", V2)
def test_v2_layer_vectors_and_heads_are_mean_pooled(name, tmp_path):
    """On MiniLM teachers the lower [CLS] vectors are one direction for every input: no v2 cell may match them."""
    layer_objectives = {"pkd", "alp", "ckd", "rail", "universal", "internal"}
    seen = set()
    for c in _load(name, tmp_path).cells:
        for o in resolve_recipe(c.config).recipe.objectives:
            if o.name in layer_objectives:
                seen.add(o.name)
                assert o.options.get("pooling") == "mean", f"{name}: {c.method} {o.name} pooling {o.options.get('pooling')}"
                if o.name == "universal":
                    assert c.config.teacher.fit_heads.pooling == "mean", f"{name}: {c.method} teacher heads"
    assert {"pkd", "alp", "rail", "universal"} <= seen
