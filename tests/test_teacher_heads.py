"""Teacher pseudo classifiers: the optional standardisation of their inputs and its hashing."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import distill_config
from layerkd.bench.suite import cell_key
from layerkd.config import HeadsFitConfig, hashable_dump
from layerkd.errors import ModelError
from layerkd.models.heads import LayerHeads
from layerkd.stages.common import config_hash
from layerkd.stages.heads import heads_key


def test_standardized_heads_match_numpy_and_survive_save_load(tmp_path):
    torch.manual_seed(0)
    heads = LayerHeads([1, 2], 3, 2, dropout=0.0, standardize=True)
    mean, std = torch.randn(2, 3), torch.rand(2, 3) + 0.01
    heads.set_standardization(mean, std)
    x = torch.randn(4, 3, 3)  # [B, L+1, d]
    z = heads.eval()(x).detach().numpy()
    xs = (x[:, 1:3].numpy() - mean.numpy()) / std.numpy()
    want = np.einsum("bkd,kdc->bkc", xs, heads.weight.detach().numpy()) + heads.bias.detach().numpy()
    np.testing.assert_allclose(z, want, rtol=1e-5, atol=1e-6)
    heads.save(tmp_path / "h")
    assert json.loads((tmp_path / "h" / "heads.json").read_text())["standardize"] is True
    again = LayerHeads.load(tmp_path / "h").eval()
    np.testing.assert_allclose(again(x).detach().numpy(), z, rtol=1e-6)


def test_constant_dimension_maps_to_zero_not_nan():
    heads = LayerHeads([1], 2, 2, dropout=0.0, standardize=True)
    heads.set_standardization(torch.tensor([[0.5, 1.0]]), torch.tensor([[0.0, 2.0]]))
    x = torch.tensor([[[9.0, 9.0], [0.5, 3.0]]])
    out = heads.eval()(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, heads.bias[None] + torch.tensor([[[0.0, 1.0]]]) @ heads.weight)


def test_a_dimension_constant_in_fp16_stays_bounded_on_fp32_inputs():
    # MiniLM's outlier dimension: 8.125 in every fp16-cached training vector (std 0); the live fp32
    # teacher gives values up to half an fp16 step (2**-8 at 8) away. Without a floor on the scale
    # this input became ~4e5 and the heads' logits ~1e4.
    heads = LayerHeads([1], 2, 2, dropout=0.0, standardize=True)
    mean = torch.tensor([[8.125, 0.01]])
    heads.set_standardization(mean, torch.tensor([[0.0, 0.0]]))
    torch.testing.assert_close(heads.scale, torch.tensor([[8.125 / 1024, 1e-6]]))
    live = torch.tensor([[[0.0, 0.0], [8.125 + 2.0 ** -8, 0.01]]])  # [B, L+1, d]
    z = (live[:, 1] - mean) / torch.tensor([[8.125 / 1024, 1e-6]])
    assert abs(float(z[0, 0])) <= 0.5
    torch.testing.assert_close(heads.eval()(live), heads.bias[None] + z[:, None] @ heads.weight)
    # a real spread above the floor is z-scored as given
    heads.set_standardization(mean, torch.tensor([[0.5, 0.002]]))
    torch.testing.assert_close(heads.scale, torch.tensor([[0.5, 0.002]]))


def test_standardised_heads_from_before_the_scale_floor_are_not_reused():
    class Split:
        fingerprint = "data"

    fit = HeadsFitConfig(standardize=True)
    without_floor = hashlib.sha256(json.dumps({"teacher": "t", "data": "data", "fit": fit.model_dump(mode="json"),
                                               "seed": 1, "max_length": 8}, sort_keys=True).encode()).hexdigest()[:20]
    assert heads_key("t", Split(), fit, 1, 8) != without_floor


def test_standardization_refused_on_plain_heads_and_missing_tensors_named(tmp_path):
    with pytest.raises(ValueError, match="standardize=True"):
        LayerHeads([1], 2, 2).set_standardization(torch.zeros(1, 2), torch.ones(1, 2))
    heads = LayerHeads([1], 2, 2, standardize=True)
    heads.save(tmp_path / "h")
    state = load_file(str(tmp_path / "h" / "heads.safetensors"))
    del state["scale"]
    save_file(state, str(tmp_path / "h" / "heads.safetensors"))
    with pytest.raises(ModelError, match=r"heads.safetensors: no 'scale' tensor"):
        LayerHeads.load(tmp_path / "h")


def test_added_option_at_its_earlier_behaviour_leaves_every_hash_unchanged(tiny_teacher_dir, toy_data, tmp_path):
    # standardize: false reproduces the runs recorded before the option existed, so it stays out of
    # every hash; the default (true since 2026-11-30) and an explicit true enter it
    default = distill_config(tiny_teacher_dir, toy_data, "universal", tmp_path / "a")
    off = distill_config(tiny_teacher_dir, toy_data, "universal", tmp_path / "a",
                         extra={"teacher": {"fit_heads": {"standardize": False}}})
    on = distill_config(tiny_teacher_dir, toy_data, "universal", tmp_path / "a",
                        extra={"teacher": {"fit_heads": {"standardize": True}}})
    assert default.teacher.fit_heads.standardize is True
    assert "standardize" not in hashable_dump(off)["teacher"]["fit_heads"]
    assert hashable_dump(default)["teacher"]["fit_heads"]["standardize"] is True
    assert config_hash(default) == config_hash(on) != config_hash(off)
    assert cell_key(default, {}, "w") == cell_key(on, {}, "w") != cell_key(off, {}, "w")
    # the heads cache key with standardize off is the one written before the option existed
    old_fit = {k: v for k, v in HeadsFitConfig().model_dump(mode="json").items() if k != "standardize"}

    class Split:
        fingerprint = "data"

    before = hashlib.sha256(json.dumps({"teacher": "t", "data": "data", "fit": old_fit, "seed": 1,
                                                      "max_length": 8}, sort_keys=True).encode()).hexdigest()[:20]
    assert heads_key("t", Split(), HeadsFitConfig(standardize=False), 1, 8) == before
    assert heads_key("t", Split(), HeadsFitConfig(), 1, 8) != before


def test_fit_with_standardize_stores_the_training_mean_of_each_layer(tiny_teacher_dir, toy_data, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    from layerkd.data.readers import read_file
    from layerkd.stages.distill import distill
    from layerkd.tasks import task_from_config

    out = tmp_path / "run"
    cfg = distill_config(tiny_teacher_dir, toy_data, "universal", out, epochs=1,
                         extra={"teacher": {"fit_heads": {"standardize": True}}, "cache": {"dtype": "fp32"}})
    res = distill(cfg, progress=False)
    report = res["diagnostics"]["teacher_heads"]
    assert set(report["dev_scores"]) == {"1", "2", "3"}
    state = load_file(str(out / "teacher_heads" / "heads.safetensors"))
    # independently: the teacher's [CLS] vectors of layers 1-3 over the training rows (the file less the
    # carved validation rows, which only score the heads), by transformers itself
    held = set(res["selection"]["row_ids"])
    rows = [r for i, r in enumerate(read_file(task_from_config(cfg.task), toy_data[0], None, split="train").examples)
            if i not in held]
    assert held and len(rows) == res["train_rows"]
    tok, model = AutoTokenizer.from_pretrained(tiny_teacher_dir), AutoModel.from_pretrained(tiny_teacher_dir).eval()
    enc = tok([r.text_a for r in rows], padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        hs = model(**enc, output_hidden_states=True).hidden_states
    cls = torch.stack([hs[i][:, 0] for i in (1, 2, 3)], 1)  # [N, 3, d]
    torch.testing.assert_close(state["shift"], cls.mean(0), rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(state["scale"], cls.std(0, unbiased=False), rtol=1e-3, atol=1e-4)



def test_resume_refuses_a_run_whose_teacher_heads_changed(tiny_teacher_dir, toy_data, tmp_path):
    # A checkpoint trained against heads that a later fix replaced (new heads key) must not be
    # continued against the new heads: the student already followed the old targets.
    from layerkd.errors import CheckpointError
    from layerkd.stages.distill import distill

    out = tmp_path / "run"
    cfg = distill_config(tiny_teacher_dir, toy_data, "universal", out, epochs=1, cache_dir=tmp_path / "cache",
                         extra={"train": {"keep_final_checkpoints": True}})  # resumed from its last checkpoint
    distill(cfg, progress=False)
    meta = out / "teacher_heads" / "heads.json"
    good = json.loads(meta.read_text())
    assert distill(cfg, resume=True, progress=False)["best"]  # same heads: resumes
    meta.write_text(json.dumps({**good, "key": "0" * 20}))
    with pytest.raises(CheckpointError, match=r"heads\.json records teacher heads 0{20}, this run fits [0-9a-f]{20}"):
        distill(cfg, resume=True, progress=False)
