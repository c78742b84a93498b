"""Suites: grid expansion, stable cell keys, placeholders, resume/skip of finished cells."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from layerkd import toy
from layerkd.bench.runner import cell_env, format_plan, plan, run_suite
from layerkd.bench.store import claim_cell, finished_results
from layerkd.bench.suite import load_suite
from layerkd.errors import ConfigError


def _suite(tmp_path: Path, teacher: Path, data, *, name="s", methods=("ce", "kd"), seeds=(1, 2), lr=3e-3,
           extra: dict | None = None) -> Path:
    train, dev = data
    spec = {
        "name": name,
        "base": {"data": {"train_file": "${data}/" + Path(train).name, "dev_file": "${data}/" + Path(dev).name},
                 "train": {"epochs": 1, "lr": lr, "batch_size": 16, "max_length": 32, "warmup_ratio": 0.0}},
        "tasks": {"toy": {"teacher": "${teachers}/" + teacher.name, "overrides": {"task": toy.TOY_TASK}}},
        "students": {"S2": "bottom:2"},
        "methods": list(methods),
        "seeds": list(seeds),
        **(extra or {}),
    }
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(spec, sort_keys=False))
    return p


@pytest.fixture
def vars_(tiny_teacher_dir, toy_data):
    return {"data": str(Path(toy_data[0]).parent), "teachers": str(tiny_teacher_dir.parent)}


def test_grid_expansion_order_and_values(tmp_path, tiny_teacher_dir, toy_data, vars_):
    p = _suite(tmp_path, tiny_teacher_dir, toy_data, methods=("ce", "kd", {"label": "pkd-w1", "method": "pkd",
                                                                           "overrides": {"train": {"lr": 1e-3}}}))
    s = load_suite(p, vars_)
    assert [(c.method, c.seed) for c in s.cells] == [("ce", 1), ("ce", 2), ("kd", 1), ("kd", 2), ("pkd-w1", 1), ("pkd-w1", 2)]
    c = s.cells[-1]
    assert c.config.train.seed == 2 and c.config.train.lr == 1e-3 and c.config.method == "pkd"
    assert c.config.data.train_file == str(Path(vars_["data"]) / Path(toy_data[0]).name)
    assert c.config.teacher.path == str(tiny_teacher_dir) and c.teacher_hash
    assert len({c.key for c in s.cells}) == 6


def test_keys_are_stable_and_depend_only_on_what_is_trained(tmp_path, tiny_teacher_dir, toy_data, vars_):
    a = load_suite(_suite(tmp_path, tiny_teacher_dir, toy_data, name="a"), vars_)
    b = load_suite(_suite(tmp_path, tiny_teacher_dir, toy_data, name="b", methods=("kd",)), vars_)
    again = load_suite(_suite(tmp_path, tiny_teacher_dir, toy_data, name="a"), vars_)
    assert [c.key for c in a.cells] == [c.key for c in again.cells]
    # the suite name is not part of the key: the kd cells are shared between a and b
    assert [c.key for c in b.cells] == [c.key for c in a.cells if c.method == "kd"]
    # moving the data and teachers elsewhere (same contents) keeps the keys
    moved = tmp_path / "moved"
    shutil.copytree(Path(vars_["data"]), moved / "data")
    shutil.copytree(tiny_teacher_dir, moved / "teachers" / tiny_teacher_dir.name)
    m = load_suite(_suite(tmp_path, tiny_teacher_dir, toy_data, name="a"),
                   {"data": str(moved / "data"), "teachers": str(moved / "teachers")})
    assert [c.key for c in m.cells] == [c.key for c in a.cells]
    # a hyper-parameter or the teacher's weights change the key
    lr = load_suite(_suite(tmp_path, tiny_teacher_dir, toy_data, name="a", lr=1e-3), vars_)
    assert not {c.key for c in lr.cells} & {c.key for c in a.cells}
    w = moved / "teachers" / tiny_teacher_dir.name / "model.safetensors"
    raw = bytearray(w.read_bytes())
    raw[-1] ^= 1
    w.write_bytes(bytes(raw))
    changed = load_suite(_suite(tmp_path, tiny_teacher_dir, toy_data, name="a"),
                         {"data": str(moved / "data"), "teachers": str(moved / "teachers")})
    assert not {c.key for c in changed.cells} & {c.key for c in a.cells}


def test_bad_suites_are_one_line_errors(tmp_path, tiny_teacher_dir, toy_data, vars_):
    p = _suite(tmp_path, tiny_teacher_dir, toy_data)
    with pytest.raises(ConfigError, match=r"placeholder \$\{teachers\} is not set"):
        load_suite(p, {"data": vars_["data"]})
    p2 = _suite(tmp_path, tiny_teacher_dir, toy_data, name="bad", extra={"sedes": [1]})
    with pytest.raises(ConfigError, match="sedes: unknown key"):
        load_suite(p2, vars_)
    p3 = _suite(tmp_path, tiny_teacher_dir, toy_data, name="dup", methods=("kd", {"label": "kd2", "method": "kd"}))
    with pytest.raises(ConfigError, match="same config"):
        load_suite(p3, vars_)
    p4 = _suite(tmp_path, tiny_teacher_dir, toy_data, name="badlr", lr=-1)
    with pytest.raises(ConfigError, match=r"train\.lr"):
        load_suite(p4, vars_)


def test_run_resume_and_skip(tmp_path, tiny_teacher_dir, toy_data, vars_, monkeypatch):
    monkeypatch.setenv("LAYERKD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    s = load_suite(_suite(tmp_path, tiny_teacher_dir, toy_data, methods=("kd",)), vars_)
    results = tmp_path / "results"
    assert [r.status for r in plan(s, results)] == ["todo", "todo"]
    counts = run_suite(s, results, echo=lambda m: None)
    assert counts == {"ran": 2, "skipped": 0, "running": 0, "failed": 0, "no_teacher": 0}
    recs = {r["key"]: r for r in finished_results(results)}
    assert set(recs) == {c.key for c in s.cells}
    r = recs[s.cells[0].key]
    assert r["cell"] == {"task": "toy", "student": "S2", "student_spec": "bottom:2", "method": "kd", "seed": 1}
    assert r["config"]["data"]["train_file"].startswith("${data}/")  # placeholders written back
    res = r["result"]
    assert len(res["dev_predictions"]["best"]) == len(res["dev_labels"]) > 0
    assert res["environment"]["torch"] and res["student_params"] > 0 and r["wall_seconds"] > 0
    assert not (results / "runs" / s.cells[0].key).exists()  # model directory removed after success
    stamps = {p: p.stat().st_mtime_ns for p in results.glob("*.json")}
    # a second suite sharing one cell, plus a new seed: only the new cell runs
    s2 = load_suite(_suite(tmp_path, tiny_teacher_dir, toy_data, name="other", methods=("kd",), seeds=(2, 3)), vars_)
    assert [r.status for r in plan(s2, results)] == ["done", "todo"]
    assert "done" in format_plan(plan(s2, results)) and "estimated time left" in format_plan(plan(s2, results))
    counts = run_suite(s2, results, echo=lambda m: None)
    assert counts["ran"] == 1 and counts["skipped"] == 1
    shared_key = s2.cells[0].key
    assert json.loads((results / f"{shared_key}.json").read_text())["suites"] == ["s", "other"]
    assert (results / f"{s.cells[0].key}.json").stat().st_mtime_ns == stamps[results / f"{s.cells[0].key}.json"]


def test_failed_cell_is_recorded_and_the_suite_goes_on(tmp_path, tiny_teacher_dir, toy_data, vars_, monkeypatch):
    monkeypatch.setenv("LAYERKD_CACHE", str(tmp_path / "cache"))
    # a student deeper than the teacher is refused at plan time → the subprocess exits 2
    p = _suite(tmp_path, tiny_teacher_dir, toy_data, methods=("ce",), seeds=(1,),
               extra={"students": {"deep": "layers:1,2,3,4,5,6,7,8,9"}})
    s = load_suite(p, vars_)
    results = tmp_path / "results"
    counts = run_suite(s, results, echo=lambda m: None)
    assert counts["failed"] == 1 and counts["ran"] == 0
    failure = json.loads((results / f"{s.cells[0].key}.failed.json").read_text())
    assert failure["returncode"] == 2 and any("layer" in line for line in failure["tail"])
    assert [r.status for r in plan(s, results)] == ["failed"]
    assert finished_results(results) == []


def test_format_plan_columns_stay_aligned_with_long_labels():
    from layerkd.bench.runner import CellStatus
    from layerkd.bench.suite import Cell

    rows = [CellStatus(Cell("mrpc", "L3-pretrained", "x", "universal+rail", 1, None, key="a" * 16), "todo", 402.0),
            CellStatus(Cell("sst-2", "L2", "bottom:2", "ce", 2, None, key="b" * 16), "done", 60.0, False)]
    lines = format_plan(rows).splitlines()
    header, first, second = lines[:3]
    # every column starts at the same offset in the header and in each row
    for col, values in (("student", ("L3-pretrained", "L2")), ("method", ("universal+rail", "ce")),
                        ("status", ("todo", "done"))):
        at = header.index(col)
        assert first.index(values[0]) == at and second.index(values[1], 17) == at
    assert first.endswith("6.7 min") and second.endswith("~1.0 min")
    assert "2 cells: 1 done, 1 todo" in lines[-2] and "0.1 h for 1 cells" in lines[-1]
    rows.append(CellStatus(Cell("rte", "L2", "bottom:2", "kd", 1, None, key="c" * 16), "todo", 1440.0))
    assert format_plan(rows, workers=2).splitlines()[-1] == "estimated time left: 0.5 h for 2 cells (0.3 h with 2 workers)"


def _launches(results: Path, key: str) -> int:
    """How many times a cell's subprocess was started (run_cell writes one '# <time> <command>' line each)."""
    log = results / "runs" / f"{key}.log"
    return sum(line.startswith("# ") and " distill " in line for line in log.read_text().splitlines()) if log.exists() else 0


def test_a_claimed_cell_is_left_to_the_process_holding_it(tmp_path, tiny_teacher_dir, toy_data, vars_, monkeypatch):
    monkeypatch.setenv("LAYERKD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    s = load_suite(_suite(tmp_path, tiny_teacher_dir, toy_data, methods=("ce",)), vars_)
    results = tmp_path / "results"
    held, free = s.cells
    with claim_cell(results, held.key) as mine:  # as another bench process would while it trains the cell
        assert mine
        with claim_cell(results, held.key) as again:
            assert not again  # a second claim fails at once instead of waiting
        assert [r.status for r in plan(s, results)] == ["running", "todo"]
        assert "1 running" in format_plan(plan(s, results))
        assert format_plan(plan(s, results)).endswith("for 0 cells + 1 cells without an estimate")  # running: not left
        counts = run_suite(s, results, echo=lambda m: None)
    assert counts == {"ran": 1, "skipped": 0, "running": 1, "failed": 0, "no_teacher": 0}
    assert not (results / f"{held.key}.json").exists() and _launches(results, held.key) == 0
    assert (results / f"{free.key}.json").exists()
    assert [r.status for r in plan(s, results)] == ["todo", "done"]  # released: the next bench runs it


def test_workers_run_every_cell_exactly_once(tmp_path, tiny_teacher_dir, toy_data, vars_, monkeypatch):
    monkeypatch.setenv("LAYERKD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    s = load_suite(_suite(tmp_path, tiny_teacher_dir, toy_data, methods=("ce", "kd"), seeds=(1,)), vars_)
    results = tmp_path / "results"
    counts = run_suite(s, results, workers=3, echo=lambda m: None)  # more workers than cells
    assert counts == {"ran": 2, "skipped": 0, "running": 0, "failed": 0, "no_teacher": 0}
    assert {r["key"] for r in finished_results(results)} == {c.key for c in s.cells}
    assert [_launches(results, c.key) for c in s.cells] == [1, 1]
    with pytest.raises(ValueError, match="workers"):
        run_suite(s, results, workers=0)


@pytest.fixture
def sigint_raises():
    """Python's own SIGINT handler for the test: a process started in the background from a
    non-interactive shell (nohup …&, some CI runners) inherits SIGINT *ignored*."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_with_workers_starts_no_new_cell(tmp_path, tiny_teacher_dir, toy_data, vars_, monkeypatch, sigint_raises):
    import signal
    import threading
    import time

    from layerkd.bench import runner

    s = load_suite(_suite(tmp_path, tiny_teacher_dir, toy_data, methods=("ce", "kd"), seeds=(1, 2, 3)), vars_)
    started = []

    def fake_run_cell(c, *a, **k):  # stands in for a cell's subprocess; the first one is interrupted
        started.append(c.key)
        if len(started) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # to the whole process, as a terminal's Ctrl-C
        time.sleep(0.3)
        return {"result": {"main_metric": "m", "best": {"m": 1.0}, "last": {"m": 1.0}}, "wall_seconds": 0.3}

    monkeypatch.setattr(runner, "run_cell", fake_run_cell)
    with pytest.raises(KeyboardInterrupt):
        run_suite(s, tmp_path / "results", workers=2, echo=lambda m: None)
    assert len(started) <= 2  # the two workers' first cells, nothing after
    # and no worker thread is left behind (by name: other libraries may start threads of their own,
    # which made a thread count flaky in CI)
    assert [t.name for t in threading.enumerate() if t.name.startswith("layerkd-bench-")] == []


def test_sigint_while_workers_start_is_held_until_they_all_have(sigint_raises):
    import signal

    from layerkd.bench.runner import _sigint_deferred

    after = []
    with pytest.raises(KeyboardInterrupt):
        with _sigint_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            after.append("still running")  # the block is not cut short: every thread gets started
    assert after == ["still running"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is restored
    with _sigint_deferred():  # and without a signal nothing is raised
        after.append("quiet")
    assert after == ["still running", "quiet"]


def test_two_bench_processes_share_one_results_directory(tmp_path, tiny_teacher_dir, toy_data, vars_):
    suite = _suite(tmp_path, tiny_teacher_dir, toy_data, methods=("ce",), seeds=(1, 2, 3))
    results = tmp_path / "results"
    env = {**os.environ, "LAYERKD_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "layerkd.cli", "bench", str(suite), "--results", str(results),
           "--var", f"data={vars_['data']}", "--var", f"teachers={vars_['teachers']}"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    ran = [int(out.split("ran ")[1].split(",")[0]) for out, _ in outs]
    assert sum(ran) == 3  # between them every cell ran, none twice
    keys = [c.key for c in load_suite(suite, vars_).cells]
    assert [_launches(results, k) for k in keys] == [1, 1, 1]
    assert len(finished_results(results)) == 3


def test_cell_env_splits_the_cores_between_workers():
    assert cell_env(1, {}, cpus=8) is None  # one cell at a time: inherit the environment
    assert cell_env(2, {"PATH": "/bin"}, cpus=8) == {"PATH": "/bin", "OMP_NUM_THREADS": "4"}
    assert cell_env(3, {}, cpus=2)["OMP_NUM_THREADS"] == "1"  # never below one thread
    assert cell_env(4, {"OMP_NUM_THREADS": "2"}, cpus=16) is None  # the user's setting wins


SHIPPED = sorted((Path(__file__).resolve().parents[1] / "configs" / "suites").glob("*.yaml"))


@pytest.mark.parametrize("suite_file", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_suites_pin_the_teacher_heads_fit_their_cells_were_run_with(suite_file):
    # The recorded cells fitted unstandardised heads (the default until 2026-11-30). The library
    # default is now true; a suite that lost its pin would silently re-key every recorded cell.
    suite = load_suite(suite_file, {"shared": "/nonexistent/shared", "work": "/nonexistent/work"})
    assert suite.cells
    for cell in suite.cells:
        # the declared ablation rows; v2 suites use today's default (standardised heads)
        expected = cell.method.endswith("-std") or suite.name.endswith("-v2")
        assert cell.config.teacher.fit_heads.standardize is expected, cell.describe()


@pytest.mark.parametrize("suite_file", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_v1_suites_pin_selection_on_dev_and_v2_suites_carve_a_validation_split(suite_file):
    # The recorded v1 cells chose their best epoch on GLUE dev; the v2 suites select on a split
    # carved from the training set and report GLUE dev as the test set.
    suite = load_suite(suite_file, {"shared": "/nonexistent/shared", "work": "/nonexistent/work"})
    expected = "carve" if suite.name.endswith("-v2") else "eval"
    assert {c.config.data.validation.source for c in suite.cells} == {expected}
