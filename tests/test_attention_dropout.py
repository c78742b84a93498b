"""Attention-map objectives (internal, tinybert) compare the student's attention probabilities. In
training mode Hugging Face returns them after dropout (zeroed, rescaled entries);
``disable_attention_dropout`` must give back the model's own softmax while hidden dropout stays."""

from __future__ import annotations

import torch

from layerkd.models.transformer import TransformerClassifier, student_from_layers


def _maps(model, enc):
    return model(dict(enc), attentions=True).attentions


def test_training_mode_maps_are_the_softmax_once_attention_dropout_is_off(tiny_bert_dir):
    teacher = TransformerClassifier.from_pretrained(str(tiny_bert_dir))
    enc = teacher.tokenizer(["a b c d e f g h i j k l m n o p", "a b c"], padding=True, return_tensors="pt")
    real = enc["attention_mask"].bool()[0]
    torch.manual_seed(0)
    with_dropout = student_from_layers(teacher, [1, 2])
    with_dropout.use_eager_attention()
    with_dropout.train()
    zeros = sum(float((a[0][:, :, real] == 0).float().mean()) for a in _maps(with_dropout, enc))
    assert zeros > 0  # the control: Hugging Face's maps after dropout carry zeroed entries

    student = student_from_layers(teacher, [1, 2])
    student.use_eager_attention()
    student.disable_attention_dropout()
    student.train()
    for a in _maps(student, enc):
        assert not bool((a[0][:, :, real] == 0).any())
        torch.testing.assert_close(a.sum(-1)[0], torch.ones_like(a.sum(-1)[0]))
    torch.manual_seed(1)
    first = student(dict(enc)).logits
    torch.manual_seed(2)
    assert not torch.equal(first, student(dict(enc)).logits)  # hidden-state dropout is kept
