"""Training, the teacher cache and evaluation on the accelerator, with mixed precision.

Every test here is marked ``device``: on a CUDA machine it runs on the GPU (the trainer's
Accelerator picks CUDA whenever torch sees one; the other tests put the model on :data:`DEVICE`),
on a CPU-only machine on the CPU (fp16, which needs CUDA, is skipped there).
``benchmarks/gpu_check.sh`` runs ``pytest -m device`` on the GPU machine.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from layerkd import toy
from layerkd.config import validate_run_config
from layerkd.data.encoding import EncodedSplit
from layerkd.data.readers import read_file
from layerkd.evaluation import score_split
from layerkd.models.heads import LayerHeads
from layerkd.models.load import load_model
from layerkd.objectives.base import Needs
from layerkd.stages.finetune import finetune
from layerkd.teacher_cache import TeacherCache

pytestmark = pytest.mark.device

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
CPU = torch.device("cpu")
ALL = Needs(teacher=frozenset({"logits", "layer_vectors", "head_logits"}), teacher_poolings=frozenset({"cls", "mean"}))


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("device-data")
    rows = toy.sentiment_examples(64, seed=3, noise=0.0)
    p = d / "train.tsv"
    p.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    return p


def _losses(out: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if r["event"] == "train"]


def _finetune(model_dir, data, out, precision):
    return finetune(validate_run_config({
        "task": toy.TOY_TASK, "data": {"train_file": str(data), "dev_file": str(data), "validation": {"source": "eval"}},
        "model": str(model_dir), "output_dir": str(out),
        "train": {"epochs": 10, "lr": 5e-3, "batch_size": 16, "max_length": 32, "seed": 0, "precision": precision},
    }), progress=False)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training_runs_on_the_device(precision, tiny_bert_dir, small_data, tmp_path):
    if precision == "fp16" and not CUDA:
        pytest.skip("fp16 autocast with loss scaling needs CUDA")
    if CUDA:
        torch.cuda.reset_peak_memory_stats()
    res = _finetune(tiny_bert_dir, small_data, tmp_path / "run", precision)
    losses = _losses(tmp_path / "run")
    assert all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0]
    assert res["precision"] == precision and res["best"]["accuracy"] >= 0.8
    env = json.loads((tmp_path / "run" / "results.json").read_text())["environment"]
    assert env["cuda"] == (torch.cuda.get_device_name(0) if CUDA else None)
    if CUDA:  # the trainer put the model on the GPU, not on the CPU beside it
        assert torch.cuda.max_memory_allocated() > 0


@pytest.fixture(scope="module")
def teacher_and_data(tiny_teacher_dir, toy_task, toy_data):
    teacher = load_model(str(tiny_teacher_dir), toy_task)
    enc = teacher.text_encoder
    data = EncodedSplit(read_file(toy_task, toy_data[1], split="dev"), {"student": enc, "teacher": enc}, 32,
                        length_role="student")
    return teacher, data


def test_teacher_cache_built_on_the_device_matches_one_built_on_the_cpu(teacher_and_data, tmp_path):
    teacher, data = teacher_and_data
    torch.manual_seed(0)
    heads = LayerHeads([1, 2, 3], teacher.info.hidden_size, 2, pooling="cls")
    got = {}
    for name, dev in (("cpu", CPU), ("device", DEVICE)):
        teacher.to(dev)
        heads.to(dev)
        src = TeacherCache(tmp_path / name, dtype="fp32").source(teacher, heads, data, ALL, dev)
        got[name] = {k: np.asarray(v) for k, v in src.arrays.items()}
    teacher.to(CPU)
    assert got["cpu"].keys() == got["device"].keys() and len(got["cpu"]) == 4
    for k in got["cpu"]:
        assert got["cpu"][k].shape == got["device"][k].shape and got["cpu"][k].shape[0] == len(data)
        np.testing.assert_allclose(got["device"][k], got["cpu"][k], rtol=1e-4, atol=1e-4, err_msg=str(k))


def _accelerator(device, dtype=None):
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    return SimpleNamespace(num_processes=1, process_index=0, is_main_process=True, device=device, autocast=autocast)


def test_evaluation_on_the_device_agrees_with_the_cpu_in_fp32_and_bf16(teacher_and_data, toy_task):
    teacher, data = teacher_and_data
    results = {}
    for name, dev, dtype in (("cpu", CPU, None), ("device", DEVICE, None), ("device-bf16", DEVICE, torch.bfloat16)):
        teacher.to(dev)
        results[name] = score_split(data, lambda b: teacher(b.inputs["teacher"]).logits.float(), teacher, task=toy_task,
                                    accelerator=_accelerator(dev, dtype), batch_size=32)
    teacher.to(CPU)
    ref = results["cpu"]
    assert ref.main >= 0.8  # the fine-tuned toy teacher
    np.testing.assert_allclose(results["device"].outputs, ref.outputs, rtol=1e-4, atol=1e-4)
    assert results["device"].metrics == ref.metrics
    bf16 = results["device-bf16"]
    assert np.abs(bf16.outputs - ref.outputs).max() < 0.1  # bf16: 8 bits of mantissa
    assert (bf16.predictions == ref.predictions).mean() >= 0.98
