"""LLM-classifier teachers (issue 21 point 2): last-token layer vectors, padding, a decoder teacher
distilled into a BERT student (kd, alp, pkd), a decoder student, and cache-only mode (the teacher's
weights never loaded during training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from clihelp import assert_user_error, run_cli
from conftest import distill_config
from layerkd import toy
from layerkd.errors import ModelError
from layerkd.models.load import load_model
from layerkd.models.pooling import pool
from layerkd.toy_llm import write_tiny_decoder


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("llm-data")
    return toy.write_sentiment_data(d, n_train=48, n_dev=16, noise=0.0, max_extra_clauses=0)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return write_tiny_decoder(tmp_path_factory.mktemp("llama") / "llama", family="llama", layers=2, hidden=32, heads=4)


@pytest.fixture(scope="module")
def bert_student(tmp_path_factory):
    return toy.write_tiny_bert(tmp_path_factory.mktemp("bert-student") / "bert", layers=2, hidden=16, heads=2, intermediate=32)


def _batch(model, texts):
    ids = [torch.tensor(x) for x in model.text_encoder.encode(texts, None, 32)["input_ids"]]
    width = max(len(x) for x in ids)
    inp = torch.full((len(ids), width), model.text_encoder.pad_id)
    mask = torch.zeros(len(ids), width, dtype=torch.long)
    for i, x in enumerate(ids):
        inp[i, : len(x)], mask[i, : len(x)] = x, 1
    return {"input_ids": inp, "attention_mask": mask}, [len(x) for x in ids]


def test_last_pooling_reads_the_last_real_token_for_left_and_right_padding():
    h = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert pool(h, right, "last").tolist() == [h[0, 1].tolist(), h[1, 3].tolist()]
    assert pool(h, left, "last").tolist() == [h[0, 3].tolist(), h[1, 3].tolist()]
    stacked = torch.stack([h, h + 100], dim=1)  # [B, L, T, d]: every layer at once
    assert pool(stacked, right, "last")[0, 1].tolist() == (h[0, 1] + 100).tolist()


@pytest.mark.parametrize("family", ["llama", "mistral"])
def test_decoder_layer_vectors_are_the_heads_last_token(family, tmp_path, toy_task):
    model = load_model(write_tiny_decoder(tmp_path / family, family=family, layers=2, hidden=32, heads=4), toy_task)
    model.eval()
    assert model.info.has_cls is False
    inputs, lengths = _batch(model, ["the movie was good", "honestly the plot was not very bad"])
    with torch.no_grad():
        t = model(inputs, hidden_states=True)
        vecs = t.layer_vectors("cls")  # [B, L+1, d]: the last real token of every layer
        for b, n in enumerate(lengths):
            for layer, h in enumerate(t.hidden_states):
                assert torch.equal(vecs[b, layer], h[b, n - 1])
        # the classifier reads the same token: its head applied to the final vector gives the logits
        assert torch.allclose(model.hf.score(vecs[:, -1]), t.logits, atol=1e-6)
        # right padding changes nothing for a causal model: the short row alone gives the same outputs
        alone = model({k: v[:1, : lengths[0]] for k, v in inputs.items()}, hidden_states=True)
        assert torch.allclose(alone.logits[0], t.logits[0], atol=1e-5)
        assert torch.allclose(alone.layer_vectors("cls")[0], vecs[0], atol=1e-5)
    with pytest.raises(ModelError, match="--pooling mean is not supported for model type"):
        model.set_pooling("mean")


def test_llm_teacher_distils_into_a_bert_student(tmp_path, small_data, llama_dir, bert_student, toy_task):
    from layerkd.stages.distill import distill

    for method in ("kd", "alp", "pkd"):
        cfg = distill_config(llama_dir, small_data, method, tmp_path / method, student=str(bert_student), epochs=1,
                             extra={"train": {"max_length": 32}})
        result = distill(cfg, progress=False)
        first = json.loads((tmp_path / method / "log.jsonl").read_text().splitlines()[2])
        assert first["event"] == "train" and all(v == v for k, v in first.items() if k.startswith("term/"))
        modes = {d["mode"] for d in result["diagnostics"]["teacher_source"]}
        assert modes == {"cache"}, result["diagnostics"]["teacher_source"]
    # the cached layer vectors are the teacher's last-token vectors
    from layerkd.data.encoding import EncodedSplit
    from layerkd.data.readers import read_file
    from layerkd.objectives.base import Needs
    from layerkd.teacher_cache import TeacherCache

    teacher = load_model(llama_dir, toy_task)
    split = read_file(toy_task, small_data[1], None, split="dev")
    data = EncodedSplit(split, {"teacher": teacher.text_encoder}, 32)
    needs = Needs(teacher=frozenset({"layer_vectors"}), teacher_poolings=frozenset({"cls"}))
    cached = TeacherCache(tmp_path / "cache2", dtype="fp32").source(teacher, None, data, needs, "cpu")
    inputs, lengths = _batch(teacher, [e.text_a for e in split.examples[:3]])
    teacher.eval()
    with torch.no_grad():
        hs = teacher(inputs, hidden_states=True).hidden_states
    got = torch.from_numpy(cached.arrays[("layer_vectors", "cls")][:3].copy())
    want = torch.stack([torch.stack([h[b, n - 1] for h in hs]) for b, n in enumerate(lengths)])
    assert torch.allclose(got, want, atol=1e-5)


def test_a_decoder_student_cut_from_a_decoder_teacher(tmp_path, small_data, llama_dir):
    from layerkd.stages.distill import distill

    cfg = distill_config(llama_dir, small_data, "kd+alp", tmp_path / "out", student="bottom:1", epochs=1)
    result = distill(cfg, progress=False)
    assert "1 layers" in result["student"]
    reloaded = load_model(tmp_path / "out")
    assert reloaded.is_decoder and reloaded.num_layers == 1


# ------------------------------------------------------------------------------ cache-only mode


def _config(tmp_path, small_data, teacher, student, method="kd+alp", **over) -> Path:
    train, dev = small_data
    cfg = {"task": toy.TOY_TASK, "data": {"train_file": str(train), "dev_file": str(dev)},
           "teacher": {"path": str(teacher)}, "student": str(student), "method": method,
           "train": {"epochs": 1, "batch_size": 16, "max_length": 32, "seed": 0, "lr": 3e-3},
           "cache": {"dir": str(tmp_path / "cache")}, **over}
    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _first_step(run: Path) -> dict:
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    step = next(r for r in rows if r["event"] == "train")
    return {k: v for k, v in step.items() if k.startswith("term/") or k == "loss"}


def test_cache_only_mode_never_loads_the_teacher(tmp_path, small_data, llama_dir, bert_student, monkeypatch, capsys):
    import transformers

    from layerkd.models.transformer import TransformerClassifier

    cfg = _config(tmp_path, small_data, llama_dir, bert_student)
    code, _, err = run_cli("distill", "--config", cfg, "--teacher-cache-only", "--output-dir", tmp_path / "early", capsys=capsys)
    line = assert_user_error(code, err, r"teacher cache \(cache-only mode\): no entry for the teacher's logits,layer_vectors:cls "
                                        r"on .*train\.tsv \(train, \d+ rows, max length 32\) in .*cache; build it with: "
                                        r"layerkd cache build --config .* --needs logits,layer_vectors:cls")
    assert "Traceback" not in err and not (tmp_path / "early").exists(), line
    code, out, err = run_cli("cache", "build", "--config", cfg, "--needs", "logits,layer_vectors", capsys=capsys)
    assert code == 0, err
    assert out.count(" built ") == 4  # logits and cls vectors of the training and the validation split

    code, _, err = run_cli("distill", "--config", cfg, "--output-dir", tmp_path / "live", capsys=capsys)  # teacher loaded
    assert code == 0, err
    real = TransformerClassifier.from_pretrained.__func__

    def refuse(cls, path, *a, **k):
        if Path(str(path)) == Path(llama_dir):
            raise AssertionError("the teacher's weights were loaded in cache-only mode")
        return real(cls, path, *a, **k)

    def no_weights(*a, **k):
        raise AssertionError("AutoModelForSequenceClassification.from_pretrained called for the teacher")

    monkeypatch.setattr(TransformerClassifier, "from_pretrained", classmethod(refuse))
    real_auto = transformers.AutoModelForSequenceClassification.from_pretrained
    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained",
                        lambda path, *a, **k: no_weights() if Path(str(path)) == Path(llama_dir) else real_auto(path, *a, **k))
    code, out, err = run_cli("distill", "--config", cfg, "--teacher-cache-only", "--output-dir", tmp_path / "co", capsys=capsys)
    assert code == 0, err
    assert _first_step(tmp_path / "co") == _first_step(tmp_path / "live")
    saved = yaml.safe_load((tmp_path / "co" / "config.yaml").read_text())
    assert saved["cache"]["only"] is True


def test_cache_only_refusals(tmp_path, small_data, llama_dir, bert_student, capsys):
    cfg = _config(tmp_path, small_data, llama_dir, "bottom:1")
    code, _, err = run_cli("distill", "--config", cfg, "--teacher-cache-only", "--output-dir", tmp_path / "o", capsys=capsys)
    assert_user_error(code, err, r"student 'bottom:1' is built from the teacher model, which cache-only mode never loads")
    llama_student = write_tiny_decoder(tmp_path / "student", family="llama", layers=1, hidden=32, heads=4)  # same tokenizer
    cfg = _config(tmp_path, small_data, llama_dir, llama_student, method="tinybert")
    code, _, err = run_cli("distill", "--config", cfg, "--teacher-cache-only", "--output-dir", tmp_path / "o", capsys=capsys)
    assert_user_error(code, err, r"method tinybert needs the teacher's attentions, hidden_states, which are never cached")
    assert not (tmp_path / "o").exists()
