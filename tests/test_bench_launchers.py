"""``layerkd bench --launcher submitit``: one job per cell through submitit, run for real with its
local executor on a tiny suite; the same result files as the local runner, the same skip of
finished cells, the same claims."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from clihelp import assert_user_error, run_cli
from layerkd import toy
from layerkd.bench.launchers import SubmititOptions, check_options, job_env, make_executor, submit_suite
from layerkd.bench.runner import plan, run_suite
from layerkd.bench.store import claim_cell, finished_results
from layerkd.bench.suite import load_suite
from layerkd.errors import ConfigError

submitit = pytest.importorskip("submitit")


def _suite(tmp_path: Path, teacher: Path, data, students: dict, methods=("ce",)) -> Path:
    train, dev = data
    spec = {
        "name": "cluster",
        "base": {"data": {"train_file": "${data}/" + Path(train).name, "dev_file": "${data}/" + Path(dev).name},
                 "train": {"epochs": 1, "lr": 3e-3, "batch_size": 16, "max_length": 32, "warmup_ratio": 0.0}},
        "tasks": {"toy": {"teacher": "${teachers}/" + teacher.name, "overrides": {"task": toy.TOY_TASK}}},
        "students": students, "methods": list(methods), "seeds": [1],
    }
    p = tmp_path / "cluster.yaml"
    p.write_text(yaml.safe_dump(spec, sort_keys=False))
    return p


@pytest.fixture
def vars_(tiny_teacher_dir, toy_data):
    return {"data": str(Path(toy_data[0]).parent), "teachers": str(tiny_teacher_dir.parent)}


def _keys(d, depth=2, prefix=""):
    """The nested key paths of a record, ``depth`` levels deep."""
    out = set()
    for k, v in d.items():
        out.add(prefix + k)
        if isinstance(v, dict) and depth > 1:
            out |= _keys(v, depth - 1, prefix + k + ".")
    return out


@pytest.mark.slow
def test_submitit_local_executor_runs_a_suite_like_the_local_runner(tmp_path, tiny_teacher_dir, toy_data, vars_,
                                                                     monkeypatch, capsys):
    monkeypatch.setenv("LAYERKD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # S2 trains; "deep" (more layers than the 4-layer teacher) fails in its subprocess with exit 2
    s = load_suite(_suite(tmp_path, tiny_teacher_dir, toy_data, {"S2": "bottom:2", "deep": "layers:1,2,3,4,5,6,7,8,9"}),
                   vars_)
    good, bad = s.cells
    local_dir, cluster_dir = tmp_path / "local", tmp_path / "cluster"
    only_good = load_suite(s.path, vars_)
    only_good.cells = [good]
    assert run_suite(only_good, local_dir, echo=lambda m: None)["ran"] == 1

    lines: list[str] = []
    counts = submit_suite(s, cluster_dir, SubmititOptions(timeout_min=10), echo=lines.append, cluster="local",
                          poll_seconds=0.2)
    assert counts == {"ran": 1, "skipped": 0, "running": 0, "failed": 1, "no_teacher": 0}, lines
    assert "submitted 2 cells to local" in lines[0] and str(cluster_dir / "submitit") in lines[0]
    # the same result file as the local runner: same key, same fields, same training
    [local_rec], [cluster_rec] = finished_results(local_dir), finished_results(cluster_dir)
    assert cluster_rec["key"] == local_rec["key"] == good.key
    assert _keys(cluster_rec, depth=3) == _keys(local_rec, depth=3)
    assert cluster_rec["result"]["best"] == local_rec["result"]["best"]
    assert cluster_rec["result"]["dev_predictions"] == local_rec["result"]["dev_predictions"]
    failure = json.loads((cluster_dir / f"{bad.key}.failed.json").read_text())
    assert failure["returncode"] == 2
    assert any(bad.key in line and "failed (exit 2)" in line for line in lines)
    assert list((cluster_dir / "submitit").glob("*_log.out"))  # submitit's own logs, under RESULTS/submitit
    assert not (cluster_dir / "runs" / good.key).exists()  # model directory removed after success, as locally

    # a second submission: the finished cell is skipped without a job; only the failed cell is submitted again
    stamp = (cluster_dir / f"{good.key}.json").stat().st_mtime_ns
    s.cells = [good]
    lines.clear()
    counts = submit_suite(s, cluster_dir, SubmititOptions(), echo=lines.append, cluster="local")
    assert counts == {"ran": 0, "skipped": 1, "running": 0, "failed": 0, "no_teacher": 0} and lines == []
    assert (cluster_dir / f"{good.key}.json").stat().st_mtime_ns == stamp

    # the CLI, submitit detecting its cluster (local here), while another process holds the failed cell's claim
    # (as a local bench or a running job would): the finished cell is skipped, the claimed one gets no job
    with claim_cell(cluster_dir, bad.key):
        assert [r.status for r in plan(load_suite(s.path, vars_), cluster_dir)] == ["done", "running"]
        code, out, err = run_cli("bench", s.path, "--results", cluster_dir, "--launcher", "submitit",
                                 "--var", f"data={vars_['data']}", "--var", f"teachers={vars_['teachers']}", capsys=capsys)
    assert code == 0, err
    assert "ran 0, already done 1, failed 0, without teacher 0, left to another process 1" in out
    assert "submitted" not in err
    assert [r.status for r in plan(load_suite(s.path, vars_), cluster_dir)] == ["done", "failed"]


def test_the_cell_job_leaves_a_claimed_cell_alone(tmp_path, tiny_teacher_dir, toy_data, vars_):
    from layerkd.bench.launchers import CellJob

    s = load_suite(_suite(tmp_path, tiny_teacher_dir, toy_data, {"S2": "bottom:2"}), vars_)
    [cell] = s.cells
    job = CellJob(s, tmp_path / "results")
    assert job.suite.cells == [] and job.suite.name == "cluster"  # the pickled job carries one cell, not the grid
    with claim_cell(tmp_path / "results", cell.key):
        assert job(cell) == {"key": cell.key, "status": "running"}
    assert not (tmp_path / "results" / "runs" / f"{cell.key}.log").exists()  # no subprocess was started


def test_options_reach_the_slurm_job_script(tmp_path, monkeypatch):
    # no Slurm here: a stand-in srun lets submitit build its Slurm executor, whose job script we read
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    from submitit.slurm.slurm import _make_sbatch_string

    opts = SubmititOptions(partition="gpu", timeout_min=30, cpus_per_task=4, gpus_per_node=1, array_parallelism=8)
    ex = make_executor(tmp_path / "sub", opts, cluster="slurm")
    script = _make_sbatch_string(command="x", folder=str(tmp_path / "sub"), map_count=20, **ex._executor.parameters)
    for line in ("--partition=gpu", "--time=30", "--cpus-per-task=4", "--gpus-per-node=1", "--array=0-19%8",
                 "--job-name=layerkd-bench"):
        assert f"#SBATCH {line}\n" in script
    # submitit's own 5-minute default is never used: an unset --timeout-min is ours (240)
    ex = make_executor(tmp_path / "sub", SubmititOptions(), cluster="slurm")
    assert ex._executor.parameters["time"] == 240 and "partition" not in ex._executor.parameters


def test_launcher_options_that_would_be_ignored_are_refused():
    check_options("local", 4, SubmititOptions())
    check_options("submitit", 1, SubmititOptions(partition="p", timeout_min=5))
    with pytest.raises(ConfigError, match=r"^bench: --slurm-partition, --timeout-min only apply to --launcher submitit"):
        check_options("local", 1, SubmititOptions(partition="p", timeout_min=5))
    with pytest.raises(ConfigError, match=r"^bench: --workers applies to --launcher local"):
        check_options("submitit", 2, SubmititOptions())


def test_a_job_uses_its_slurm_cpu_allocation_unless_threads_are_set():
    assert job_env({"SLURM_CPUS_PER_TASK": "8", "PATH": "/bin"}) == {"SLURM_CPUS_PER_TASK": "8", "PATH": "/bin",
                                                                     "OMP_NUM_THREADS": "8"}
    assert job_env({"SLURM_CPUS_PER_TASK": "8", "OMP_NUM_THREADS": "2"}) is None
    assert job_env({}) is None


def test_without_submitit_the_cli_says_which_extra_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "submitit", None)  # import submitit -> ImportError
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\n")
    code, _, err = run_cli("bench", suite, "--results", tmp_path / "r", "--launcher", "submitit", capsys=capsys)
    assert_user_error(code, err, r"--launcher submitit needs the cluster extra: submitit is not installed "
                                 r"\(pip install 'layerkd\[cluster\]'\)")
    assert not (tmp_path / "r").exists()
