"""A pretrained model as the student (suite 2, ``pretrained-student``): its weights are loaded,
not re-initialised, its new classification head is trained, and it distils from a deeper teacher.
The last test loads the real ``paraphrase-MiniLM-L3-v2`` from ``../shared`` (skipped without it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import distill_config
from layerkd import toy
from layerkd.models.load import build_student
from layerkd.stages.distill import distill
from layerkd.tasks import get_task


def _file_tensors(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def _assert_loaded(student, tensors: dict[str, torch.Tensor]) -> None:
    """Every encoder weight of the file is in the student unchanged (keys may carry the HF
    base-model prefix, e.g. ``bert.``)."""
    state = student.hf.state_dict()
    matched = 0
    for name, value in tensors.items():
        if "classifier" in name or "pooler" in name:
            continue
        hits = [k for k in state if k == name or k.endswith("." + name)]
        assert len(hits) == 1, (name, hits)
        assert torch.equal(state[hits[0]], value), name
        matched += 1
    assert matched >= 10


@pytest.fixture(scope="module")
def pretrained_l2(tmp_path_factory) -> Path:
    """A 2-layer 'pretrained' encoder (architectures: BertModel, no fine-tuned head) with the toy
    tokenizer, other weights than the tiny teacher's."""
    return toy.write_tiny_bert(tmp_path_factory.mktemp("pretrained-l2"), layers=2, hidden=32, heads=4,
                               intermediate=64, seed=5)


def test_pretrained_student_keeps_its_weights(pretrained_l2, tiny_teacher_dir, toy_task):
    from layerkd.models.load import load_model

    teacher = load_model(str(tiny_teacher_dir), toy_task)
    student = build_student(str(pretrained_l2), teacher, toy_task)
    assert student.num_layers == 2 and student.info.hidden_size == 32
    _assert_loaded(student, _file_tensors(pretrained_l2))
    # and it is not the teacher's bottom two layers
    t_emb = teacher.hf.get_input_embeddings().weight
    assert not torch.equal(student.hf.get_input_embeddings().weight, t_emb)


def _events(out: Path, kind: str) -> list[dict]:
    return [e for e in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if e.get("event") == kind]


@pytest.mark.parametrize("method", ["pkd", "alp"])
def test_pretrained_student_distils_from_a_deeper_teacher(method, pretrained_l2, tiny_teacher_dir, toy_data, tmp_path):
    out = tmp_path / "run"
    cfg = distill_config(tiny_teacher_dir, toy_data, method, out, student=str(pretrained_l2), epochs=6,
                         cache_dir=tmp_path / "cache", extra={"train": {"log_every_steps": 5, "lr": 5e-3}})
    result = distill(cfg, progress=False)
    train = _events(out, "train")
    first = [e["loss"] for e in train if e["epoch"] == 0]
    last = [e["loss"] for e in train if e["epoch"] == 5]
    assert sum(last) / len(last) < sum(first) / len(first)
    assert result["best"]["accuracy"] > 0.8  # chance is 0.5; the student starts from weights not trained on the task
    assert result["student"] == "transformer (2 layers, width 32, 4 heads)"


def test_shared_paraphrase_minilm_l3_loads(shared_dir):
    path = shared_dir / "models" / "paraphrase-MiniLM-L3-v2"
    if not (path / "model.safetensors").exists():
        pytest.skip(f"{path} is missing")
    task = get_task("mrpc")
    student = build_student(str(path), None, task)
    assert student.num_layers == 3 and student.info.hidden_size == 384
    _assert_loaded(student, _file_tensors(path))
    enc = student.text_encoder.encode(["a man is playing a guitar ."], ["someone plays music ."], 32)
    ids = torch.tensor(enc["input_ids"])
    with torch.no_grad():
        trace = student.eval()({"input_ids": ids, "attention_mask": torch.ones_like(ids),
                                **({"token_type_ids": torch.tensor(enc["token_type_ids"])} if "token_type_ids" in enc else {})})
    assert trace.require_logits().shape == (1, 2)
