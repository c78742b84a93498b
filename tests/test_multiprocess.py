"""Scale-out: a tiny distillation under ``accelerate launch`` with 2 CPU processes (gloo) against a
single-process run with the same global batch.

* metrics, every logged step loss and the dev predictions match within a small tolerance
  (dropout is off in this test: a 1-process and a 2-process run cannot draw the same dropout
  masks, so with dropout the runs agree only statistically);
* the dev set (37 rows, evaluation batches of 8: the last batch is short and the processes get 3
  and 2 batches) is scored exactly once per example;
* the training set (69 rows, global batch 16: the last batch of 5 splits 3 + 2) is sharded, and
  the gradients are averaged so that each step is the global batch's mean;
* only the main process writes: one set of outputs, a log with each step once, one report on
  stdout; the teacher cache is built once and shared.

Skipped (with the reason) when this machine cannot start two gloo processes.

Set ``LAYERKD_RELIABILITY_OUT=<dir>`` to get the parity numbers as JSON (used by
``benchmarks/reliability.sh``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

from layerkd import toy

N_TRAIN, N_DEV = 69, 37


def _launcher() -> list[str] | None:
    exe = Path(sys.executable).with_name("accelerate")
    return [str(exe), "launch"] if exe.exists() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _skip_reason() -> str | None:
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        return "torch.distributed with the gloo backend is not available in this build"
    if _launcher() is None:
        return "the accelerate launcher is not installed next to this Python"
    try:
        _free_port()
    except OSError as exc:
        return f"cannot open a local port for the process group ({exc})"
    return None


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_teacher_dir):
    d = tmp_path_factory.mktemp("mp")
    teacher = d / "teacher"
    shutil.copytree(tiny_teacher_dir, teacher, ignore=shutil.ignore_patterns("checkpoints", "log.jsonl"))
    cfg = json.loads((teacher / "config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (teacher / "config.json").write_text(json.dumps(cfg))
    for name, n, seed in (("train", N_TRAIN, 21), ("dev", N_DEV, 22)):
        rows = toy.sentiment_examples(n, seed=seed, noise=0.0, max_extra_clauses=1)
        (d / f"{name}.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    return d, teacher


def _config(d: Path, teacher: Path, cache: Path) -> Path:
    cfg = {"task": toy.TOY_TASK, "data": {"train_file": str(d / "train.tsv"), "dev_file": str(d / "dev.tsv")},
           "teacher": {"path": str(teacher)}, "student": "bottom:2", "cache": {"dir": str(cache)},
           "recipe": {"objectives": [{"name": "ce", "weight": 0.5}, {"name": "kd", "weight": 0.5},
                                     {"name": "rail", "weight": 1.0, "proj_dim": 16}]},
           "train": {"epochs": 2, "lr": 3e-3, "batch_size": 16, "eval_batch_size": 8, "max_length": 32, "seed": 0,
                     "warmup_ratio": 0.0, "log_every_steps": 1, "eval_every_steps": 3}}
    p = d / f"run-{cache.name}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _failure(proc: subprocess.CompletedProcess) -> str:
    """The interesting part of a failed launch: the processes' own errors, then the launcher's summary."""
    lines = [ln for ln in proc.stderr.splitlines() if "reducer.cpp" not in ln]
    # Python errors, and the C++ ones that abort a rank without a traceback (gloo timeouts, std::terminate)
    own = [ln for ln in lines if "Error" in ln or ln.startswith(("error:", "Traceback", "  File"))
           or any(k in ln for k in ("terminate called", "what():", "gloo", "Timed out", "timed out"))]
    return "\n".join(own[-40:]) + "\n---\n" + "\n".join(lines[-15:])


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_two_processes_match_one(setup, tmp_path):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from layerkd.cli import build_config
    from layerkd.stages.distill import distill

    d, teacher = setup
    # single process, in this process (the same single-thread CPU arithmetic as a subprocess)
    one = tmp_path / "one"
    t0 = time.time()
    distill(build_config(_config(d, teacher, tmp_path / "cache1"), {"output_dir": str(one)}), progress=False)
    t_one = time.time() - t0
    # two processes, gloo, the same global batch of 16 (8 per process), a cache of its own
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.pop("LAYERKD_FAULT", None)
    for attempt in (1, 2):
        two = tmp_path / f"two-{attempt}"
        cmd = [*_launcher(), "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", str(_free_port()), "-m", "layerkd.cli", "distill",
               "--config", str(_config(d, teacher, tmp_path / f"cache2-{attempt}")), "--output-dir", str(two)]
        t0 = time.time()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        t_two = time.time() - t0
        # A rank aborted by std::terminate before the run wrote its first log line is gloo failing to start on
        # a busy 2-core machine (seen twice in full test runs, never when this file runs alone): retried
        # once, with a fresh port and directories. Any other failure, or the same one twice, fails the test.
        started = (two / "log.jsonl").exists()
        if proc.returncode == 0 or started or "terminate called" not in proc.stderr or attempt == 2:
            break
        warnings.warn(f"two-process launch aborted before training started; retrying once:\n{_failure(proc)}", stacklevel=1)
    assert proc.returncode == 0, _failure(proc)

    ra, rb = (json.loads((p / "results.json").read_text()) for p in (one, two))
    assert ra["processes"] == 1 and rb["processes"] == 2
    # metrics within a small tolerance (here: identical up to float summation order)
    for key in ("best", "last"):
        for m, v in ra[key].items():
            assert rb[key][m] == pytest.approx(v, abs=0.03), (key, m)
    assert [h["step"] for h in ra["history"]] == [h["step"] for h in rb["history"]]
    la = [r for r in _records(one) if r["event"] == "train"]
    lb = [r for r in _records(two) if r["event"] == "train"]
    assert [r["step"] for r in lb] == list(range(1, len(lb) + 1)) == [r["step"] for r in la]  # each step logged once
    for x, y in zip(la, lb, strict=True):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-3), x["step"]
    # the dev set: every example scored exactly once (the trainer also checks the gathered indices)
    pa, pb = ra["dev_predictions"]["last"], rb["dev_predictions"]["last"]
    assert len(pb) == N_DEV == len(rb["dev_labels"])
    agreement = sum(x == y for x, y in zip(pa, pb, strict=True)) / N_DEV
    assert agreement >= 0.95
    # only the main process wrote: the same files as a single-process run, one report on stdout
    def files(p: Path) -> list[str]:
        return sorted(str(f.relative_to(p)) for f in p.rglob("*") if f.is_file())

    assert files(one) == files(two)
    assert proc.stdout.count("saved to") == 1, proc.stdout
    # the teacher cache was built once (by one process) and shared
    assert proc.stderr.count("teacher cache: computing") == 1, proc.stderr[-3000:]
    assert len(list((tmp_path / f"cache2-{attempt}" / "teacher").iterdir())) == len(list((tmp_path / "cache1" / "teacher").iterdir()))

    dest = os.environ.get("LAYERKD_RELIABILITY_OUT")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        max_rel = max(abs(y["loss"] - x["loss"]) / abs(x["loss"]) for x, y in zip(la, lb, strict=True))
        (Path(dest) / "multiprocess.json").write_text(json.dumps({
            "train_rows": N_TRAIN, "dev_rows": N_DEV, "global_batch": 16, "eval_batch": 8, "steps": len(la),
            "one": {"best": ra["best"], "last": ra["last"], "seconds": round(t_one, 1)},
            "two": {"best": rb["best"], "last": rb["last"], "seconds": round(t_two, 1)},
            "max_rel_loss_diff": max_rel, "dev_prediction_agreement": agreement, "dev_predictions": len(pb),
            "command": " ".join(["accelerate", *cmd[1:]]).replace(str(tmp_path), "$TMP").replace(str(d), "$DATA"),
        }, indent=1))


@pytest.mark.parametrize(("engine", "zero_stage", "resume", "refused"), [
    ("NO", None, True, None), ("MULTI_CPU", None, True, None), ("MULTI_GPU", None, True, None),
    ("DEEPSPEED", 2, False, None), ("DEEPSPEED", 2, True, "--resume under DeepSpeed is not supported"),
    ("DEEPSPEED", 3, False, "ZeRO stage 3 shards the weights"), ("FSDP", None, False, "FSDP shards the weights"),
])
def test_accelerate_engines_passed_through_or_refused_clearly(engine, zero_stage, resume, refused):
    """Accelerate's DeepSpeed/FSDP configs reach Accelerate unchanged; the modes whose state layerkd's
    checkpoints cannot hold stop at start-up with one line (instead of hanging at the first checkpoint)."""
    from accelerate.utils import DistributedType

    from layerkd.errors import ConfigError
    from layerkd.trainer import check_engine

    if refused is None:
        check_engine(DistributedType(engine), zero_stage, resume)
    else:
        with pytest.raises(ConfigError, match=refused):
            check_engine(DistributedType(engine), zero_stage, resume)


@pytest.mark.skipif(not os.environ.get("LAYERKD_SLOW_TESTS"), reason="slow (about a minute): set LAYERKD_SLOW_TESTS=1")
def test_two_process_run_killed_and_resumed(setup, tiny_teacher_dir, tmp_path):
    """A 2-process run (dropout on: every process's RNG state is checkpointed) SIGKILLed mid-step
    and resumed with the same launch command plus ``--resume`` ends with the weights and metrics
    of an uninterrupted 2-process run."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from safetensors.torch import load_file

    d, _ = setup
    cfg = yaml.safe_load(_config(d, tiny_teacher_dir, tmp_path / "cache").read_text())
    cfg["train"]["checkpoint_every_steps"] = 2
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.pop("LAYERKD_FAULT", None)

    def launch(out: Path, *extra: str, fault: str | None = None) -> subprocess.CompletedProcess:
        cmd = [*_launcher(), "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
               "-m", "layerkd.cli", "distill", "--config", str(config), "--output-dir", str(out), *extra]
        return subprocess.run(cmd, env=dict(env, **({"LAYERKD_FAULT": fault} if fault else {})), capture_output=True,
                              text=True, timeout=300)

    t0 = time.time()
    ref = launch(tmp_path / "ref")
    assert ref.returncode == 0, _failure(ref)
    cut = launch(tmp_path / "cut", fault="step:7")
    assert cut.returncode != 0 and "SIGKILL" in cut.stderr, cut.stderr[-3000:]
    resumed = launch(tmp_path / "cut", "--resume")
    assert resumed.returncode == 0, _failure(resumed)
    assert "resumed from step-0000006" in resumed.stderr
    a, b = (load_file(str(tmp_path / p / "model.safetensors")) for p in ("ref", "cut"))
    assert [k for k in a if not (a[k] == b[k]).all()] == []
    ra, rb = (json.loads((tmp_path / p / "results.json").read_text()) for p in ("ref", "cut"))
    for key in ("best", "last", "history", "dev_predictions"):
        assert ra[key] == rb[key], key
    dest = os.environ.get("LAYERKD_RELIABILITY_OUT")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        (Path(dest) / "multiprocess_resume.json").write_text(json.dumps({
            "killed_at": "step:7 (mid-step, 2 processes; the launcher stops the other process)",
            "resumed_from": "step-0000006", "weights_identical": True, "metrics": {"ref": ra["best"], "resumed": rb["best"]},
            "seconds": round(time.time() - t0, 1)}, indent=1))


def test_end_distributed_destroys_the_process_group(monkeypatch):
    """The CLI tears the group down itself: left to interpreter exit, gloo aborted a finished rank."""
    import torch.distributed as dist

    from layerkd.stages.common import end_distributed

    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this build")
    monkeypatch.setenv("WORLD_SIZE", "2")  # as `accelerate launch` sets it; the group itself is 1 process
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    assert dist.is_initialized()
    end_distributed()
    assert not dist.is_initialized()
    end_distributed()  # twice, or without a group: a no-op
    monkeypatch.setenv("WORLD_SIZE", "1")
    end_distributed()
