"""Suite placeholders come only from ``--var`` and ``LAYERKD_SHARED`` / ``LAYERKD_WORK`` (issue 19,
point 9): any other ``LAYERKD_*`` variable used to become a placeholder whose value was written back
into every string and changed every cell key. The recorded keys of the shipped suites still hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from layerkd.bench import suite as suite_mod
from layerkd.bench.suite import load_suite
from layerkd.errors import ConfigError
from test_bench_suite import _suite

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def vars_(tiny_teacher_dir, toy_data):
    return {"data": str(Path(toy_data[0]).parent), "teachers": str(tiny_teacher_dir.parent)}


def _keys(path, variables):
    return [c.key for c in load_suite(path, variables).cells]


def test_other_layerkd_variables_change_no_key(tmp_path, tiny_teacher_dir, toy_data, vars_, monkeypatch):
    p = _suite(tmp_path, tiny_teacher_dir, toy_data, methods=("kd",), seeds=(1,))
    before = _keys(p, vars_)
    for name, value in {"LAYERKD_VERBOSE": "1", "LAYERKD_LANES": "1", "LAYERKD_CACHE": str(tmp_path),
                        "LAYERKD_DATA": "/elsewhere"}.items():
        monkeypatch.setenv(name, value)
    assert _keys(p, vars_) == before
    assert load_suite(p, vars_).variables == vars_  # LAYERKD_DATA did not override --var data


def test_an_unused_var_changes_no_key(tmp_path, tiny_teacher_dir, toy_data, vars_):
    p = _suite(tmp_path, tiny_teacher_dir, toy_data, methods=("kd",), seeds=(1,))
    assert _keys(p, {**vars_, "unused": "1"}) == _keys(p, vars_)


def test_only_shared_and_work_come_from_the_environment(tmp_path, tiny_teacher_dir, toy_data, vars_, monkeypatch):
    p = _suite(tmp_path, tiny_teacher_dir, toy_data, methods=("kd",), seeds=(1,))
    monkeypatch.setenv("LAYERKD_TEACHERS", vars_["teachers"])
    with pytest.raises(ConfigError, match=r"placeholder \$\{teachers\} is not set \(give --var teachers=PATH\)$"):
        load_suite(p, {"data": vars_["data"]})
    # the documented fixed set still works from the environment, and gives the same keys as --var
    spec = p.read_text().replace("${data}", "${shared}").replace("${teachers}", "${work}")
    q = tmp_path / "env.yaml"
    q.write_text(spec)
    monkeypatch.setenv("LAYERKD_SHARED", vars_["data"])
    monkeypatch.setenv("LAYERKD_WORK", vars_["teachers"])
    by_env = load_suite(q)
    assert [c.config.teacher.path for c in by_env.cells] == [str(tiny_teacher_dir)]
    assert [c.key for c in by_env.cells] == _keys(q, {"shared": vars_["data"], "work": vars_["teachers"]})


def _recorded(folder: Path) -> tuple[set[str], dict[str, str]]:
    keys, teachers = set(), {}
    for f in folder.glob("*.json"):
        rec = json.loads(f.read_text())
        keys.add(rec["key"])
        teachers[Path(rec["teacher"]["path"]).name] = rec["teacher"]["fingerprint"]
    return keys, teachers


@pytest.mark.parametrize("name", ["smoke", "cross-arch"])
def test_shipped_suites_keep_their_recorded_cell_keys(name, monkeypatch):
    # every cell of these suites ran; its result file is named by its key. The teachers are not on
    # this machine, so their weight hashes are taken from the recorded results.
    keys, teachers = _recorded(REPO / "benchmarks" / "results" / "cells-t2")
    monkeypatch.setattr(suite_mod, "teacher_hash", lambda path: teachers[Path(path).name])
    monkeypatch.setenv("LAYERKD_VERBOSE", "1")  # as a user debugging would have it
    monkeypatch.setenv("LAYERKD_LANES", "1")  # as benchmarks/run_suites.sh sets it for each lane
    s = load_suite(REPO / "configs" / "suites" / f"{name}.yaml", {"shared": "/nonexistent/shared", "work": "/nonexistent/work"})
    missing = [c.describe() for c in s.cells if c.key not in keys]
    assert s.cells and not missing, f"{len(missing)} of {len(s.cells)} cells got a new key, e.g. {missing[:2]}"
