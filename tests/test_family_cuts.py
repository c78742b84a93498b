"""Cutting encoders of every family (layerkd.models.cuts) and loading them with the attention
kernel they have: the details that ``tests/test_family_matrix.py`` relies on, checked directly."""

from __future__ import annotations

import pytest
import torch

from families import write_family
from family_matrix import TEXTS, logits
from layerkd.errors import ModelError
from layerkd.models import cuts
from layerkd.models.load import load_model
from layerkd.models.transformer import student_from_config, student_from_layers


def test_modernbert_cut_keeps_its_blocks_attention_types(tmp_path, toy_task):
    """``layer_types`` follows the kept blocks; a config: student repeats the teacher's pattern;
    a cut that starts elsewhere drops the first kept block's attention norm and reloads exactly."""
    teacher = load_model(write_family(tmp_path / "m", "modernbert", fine_tuned=True, layers=4), toy_task)
    assert teacher.config.layer_types == ["full_attention", "sliding_attention", "sliding_attention", "full_attention"]
    cut = student_from_layers(teacher, [3, 4])
    assert cut.config.layer_types == ["sliding_attention", "full_attention"]
    assert [b.attention_type for b in cut.layer_list()] == cut.config.layer_types
    assert isinstance(cut.layer_list()[0].attn_norm, torch.nn.Identity)
    cut.save_pretrained(tmp_path / "cut")
    assert torch.allclose(logits(cut, TEXTS), logits(load_model(tmp_path / "cut", toy_task), TEXTS), atol=1e-5)
    deep = student_from_config(teacher, layers=7, hidden=16, heads=2)
    assert deep.config.layer_types == ["full_attention", "sliding_attention", "sliding_attention"] * 2 + ["full_attention"]


@pytest.mark.parametrize(("family", "kernel"), [("deberta-v2", "eager"), ("deberta-v3", "eager"), ("bert", "sdpa")])
def test_attention_kernel_falls_back_to_eager_where_sdpa_is_missing(family, kernel, tmp_path, toy_task):
    """DeBERTa-v2/v3 have no sdpa kernel: loading (and a config: student) falls back to eager; BERT keeps sdpa."""
    teacher = load_model(write_family(tmp_path / family, family, fine_tuned=True), toy_task)
    assert teacher.config._attn_implementation == kernel
    assert student_from_config(teacher, layers=1, hidden=16, heads=2).config._attn_implementation == kernel


def test_albert_shared_groups(tmp_path, toy_task):
    """ALBERT with one weight group per layer is cut like blocks; groups shared by several layers
    (other than one group for all) cannot be cut without splitting one."""
    per_layer = load_model(write_family(tmp_path / "per-layer", "albert", fine_tuned=True,
                                        overrides={"num_hidden_groups": 4}), toy_task)
    student = student_from_layers(per_layer, [1, 3])
    assert student.config.num_hidden_groups == 2
    groups = student.hf.albert.encoder.albert_layer_groups
    source = per_layer.hf.albert.encoder.albert_layer_groups
    for mine, theirs in zip(groups, (source[0], source[2]), strict=True):
        for (_, a), (_, b) in zip(mine.state_dict().items(), theirs.state_dict().items(), strict=True):
            assert torch.equal(a, b)
    student.save_pretrained(tmp_path / "cut")
    assert torch.allclose(logits(student, TEXTS), logits(load_model(tmp_path / "cut", toy_task), TEXTS), atol=1e-5)
    grouped = load_model(write_family(tmp_path / "grouped", "albert", fine_tuned=True,
                                      overrides={"num_hidden_groups": 2}), toy_task)
    with pytest.raises(ModelError, match="shares 2 groups of block weights over 4 layers; a cut would split a group"):
        student_from_layers(grouped, [1, 2])


def test_a_cut_the_family_would_not_rebuild_is_refused(tmp_path, toy_task, monkeypatch):
    """Without the ModernBERT first-block rule, the cut would carry an attention norm the family does
    not build at position 1: the loadability check refuses it rather than saving a student that
    reloads differently."""
    monkeypatch.setattr(cuts, "_fit_block", lambda *a, **k: None)
    with pytest.raises(ModelError, match=r"has model\.layers\.0\.attn_norm\.weight which the family does not build"):
        student_from_layers(load_model(write_family(tmp_path / "m", "modernbert", fine_tuned=True), toy_task), [2, 4])
