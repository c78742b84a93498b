"""Exit codes of the ``layerkd`` command (issue 19, points 10 and 15), against the installed typer.

* every command-line usage error: one ``error:`` line, no traceback, exit 2 — typer ≥ 0.20 raises
  the exceptions of its own click copy (``typer._click``), not ``click``'s;
* a bench whose cells failed exits 1 (``app(standalone_mode=False)`` returns that code);
* a training run stopped by SIGINT exits 130, by SIGTERM 143, prints what it kept, removes its
  output directory when no checkpoint was completed and keeps it (for ``--resume``) when one was.
  The signals are sent by the test-only fault hook (``LAYERKD_FAULT=step:<n>:INT|TERM``, see
  :mod:`layerkd.faults`) at an exact training step of a real ``layerkd`` subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

from clihelp import assert_user_error, run_cli
from layerkd import exits, toy

USAGE = {
    "not-an-int": (["finetune", "--epochs", "abc"], r"Invalid value for '--epochs'"),
    "unknown-option": (["finetune", "--bogus"], r"No such option: --bogus"),
    "below-minimum": (["bench", "suite.yaml", "--workers", "0"], r"Invalid value for '--workers'"),
    "missing-option": (["evaluate", "some-model"], r"Missing option '--task'"),
    "missing-argument": (["bench"], r"Missing argument"),
    "unknown-command": (["distil"], r"No such command 'distil'"),
    "bad-float": (["distill", "--lr", "fast"], r"Invalid value for '--lr'"),
    "no-command": ([], r"missing command"),
    "cache-no-command": (["cache"], r"missing command"),
    "cache-unknown-option": (["cache", "ls", "--dir", "x"], r"No such option: --dir"),
}


@pytest.mark.parametrize("case", list(USAGE))
def test_usage_errors_are_one_line_and_exit_2(case, capsys):
    args, pattern = USAGE[case]
    code, _, err = run_cli(*args, capsys=capsys)
    assert_user_error(code, err, pattern)
    assert "Traceback" not in err and "╭" not in err, err


def test_the_installed_typer_raises_what_main_recognises():
    """The usage error typer raises (from whichever click it uses) is one cli.main handles."""
    from layerkd.cli import app

    with pytest.raises(Exception) as info:  # noqa: B017 - the class is what is checked
        app(["finetune", "--epochs", "abc"], standalone_mode=False)
    assert isinstance(info.value, exits.click_exception_types()), (typer.__version__, type(info.value).__mro__)


def test_usage_error_through_the_installed_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "layerkd.cli", "finetune", "--epochs", "abc"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert_user_error(proc.returncode, proc.stderr, r"Invalid value for '--epochs'")
    assert "Traceback" not in proc.stderr and list(tmp_path.iterdir()) == []


def test_bench_with_a_failed_cell_exits_1(tmp_path, tiny_teacher_dir, toy_data, capsys):
    train, dev = toy_data
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "s", "base": {"data": {"train_file": str(train), "dev_file": str(dev)},
                              "train": {"epochs": 1, "batch_size": 16, "max_length": 32}},
        "tasks": {"toy": {"teacher": str(tiny_teacher_dir), "overrides": {"task": toy.TOY_TASK}}},
        # deeper than the 4-layer teacher: the cell's subprocess stops with a user error
        "students": {"deep": "layers:1,2,3,4,5,6,7,8,9"}, "methods": ["ce"], "seeds": [1]}))
    code, out, err = run_cli("bench", suite, "--results", tmp_path / "results", capsys=capsys)
    assert code == 1, (out, err)
    assert "failed 1" in out


def _train_config(path: Path, *, tiny_bert: Path | None = None, teacher: Path | None = None, data, cache: Path,
                  checkpoint_every: int) -> Path:
    cfg = {"task": toy.TOY_TASK, "data": {"train_file": str(data[0]), "dev_file": str(data[1]), "train_subsample": 64},
           "train": {"epochs": 3, "batch_size": 16, "max_length": 32, "seed": 0, "lr": 1e-3,
                     "checkpoint_every_steps": checkpoint_every},
           "cache": {"dir": str(cache)}}
    if teacher is not None:
        cfg.update(teacher={"path": str(teacher)}, student="bottom:2", method="kd")
    else:
        cfg["model"] = str(tiny_bert)
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(args: list, fault: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", LAYERKD_FAULT=fault)
    return subprocess.run([sys.executable, "-m", "layerkd.cli", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300)


def _last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def test_sigint_before_the_first_checkpoint_exits_130_and_removes_the_run(tmp_path, tiny_bert_dir, toy_data):
    out = tmp_path / "run"
    cfg = _train_config(tmp_path / "run.yaml", tiny_bert=tiny_bert_dir, data=toy_data, cache=tmp_path / "cache",
                        checkpoint_every=10_000)
    proc = _run(["finetune", "--config", cfg, "--output-dir", out], fault="step:3:INT")
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    assert _last_line(proc.stderr) == f"interrupted before the first checkpoint; {out} was removed"
    assert not out.exists()


def test_sigterm_after_a_checkpoint_exits_143_and_keeps_it_for_resume(tmp_path, tiny_teacher_dir, toy_data):
    out = tmp_path / "run"
    cfg = _train_config(tmp_path / "run.yaml", teacher=tiny_teacher_dir, data=toy_data, cache=tmp_path / "cache",
                        checkpoint_every=2)
    proc = _run(["distill", "--config", cfg, "--output-dir", out], fault="step:5:TERM")
    assert proc.returncode == 143, proc.stderr
    assert "Traceback" not in proc.stderr
    last = _last_line(proc.stderr)
    assert last.startswith("terminated (SIGTERM); the last checkpoint step-0000004 is kept in"), last
    assert "--resume" in last
    assert (out / "checkpoints" / "step-0000004").is_dir()
    # and the run continues from it
    proc = _run(["distill", "--config", cfg, "--output-dir", out, "--resume"], fault="")
    assert proc.returncode == 0, proc.stderr
    assert (out / "metrics.json").exists()


def test_an_empty_checkpoints_folder_is_not_left_behind(tmp_path):
    """After an interrupt with no completed checkpoint, a ``checkpoints/`` holding only ``best`` or
    unfinished writes is removed; one with a completed checkpoint is kept."""
    out = tmp_path / "run"
    (out / "checkpoints" / "best").mkdir(parents=True)
    (out / "checkpoints" / ".step-0000002.tmp").mkdir()
    (out / "log.jsonl").write_text("{}\n")
    msg = exits.interrupted_message(out, KeyboardInterrupt())
    assert msg.exit_code == 130 and not (out / "checkpoints").exists() and (out / "log.jsonl").exists()
    assert str(msg) == f"interrupted before the first checkpoint; nothing to resume in {out}"
    (out / "checkpoints" / "step-0000002").mkdir(parents=True)
    msg = exits.interrupted_message(out, exits.Terminated())
    assert msg.exit_code == 143 and (out / "checkpoints" / "step-0000002").is_dir()
