"""Progress of long steps (issue 23, point 1): the fields both displays show, the terminal display
drawn on a recording console, plain lines at their interval, the evaluation line, and a real
``layerkd finetune`` away from a terminal that writes progress lines before its first evaluation."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time

import pytest
import yaml

from layerkd import progress, toy
from layerkd.progress import PlainTracker, Tracker, format_eval, track


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_status_line_has_epoch_steps_throughput_eta_and_the_smoothed_losses():
    clock = Clock()
    t = Tracker("distill", 100, epochs=3, clock=clock)
    clock.now += 10
    t.update(25, epoch=1, loss=0.5, terms={"ce": 0.4, "kd": 0.6})
    assert t.line() == "distill epoch 1/3 step 25/100 (25%) 2.5 steps/s elapsed 0:10 ETA 0:30 loss 0.5000 (ce 0.4000 kd 0.6000)"
    t.update(26, loss=1.5, terms={"ce": 1.4, "kd": 1.6}, phase="phase2")  # smoothed: 0.9 · old + 0.1 · new
    assert t.losses() == pytest.approx({"loss": 0.6, "ce": 0.5, "kd": 0.7})
    assert t.title() == "distill [phase2] epoch 1/3"


def test_slow_steps_and_unknown_rates_read_naturally():
    clock = Clock()
    t = Tracker("teacher cache", 8000, unit="row", clock=clock)
    assert "? rows/s" in t.status() and "ETA ?" in t.status()
    clock.now += 3725
    t.update(advance=2000)
    assert t.status() == "row 2000/8000 (25%) 1.9 s/row elapsed 1:02:05 ETA 3:06:15"


def test_the_terminal_display_carries_the_loss():
    from rich.console import Console

    handlers = [(h, getattr(h, "stream", None)) for h in logging.getLogger().handlers]
    console = Console(record=True, force_terminal=True, width=220, file=io.StringIO())
    with track("distill", 100, epochs=3, console=console) as bar:
        bar.update(25, epoch=1, loss=0.5, terms={"ce": 0.4, "kd": 0.6})
        bar._maybe_draw(force=True)
        console.print(bar.live.progress.get_renderable())
    text = console.export_text()
    assert "distill epoch 1/3" in text and "25/100" in text
    assert "ETA" in text and "steps/s" in text
    assert "loss 0.5000 (ce 0.4000 kd 0.6000)" in text
    assert progress._Live.current is None  # the display is gone …
    assert [(h, getattr(h, "stream", None)) for h in logging.getLogger().handlers] == handlers  # … and logging as before


def test_plain_lines_come_at_the_interval_and_end_with_done(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="layerkd")
    monkeypatch.setattr(progress.SETTINGS, "seconds", 30.0)
    monkeypatch.setattr(progress.SETTINGS, "steps", 0)
    clock = Clock()
    t = PlainTracker("finetune", 100, clock=clock)
    for step in range(1, 101):
        clock.now += 1
        t.update(step, epoch=1, loss=0.7)
    t.close(ok=True)
    lines = [r.getMessage() for r in caplog.records]
    assert [ln.split(" (")[0] for ln in lines[:3]] == ["finetune epoch 1 step 30/100", "finetune epoch 1 step 60/100",
                                                       "finetune epoch 1 step 90/100"]
    assert lines[-1] == "finetune: done, 100 steps in 1:40" and len(lines) == 4

    caplog.clear()
    monkeypatch.setattr(progress.SETTINGS, "steps", 10)  # every 10 steps, or 30 s, whichever first
    t = PlainTracker("finetune", 100, clock=clock)
    for step in range(1, 31):
        t.update(step)
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [f"finetune step {n}/100" for n in (10, 20, 30)]


def test_quiet_shows_no_progress(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="layerkd")
    monkeypatch.setattr(progress.SETTINGS, "display", "plain")
    assert progress.display_kind() == "plain"
    monkeypatch.setattr(progress.SETTINGS, "quiet", True)
    assert progress.display_kind() == "off"


def test_the_eval_line_names_what_was_evaluated():
    metrics = {"accuracy": 0.75, "f1": 0.81234, "_main": 0.81234}
    assert format_eval("", "validation", 366, metrics, main="f1", step=120, epoch=1, best=True) == \
        "eval validation (366 rows) step 120 epoch 1: f1 0.8123 accuracy 0.7500 (best)"
    heads = {"layer1/f1": 0.5, "layer2/f1": 0.7, "f1": 0.6, "_main": 0.6}
    assert format_eval("teacher heads fit", "validation", 40, heads, main="f1", step=16, epoch=2) == \
        "teacher heads fit: eval validation (40 rows) step 16 epoch 2: f1 0.6000"


def test_heartbeat_beats_while_the_block_runs():
    beats = []
    with progress.heartbeat(lambda: beats.append(1), 0.02):
        time.sleep(0.2)
    n = len(beats)
    time.sleep(0.05)
    assert n >= 2 and len(beats) == n  # and stops with the block


def test_a_run_away_from_a_terminal_writes_progress_lines_before_its_first_evaluation(tmp_path, tiny_bert_dir):
    rows = toy.sentiment_examples(96, seed=3, noise=0.0, max_extra_clauses=0)
    for name, part in (("train", rows[:64]), ("dev", rows[64:])):
        (tmp_path / f"{name}.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in part))
    cfg = {"task": toy.TOY_TASK, "model": str(tiny_bert_dir),
           "data": {"train_file": str(tmp_path / "train.tsv"), "dev_file": str(tmp_path / "dev.tsv"),
                    "validation": {"source": "eval"}},
           "train": {"epochs": 1, "batch_size": 8, "max_length": 16, "seed": 0}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    for k in ("LAYERKD_PROGRESS", "LAYERKD_PROGRESS_SECONDS", "LAYERKD_PROGRESS_STEPS", "LAYERKD_FAULT"):
        env.pop(k, None)
    with open(tmp_path / "stderr.txt", "w") as err:  # stderr is a file: no terminal
        cmd = [sys.executable, "-m", "layerkd.cli", "--progress-steps", "3", "--progress-seconds", "1000", "finetune",
               "--config", str(tmp_path / "run.yaml"), "--output-dir", str(tmp_path / "out")]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, timeout=300)
    log = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 0, log
    lines = log.splitlines()
    first_eval = next(i for i, ln in enumerate(lines) if ln.startswith("finetune: eval dev (32 rows) step 8 epoch 1: accuracy "))
    beats = [ln for ln in lines[:first_eval] if ln.startswith("finetune epoch 1/1 step ")]
    assert [ln.split()[4] for ln in beats] == ["3/8", "6/8"], log
    assert all(" ETA " in ln and " loss " in ln and "steps/s" in ln for ln in beats), beats
    assert "\x1b[" not in log  # no terminal control codes in a log file
    assert "finetune: done, 8 steps in " in log
