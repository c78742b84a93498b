"""The end of a run (issue 23, point 2): a finished default 2-layer student keeps only what
evaluation needs (about its weights' size), ``--keep-checkpoints`` keeps the checkpoints, and
``--resume`` of a finished run says so and changes nothing."""

from __future__ import annotations

from pathlib import Path

import yaml

from clihelp import run_cli
from conftest import distill_config
from layerkd.bench.runner import _resumable, last_line
from layerkd.config import dump_config
from layerkd.run_finish import finish_run, folder_size, format_bytes, weights_size


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_a_finished_student_folder_is_about_its_weights_and_resume_says_it_is_finished(
        tiny_teacher_dir, toy_data, tmp_path, capsys, caplog):
    out = tmp_path / "kd"
    cfg = distill_config(tiny_teacher_dir, toy_data, "kd", out, epochs=1)  # default student bottom:2, default checkpoints
    (tmp_path / "run.yaml").write_text(dump_config(cfg))
    code, stdout, err = run_cli("distill", "--config", tmp_path / "run.yaml", capsys=capsys)
    assert code == 0, err
    assert not (out / "checkpoints").exists()
    assert (out / "model.safetensors").is_file() and (out / "metrics.json").is_file()
    size, weights = folder_size(out), weights_size(out)
    assert weights > 0 and size <= 1.5 * weights, f"{format_bytes(size)} for {format_bytes(weights)} of weights"
    assert f"run folder {out}: {format_bytes(size)} (model weights {format_bytes(weights)}); removed " in caplog.text
    assert "--keep-checkpoints keeps them" in caplog.text

    before = _snapshot(out)
    code, stdout2, err = run_cli("distill", "--config", tmp_path / "run.yaml", "--resume", capsys=capsys)
    assert code == 0, err
    assert f"--resume: {out} holds a finished run" in caplog.text
    assert stdout2 == stdout  # the recorded best and last, as the run printed them
    assert _snapshot(out) == before  # nothing trained, written or removed
    assert _resumable(out)  # a bench cell in this state is resumed (and so picks up its results), never retrained


def test_keep_checkpoints_keeps_them(tiny_teacher_dir, toy_data, tmp_path, capsys):
    out = tmp_path / "kd"
    cfg = distill_config(tiny_teacher_dir, toy_data, "kd", out, epochs=1)
    (tmp_path / "run.yaml").write_text(dump_config(cfg))
    code, _, err = run_cli("distill", "--config", tmp_path / "run.yaml", "--keep-checkpoints", capsys=capsys)
    assert code == 0, err
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best", "step-0000034"]
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["keep_final_checkpoints"] is True


def test_finish_run_removes_sub_run_checkpoints_and_the_leftover_of_a_killed_removal(tmp_path):
    out = tmp_path / "run"
    for d in ("checkpoints/step-0000002", "checkpoints/best", "assistant/checkpoints/step-0000004",
              "teacher_heads_run/checkpoints/step-0000001", "assistant/.checkpoints.removed/step-0000002"):
        (out / d).mkdir(parents=True)
        (out / d / "optimizer.pt").write_bytes(b"x" * 1000)
    (out / "model.safetensors").write_bytes(b"w" * 500)
    (out / "assistant" / "model.safetensors").write_bytes(b"a" * 300)
    sizes = finish_run(out, keep_checkpoints=False)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == \
        ["assistant/model.safetensors", "model.safetensors"]
    assert sizes == {"folder": 800, "weights": 500, "removed": 4000}


def test_last_line_of_a_cell_log(tmp_path):
    log = tmp_path / "cell.log"
    log.write_text("# started\n" + "x" * 9000 + "\ndistill epoch 1/3 step 12/40 ETA 0:10 loss 0.5\n\n")
    assert last_line(log) == "distill epoch 1/3 step 12/40 ETA 0:10 loss 0.5"
    assert last_line(tmp_path / "missing.log") == ""
