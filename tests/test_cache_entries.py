"""`layerkd cache ls/clear` see only the cache's own entries (issue 19, point 4), and the test
suite never writes into the user's real cache (point 18)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import yaml

from clihelp import assert_user_error, run_cli
from conftest import USER_CACHE
from layerkd import toy
from layerkd.teacher_cache import TeacherCache


def _entry(cache: TeacherCache, key: str, field: str = "logits") -> None:
    cache._write(key, {"version": 2, "field": field, "pooling": None, "rows": 3, "max_length": 8, "teacher": "t" * 64,
                       "data_source": "toy.tsv"}, np.zeros((3, 2), dtype=np.float16))


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def _strangers(root: Path) -> None:
    """What a user may keep under a directory they pass as --cache-dir: a model called teacher/
    with checkpoints, notes, and a folder that merely looks like an entry."""
    (root / "teacher" / "checkpoints" / "step-0000010").mkdir(parents=True)
    (root / "teacher" / "checkpoints" / "step-0000010" / "model.safetensors").write_bytes(b"weights")
    (root / "teacher" / "notes").mkdir()
    (root / "teacher" / "notes" / "todo.txt").write_text("keep me")
    (root / "teacher" / "config.json").write_text("{}")
    (root / "teacher" / ("a" * 24)).mkdir()
    (root / "teacher" / ("a" * 24) / "meta.json").write_text('{"mine": true}')


def test_only_entries_are_listed_and_cleared(tmp_path, capsys, caplog):
    root = tmp_path / "cache"
    cache = TeacherCache(root)
    _entry(cache, "0123456789abcdef01234567")
    _entry(cache, "fedcba9876543210fedcba98", field="layer_vectors")
    _strangers(root)
    before = {k: v for k, v in _tree(root).items() if not k.startswith("teacher/0123") and not k.startswith("teacher/fedc")}
    code, out, err = run_cli("cache", "ls", "--cache-dir", root, capsys=capsys)
    assert code == 0, err
    assert [ln.split()[0] for ln in out.splitlines()] == ["0123456789abcdef01234567", "fedcba9876543210fedcba98"]
    assert "4 item(s) that are not teacher-cache entries, left alone: " + "a" * 24 + ", checkpoints, config.json, notes" \
        in caplog.text
    # a key that is not an entry is an error and removes nothing
    code, _, err = run_cli("cache", "clear", "checkpoints", "--cache-dir", root, capsys=capsys)
    assert_user_error(code, err, r"cache clear: no entry checkpoints in .*teacher")
    assert len(cache.entries()) == 2
    code, out, err = run_cli("cache", "clear", "--cache-dir", root, capsys=capsys)
    assert code == 0 and "removed 2 entries" in out, err
    assert cache.entries() == [] and _tree(root) == before  # everything that is not an entry is untouched


def test_a_run_does_not_touch_the_real_cache(tmp_path, tiny_teacher_dir, toy_data, monkeypatch, capsys,
                                             _private_teacher_cache):
    """A distill run with no cache directory configured uses the test session's temporary cache:
    neither the real default cache nor ~/.cache under any HOME receives anything."""
    real_before = _tree(USER_CACHE) if USER_CACHE.is_dir() else None
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    cfg = {"task": toy.TOY_TASK, "data": {"train_file": str(toy_data[0]), "dev_file": str(toy_data[1]), "train_subsample": 32},
           "teacher": {"path": str(tiny_teacher_dir)}, "student": "bottom:2", "method": "kd",
           "train": {"epochs": 1, "batch_size": 16, "max_length": 32, "seed": 0}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    code, _, err = run_cli("distill", "--config", tmp_path / "run.yaml", "--output-dir", tmp_path / "out", capsys=capsys)
    assert code == 0, err
    assert os.environ["LAYERKD_CACHE"] == str(_private_teacher_cache)
    assert TeacherCache(_private_teacher_cache).entries(), "the run did not use the session's temporary cache"
    assert not (home / ".cache" / "layerkd").exists()
    assert (_tree(USER_CACHE) if USER_CACHE.is_dir() else None) == real_before
