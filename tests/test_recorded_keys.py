"""Every recorded bench cell keeps its key: the golden guard for options added to the config.

A recorded cell stores the config it ran with and its teacher's weights hash. Re-validating that
config with today's code (an option it does not mention takes the value that reproduces the
earlier behaviour, :data:`layerkd.config.ADDED_OPTIONS`) must give back the key the cell is filed
under; otherwise a new option or default silently re-keys finished cells and they run again.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from layerkd.bench.suite import cell_key, substitute
from layerkd.config import ADDED_OPTIONS, validate_run_config

CELLS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
RECORDED = sorted(CELLS.glob("cells*/*.json"))
VARS = {"shared": "/nonexistent/shared", "work": "/nonexistent/work"}


def _with_earlier_values(config: dict) -> dict:
    out = copy.deepcopy(config)
    for path, earlier in ADDED_OPTIONS:
        node = out
        for k in path[:-1]:
            if not isinstance(node.get(k), dict):
                break
            node = node[k]
        else:
            node.setdefault(path[-1], copy.deepcopy(earlier))
    return out


@pytest.mark.skipif(not RECORDED, reason="no recorded cells")
def test_every_recorded_cell_keeps_its_key():
    wrong = []
    for f in RECORDED:
        rec = json.loads(f.read_text())
        cfg = validate_run_config(substitute(_with_earlier_values(rec["config"]), VARS, str(f)))
        if cell_key(cfg, VARS, rec["teacher"]["fingerprint"]) != rec["key"]:
            wrong.append(f.name)
    assert len(RECORDED) > 400 and not wrong, f"{len(wrong)} of {len(RECORDED)} re-keyed, e.g. {wrong[:3]}"
