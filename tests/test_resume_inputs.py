"""``--resume`` after an input changed (issue 19, point 6): the checkpoint records what the run was
trained from (``layerkd.run_inputs``); a changed train file, labels or teacher stops the resume
with exit code 2 naming it, and ``--allow-changed-inputs`` continues anyway."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from clihelp import assert_user_error, run_cli
from layerkd import toy

ROWS = [("the movie was good", 1), ("the plot was bad", 0), ("the cast was not dull", 1), ("a dull film", 0),
        ("a great cast", 1), ("the script was bad", 0), ("a good plot", 1), ("the film was boring", 0)]


def _tsv(rows) -> str:
    return "sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows)


def _config(tmp: Path, model: Path, *, distill: bool = False) -> Path:
    (tmp / "train.tsv").write_text(_tsv(ROWS))
    (tmp / "dev.tsv").write_text(_tsv(ROWS[:4]))
    cfg = {"task": toy.TOY_TASK, "data": {"train_file": str(tmp / "train.tsv"), "dev_file": str(tmp / "dev.tsv")},
           "train": {"epochs": 2, "batch_size": 2, "max_length": 16, "seed": 0, "checkpoint_every_steps": 2,
                     "keep_checkpoints": 20, "keep_final_checkpoints": True},  # _interrupted removes some of them
           "cache": {"dir": str(tmp / "cache")}}
    if distill:
        cfg.update(teacher={"path": str(model)}, student="bottom:1", method="kd")
    else:
        cfg["model"] = str(model)
    p = tmp / "run.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def _run(stage: str, config: Path, out: Path, *extra, capsys):
    return run_cli(stage, "--config", config, "--output-dir", out, *extra, capsys=capsys)


def _interrupted(stage, tmp, model, capsys, *, distill=False) -> tuple[Path, Path]:
    """A finished run with all but its first checkpoint removed: as if it had been stopped at step 2."""
    config, out = _config(tmp, model, distill=distill), tmp / "out"
    code, _, err = _run(stage, config, out, capsys=capsys)
    assert code == 0, err
    ckpts = sorted((out / "checkpoints").glob("step-*"))
    assert len(ckpts) == 4  # steps 2, 4 (end of epoch 0), 6, 8
    for c in ckpts[1:]:
        for f in sorted(c.iterdir()):
            f.unlink()
        c.rmdir()
    return config, out


def test_resume_after_the_train_file_was_halved_stops_and_names_it(tmp_path, tiny_bert_dir, capsys):
    config, out = _interrupted("finetune", tmp_path, tiny_bert_dir, capsys)
    (tmp_path / "train.tsv").write_text(_tsv(ROWS[:4]))
    before = _snapshot(tmp_path)
    code, _, err = _run("finetune", config, out, "--resume", capsys=capsys)
    assert_user_error(code, err, r"--resume: inputs changed since checkpoint .*step-0000002: training data .*train\.tsv "
                                 r"\(\d+ rows, was \d+\); pass --allow-changed-inputs to continue anyway")
    assert _snapshot(tmp_path) == before  # nothing written, nothing removed


def test_resume_after_labels_were_flipped_stops_then_continues_when_allowed(tmp_path, tiny_teacher_dir, capsys, caplog):
    config, out = _interrupted("distill", tmp_path, tiny_teacher_dir, capsys, distill=True)
    (tmp_path / "train.tsv").write_text(_tsv([(t, 1 - y) for t, y in ROWS]))
    before = _snapshot(tmp_path)
    code, _, err = _run("distill", config, out, "--resume", capsys=capsys)
    assert_user_error(code, err, r"training data .*train\.tsv \(same row count, other content\)")
    assert _snapshot(tmp_path) == before

    code, _, err = _run("distill", config, out, "--resume", "--allow-changed-inputs", capsys=capsys)
    assert code == 0, err
    assert "although these inputs changed (--allow-changed-inputs): training data" in caplog.text
    newest = sorted((out / "checkpoints").glob("step-*"))[-1]
    assert newest.name == "step-0000008"  # epoch 1 was trained
    from layerkd.data.readers import read_file
    from layerkd.tasks import task_from_config

    flipped = read_file(task_from_config(toy.TOY_TASK), tmp_path / "train.tsv", None, split="train")
    assert json.loads((newest / "state.json").read_text())["inputs"]["train"]["fingerprint"] == flipped.fingerprint


def test_resume_after_the_teacher_changed_names_the_teacher(tmp_path, tiny_teacher_dir, capsys):
    import shutil

    from safetensors.torch import load_file, save_file

    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher_dir, teacher)
    config, out = _interrupted("distill", tmp_path, teacher, capsys, distill=True)
    weights = load_file(str(teacher / "model.safetensors"))
    name = next(k for k in weights if k.endswith("classifier.bias"))
    weights[name] = weights[name] + 1.0
    save_file(weights, str(teacher / "model.safetensors"), metadata={"format": "pt"})
    code, _, err = _run("distill", config, out, "--resume", capsys=capsys)
    assert_user_error(code, err, r"inputs changed since checkpoint \S+: teacher \S*teacher; student's starting weights")
    assert "training data" not in err


def test_an_unchanged_resume_goes_on_without_a_word(tmp_path, tiny_bert_dir, capsys, caplog):
    config, out = _interrupted("finetune", tmp_path, tiny_bert_dir, capsys)
    code, _, err = _run("finetune", config, out, "--resume", capsys=capsys)
    assert code == 0, err
    assert "inputs changed" not in caplog.text
