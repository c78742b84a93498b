"""Hostile model inputs (issue 19, points 12 and 14): truncated or corrupt safetensors files (teacher,
student, BiLSTM/CNN, teacher heads), a huge safetensors header, a key repeated in a student spec, a
``config:`` student too large to allocate. Each is a one-line ModelError; the CLI exits 2."""

from __future__ import annotations

import hashlib
import shutil
import struct
import time
from pathlib import Path

import pytest
import torch

from clihelp import assert_user_error, run_cli
from layerkd.data.readers import read_file
from layerkd.errors import ModelError
from layerkd.models.heads import LayerHeads
from layerkd.models.load import build_student, load_model
from layerkd.models.memory import check_fits_memory, transformer_params
from layerkd.models.rnn_cnn import build_rnn_cnn
from layerkd.models.weights_check import check_safetensors

WEIGHTS = "model.safetensors"


def _corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    header = struct.unpack("<Q", data[:8])[0]
    path.write_bytes({
        "truncated": data[: len(data) // 2],
        "one-byte-short": data[:-1],
        "header-only": data[: 8 + header],
        "garbage": b"this is not a safetensors file at all",
        "empty": b"",
        "huge-header": struct.pack("<Q", 2**60) + data[8:],  # claims an exabyte-sized header
    }[how])


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("how", ["truncated", "one-byte-short", "header-only", "garbage", "empty", "huge-header"])
def test_a_corrupt_transformer_is_a_model_error(how, tiny_teacher_dir, toy_task, tmp_path):
    d = _copy(tiny_teacher_dir, tmp_path / "teacher")
    _corrupt(d / WEIGHTS, how)
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match=r"teacher/model\.safetensors: not a valid safetensors file \(.*\); the file is truncated or corrupt"):
        load_model(d, toy_task)
    assert time.perf_counter() - t0 < 1.0  # the header is refused without being read


def test_a_valid_file_passes_the_check(tiny_teacher_dir):
    check_safetensors(tiny_teacher_dir / WEIGHTS)


def test_a_corrupt_bilstm_and_teacher_heads_are_model_errors(toy_task, toy_data, tmp_path):
    split = read_file(toy_task, str(toy_data[0]), None, split="train")
    torch.manual_seed(0)
    model = build_rnn_cnn("bilstm", {"embed": "8", "hidden": "8", "layers": "1"}, toy_task, train_texts=split)
    model.save_pretrained(tmp_path / "bilstm")
    _corrupt(tmp_path / "bilstm" / WEIGHTS, "truncated")
    with pytest.raises(ModelError, match=r"bilstm/model\.safetensors: not a valid safetensors file"):
        load_model(tmp_path / "bilstm", toy_task)
    LayerHeads([1, 2], 8, 2).save(tmp_path / "heads")
    _corrupt(tmp_path / "heads" / "heads.safetensors", "truncated")
    with pytest.raises(ModelError, match=r"heads/heads\.safetensors: not a valid safetensors file"):
        LayerHeads.load(tmp_path / "heads")


def _tree_hash(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("who", ["teacher", "student"])
def test_distill_with_a_truncated_model_exits_2(who, tiny_teacher_dir, toy_data, tmp_path, capsys):
    bad = _copy(tiny_teacher_dir, tmp_path / "bad")
    _corrupt(bad / WEIGHTS, "truncated")
    teacher, student = (bad, "bottom:2") if who == "teacher" else (tiny_teacher_dir, bad)
    config = _toy_config(tmp_path, toy_data)
    before = _tree_hash(tmp_path)
    code, _, err = run_cli("distill", "--teacher", teacher, "--student", student, "--method", "kd", "--config", config,
                           "--output-dir", tmp_path / "out", capsys=capsys)
    assert_user_error(code, err, r"bad/model\.safetensors: not a valid safetensors file")
    assert "Traceback" not in err and not (tmp_path / "out").exists()
    assert _tree_hash(tmp_path) == before


def _toy_config(tmp_path: Path, toy_data) -> Path:
    import yaml

    from layerkd import toy

    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump({"task": toy.TOY_TASK, "data": {"train_file": str(toy_data[0]), "dev_file": str(toy_data[1])},
                                 "train": {"epochs": 1, "batch_size": 8, "max_length": 32},
                                 "cache": {"dir": str(tmp_path / "cache")}}))
    return p


@pytest.mark.parametrize("spec, pattern", [
    ("config:layers=2,layers=3", r"student 'config:layers=2,layers=3': layers is given twice \(layers=2 and layers=3\)"),
    ("bilstm:hidden=8,hidden=16", r"student 'bilstm:hidden=8,hidden=16': hidden is given twice"),
    ("cnn:kernels=3,kernels=5", r"kernels is given twice"),
])
def test_a_key_repeated_in_a_student_spec(spec, pattern, tiny_teacher_dir, toy_task):
    teacher = load_model(tiny_teacher_dir, toy_task)
    with pytest.raises(ModelError, match=pattern):
        build_student(spec, teacher, toy_task, train_texts=None)


def test_a_student_too_large_to_allocate_is_refused_before_allocation(tiny_teacher_dir, toy_task):
    teacher = load_model(tiny_teacher_dir, toy_task)
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match=r"student 'config:layers=100000,hidden=4096': about [\d,]+ parameters "
                                         r"\([\d,.]+ GiB as float32\) do not fit in the [\d,.]+ GiB of memory available"):
        build_student("config:layers=100000,hidden=4096", teacher, toy_task)
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("layers, hidden, heads, intermediate", [(2, 32, 4, None), (1, 48, 2, 96), (3, 16, 2, 40)])
def test_the_parameter_estimate_matches_the_built_model(layers, hidden, heads, intermediate, tiny_teacher_dir, toy_task):
    teacher = load_model(tiny_teacher_dir, toy_task)
    spec = f"config:layers={layers},hidden={hidden},heads={heads}" + (f",intermediate={intermediate}" if intermediate else "")
    student = build_student(spec, teacher, toy_task)
    actual = sum(p.numel() for p in student.parameters())
    estimate = transformer_params(teacher.config, layers=layers, hidden=hidden, intermediate=intermediate or 4 * hidden)
    assert abs(estimate - actual) / actual < 0.02, (estimate, actual)


def test_check_fits_memory():
    check_fits_memory(1000, "x", available=4000)
    with pytest.raises(ModelError, match=r"x: about 1,001 parameters"):
        check_fits_memory(1001, "x", available=4000)
