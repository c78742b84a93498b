"""Checkpoint integrity: corrupted or truncated checkpoints are detected and the previous one is
used (with a message); running out of disk while saving leaves the previous checkpoint intact and
stops with one clear line (exit code 2 from the CLI)."""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from clihelp import assert_user_error, run_cli
from layerkd import checkpoint as ckpt
from layerkd import toy
from layerkd.errors import CheckpointError


def _save(root: Path, step: int, model: nn.Module) -> Path:
    path = root / f"step-{step:07d}"
    opt = torch.optim.AdamW(model.parameters())
    ckpt.save_checkpoint(path, model=model, objectives=nn.Module(), optimizer_state=opt.state_dict(),
                         scheduler_state={"last_epoch": step}, state={"global_step": step})
    return path


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest", "missing file"])
def test_damaged_newest_checkpoint_is_reported_and_the_previous_one_used(tmp_path, damage):
    model = nn.Linear(8, 2)
    first = _save(tmp_path, 1, model)
    newest = _save(tmp_path, 2, model)
    victim = newest / "model.safetensors"
    if damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:-10])
    elif damage == "flip":
        data = bytearray(victim.read_bytes())
        data[-1] ^= 0xFF  # same size, different content
        victim.write_bytes(bytes(data))
    elif damage == "manifest":
        (newest / ckpt.MANIFEST).unlink()  # an incomplete write never got its manifest
    else:
        (newest / "optimizer.pt").unlink()
    messages: list[str] = []
    assert ckpt.latest_valid_checkpoint(tmp_path, warn=messages.append) == first
    assert len(messages) == 1 and "step-0000002 is corrupted" in messages[0] and "falling back" in messages[0]
    expected = {"truncate": "truncated", "flip": "checksum mismatch", "manifest": "no manifest", "missing file": "missing"}
    assert expected[damage] in messages[0]
    with pytest.raises(CheckpointError, match="corrupted"):
        ckpt.load_checkpoint(newest)
    assert ckpt.load_checkpoint(first)["state"]["global_step"] == 1


def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("how", ["OSError", "safetensors", "torch.save"])
def test_out_of_disk_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch, how):
    model = nn.Linear(8, 2)
    first = _save(tmp_path, 1, model)
    if how == "OSError":
        monkeypatch.setattr(ckpt, "save_module", _enospc)
    elif how == "safetensors":  # what safetensors really raises on a full disk
        def full(*_a, **_k):
            raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")

        monkeypatch.setattr(ckpt, "save_module", full)
    else:  # torch.save only says "unexpected pos …": the free space decides
        def bad_pos(*_a, **_k):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

        monkeypatch.setattr(ckpt.torch, "save", bad_pos)
        monkeypatch.setattr(ckpt.shutil, "disk_usage", lambda p: type("U", (), {"free": 0})())
    with pytest.raises(CheckpointError, match=r"no space left on device while writing .*step-0000002; nothing half-written was kept and earlier checkpoints are intact"):
        _save(tmp_path, 2, model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-0000001"]  # no half-written temporary directory
    assert ckpt.verify_dir(first) is None


def test_other_write_errors_are_not_called_out_of_disk(tmp_path, monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(ckpt, "save_module", boom)
    with pytest.raises(RuntimeError, match="a bug"):
        _save(tmp_path, 1, nn.Linear(2, 2))
    assert list(tmp_path.iterdir()) == []


def test_out_of_disk_while_replacing_keeps_the_old_directory(tmp_path):
    final = tmp_path / "best"
    ckpt.write_dir_atomically(final, lambda d: (d / "w.txt").write_text("old"))

    def writer(d: Path) -> None:
        (d / "w.txt").write_text("new")
        _enospc()

    with pytest.raises(CheckpointError, match="no space left"):
        ckpt.write_dir_atomically(final, writer)
    assert (final / "w.txt").read_text() == "old" and ckpt.verify_dir(final) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_atomic_text_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    monkeypatch.setattr(ckpt, "_fsync_file", _enospc)
    with pytest.raises(OSError):
        ckpt.atomic_write_text(target, "new")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


# ------------------------------------------------------------------ through the CLI


@pytest.fixture(scope="module")
def run_config(tmp_path_factory, tiny_bert_dir):
    d = tmp_path_factory.mktemp("disk")
    for name, n, seed in (("train", 64, 5), ("dev", 32, 6)):
        rows = toy.sentiment_examples(n, seed=seed, noise=0.0, max_extra_clauses=0)
        (d / f"{name}.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    cfg = {"task": toy.TOY_TASK, "model": str(tiny_bert_dir), "data": {"train_file": str(d / "train.tsv"), "dev_file": str(d / "dev.tsv")},
           "train": {"epochs": 2, "lr": 3e-3, "batch_size": 16, "max_length": 32, "seed": 0, "checkpoint_every_steps": 2}}
    p = d / "run.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_cli_out_of_disk_stops_with_one_line_and_resume_finishes(run_config, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    real = ckpt.save_module
    calls = {"n": 0}

    def fills_up(module, path):
        calls["n"] += 1
        if calls["n"] > 4:  # step-2 (model, objectives) and best written; the disk fills up after that
            _enospc()
        real(module, path)

    with monkeypatch.context() as m:
        m.setattr(ckpt, "save_module", fills_up)
        code, _, err = run_cli("finetune", "--config", run_config, "--output-dir", out, capsys=capsys)
    line = assert_user_error(code, err, r"no space left on device while writing .*; nothing half-written was kept and earlier checkpoints are intact .*--resume")
    assert "Traceback" not in err and len(line) < 300
    steps = ckpt.list_checkpoints(out / "checkpoints")
    assert steps and all(ckpt.verify_dir(s) is None for s in steps)
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    assert not (out / "metrics.json").exists()
    code, stdout, err = run_cli("finetune", "--config", run_config, "--output-dir", out, "--resume", capsys=capsys)
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["accuracy"] >= 0


def test_out_of_disk_writing_final_outputs_is_a_clear_error(tmp_path, monkeypatch):
    from layerkd.stages import common

    class Model:
        def save_pretrained(self, out):
            raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")

    with pytest.raises(CheckpointError, match=r"no space left on device while writing the final outputs"):
        common.write_outputs(tmp_path, Model(), None, {})


def test_resume_messages_reach_the_user(tmp_path, caplog):
    """The fallback message is a warning of the ``layerkd`` logger (the CLI prints it on stderr)."""
    model = nn.Linear(4, 2)
    _save(tmp_path, 1, model)
    bad = _save(tmp_path, 2, model)
    (bad / "state.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="layerkd"):
        log = logging.getLogger("layerkd")
        assert ckpt.latest_valid_checkpoint(tmp_path, warn=log.warning).name == "step-0000001"
    assert "step-0000002 is corrupted (state.json" in caplog.text
