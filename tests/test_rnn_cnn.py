"""BiLSTM and CNN students: Trace contract, padding, pairs, vocabulary, saving, options, teacher
tokenizer/embeddings, and distillation end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import distill_config
from layerkd.data.readers import read_file
from layerkd.errors import ModelError, PairError
from layerkd.models.load import build_student, load_model
from layerkd.models.rnn_cnn import build_rnn_cnn, load_rnn_cnn
from layerkd.models.vocab import WordTextEncoder, WordVocab, tokenize
from layerkd.stages.distill import distill
from layerkd.stages.evaluate import evaluate_model

SMALL = {
    "bilstm": {"layers": "2", "hidden": "8", "embed": "12", "min_freq": "1"},
    "cnn": {"layers": "3", "channels": "16", "embed": "12", "kernels": "2-3", "min_freq": "1"},
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: one thread is several times faster than two on a busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def train_split(toy_task, toy_data):
    return read_file(toy_task, str(toy_data[0]), None, split="train")


@pytest.fixture(scope="module")
def pair_split(toy_pair_task, toy_pair_data):
    return read_file(toy_pair_task, str(toy_pair_data[0]), None, split="train")


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir, toy_task):
    return load_model(tiny_teacher_dir, toy_task)


def _batch(encoder, texts_a, texts_b=None, *, extra_pad=0, max_length=64):
    ids = encoder.encode(texts_a, texts_b, max_length)["input_ids"]
    width = max(map(len, ids)) + extra_pad
    input_ids = torch.full((len(ids), width), encoder.pad_id, dtype=torch.long)
    mask = torch.zeros(len(ids), width, dtype=torch.long)
    for i, s in enumerate(ids):
        input_ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def _build(kind, task, split, **over):
    torch.manual_seed(0)
    return build_rnn_cnn(kind, {**SMALL[kind], **over}, task, train_texts=split).eval()


# ---------------------------------------------------------------------- the Trace contract


@pytest.mark.parametrize("kind,width", [("bilstm", 16), ("cnn", 16)])
def test_trace_shapes(kind, width, toy_task, train_split):
    model = _build(kind, toy_task, train_split)
    info = model.info
    L = int(SMALL[kind]["layers"])
    assert (info.kind, info.num_layers, info.hidden_size, info.num_labels) == (kind, L, width, 2)
    assert info.num_heads is None and not info.has_cls and not info.supports_attentions
    assert info.tokenizer_fingerprint == model.text_encoder.fingerprint
    texts = [e.text_a for e in train_split.examples[:5]]
    inputs = _batch(model.text_encoder, texts, extra_pad=3)
    trace = model(inputs, hidden_states=True)
    B, T = inputs["input_ids"].shape
    assert trace.logits.shape == (B, 2)
    assert len(trace.hidden_states) == L + 1
    assert all(h.shape == (B, T, width) for h in trace.hidden_states)
    assert trace.sentence_pooling == "max" and trace.num_layers == L
    vecs = trace.layer_vectors("cls")
    assert vecs.shape == (B, L + 1, width)
    # "cls" = the sentence pooling; the classifier reads the last layer's pooled vector
    assert torch.allclose(vecs, trace.layer_vectors("max"))
    assert torch.allclose(model.classifier(vecs[:, -1]), trace.logits, atol=1e-6)
    # padding positions are zero in every layer
    pad = inputs["attention_mask"] == 0
    assert all(h[pad].abs().max() == 0 for h in trace.hidden_states)
    plain = model(inputs)
    assert plain.hidden_states is None and torch.allclose(plain.logits, trace.logits)


def test_mean_pooling_and_unidirectional(toy_task, train_split):
    model = _build("bilstm", toy_task, train_split, bidirectional="false", pool="mean", hidden="10")
    assert model.info.hidden_size == 10  # one direction
    inputs = _batch(model.text_encoder, [e.text_a for e in train_split.examples[:3]], extra_pad=2)
    trace = model(inputs, hidden_states=True)
    assert trace.sentence_pooling == "mean"
    assert torch.allclose(trace.layer_vectors("cls"), trace.layer_vectors("mean"))


@pytest.mark.parametrize("kind", ["bilstm", "cnn"])
def test_padding_does_not_change_outputs(kind, toy_task, train_split):
    model = _build(kind, toy_task, train_split)
    texts = [e.text_a for e in train_split.examples[:8]]
    short = min(texts, key=lambda t: len(tokenize(t)))
    alone = model(_batch(model.text_encoder, [short]), hidden_states=True)
    batch = _batch(model.text_encoder, [short, *texts], extra_pad=5)
    assert batch["input_ids"].shape[1] >= len(tokenize(short)) + 5
    together = model(batch, hidden_states=True)
    assert torch.allclose(alone.logits[0], together.logits[0], atol=1e-5)
    assert torch.allclose(alone.layer_vectors("cls")[0], together.layer_vectors("cls")[0], atol=1e-5)
    # what sits in the padded positions does not matter either
    noisy = dict(batch, input_ids=batch["input_ids"].masked_fill(batch["attention_mask"] == 0, 5))
    assert torch.allclose(model(noisy).logits, together.logits, atol=1e-5)


# ---------------------------------------------------------------------- pairs and vocabulary


def test_pair_encoding(toy_pair_task, pair_split):
    model = _build("bilstm", toy_pair_task, pair_split)
    enc = model.text_encoder
    vocab = enc.vocab
    ex = pair_split.examples[0]
    ids = enc.encode([ex.text_a], [ex.text_b], 64)["input_ids"][0]
    n_a = len(tokenize(ex.text_a))
    assert ids[n_a] == vocab.sep_id and ids.count(vocab.sep_id) == 1
    assert ids == vocab.ids(ex.text_a) + [vocab.sep_id] + vocab.ids(ex.text_b)
    swapped = enc.encode([ex.text_b], [ex.text_a], 64)["input_ids"][0]
    assert swapped != ids
    # longest-first truncation keeps both sides and the separator
    cut = enc.encode(["a b c d e f g h"], ["x y"], 6)["input_ids"][0]
    assert cut == vocab.ids("a b c") + [vocab.sep_id] + vocab.ids("x y")
    # a pair batch runs, and the order of the two texts matters to the model
    a = model(_batch(enc, [ex.text_a], [ex.text_b])).logits
    b = model(_batch(enc, [ex.text_b], [ex.text_a])).logits
    assert a.shape == (1, 2) and not torch.allclose(a, b)


def test_vocabulary_building():
    texts = ["The film was GOOD.", "the film was bad", "the plot, the cast"]
    v = WordVocab.build(texts, min_freq=2)
    assert v.words[:3] == ["[PAD]", "[UNK]", "[SEP]"]
    assert v.words[3:] == ["the", "film", "was"]  # by count, then alphabetically
    assert "good" not in v and "," not in v
    assert v.ids("The unseen film") == [v.index["the"], v.unk_id, v.index["film"]]
    assert tokenize("Don't stop, OK?") == ["don't", "stop", ",", "ok", "?"]
    # deterministic: the same texts (in any order) give the same vocabulary and fingerprint
    again = WordVocab.build(list(reversed(texts)), min_freq=2)
    assert again.words == v.words and again.fingerprint == v.fingerprint
    everything = WordVocab.build(texts, min_freq=1)
    assert "good" in everything and "," in everything and everything.fingerprint != v.fingerprint
    capped = WordVocab.build(texts, min_freq=1, max_size=5)
    assert capped.words == ["[PAD]", "[UNK]", "[SEP]", "the", "film"]
    # empty texts still encode to one token
    assert WordTextEncoder(v).encode(["", "good"], None, 8)["input_ids"] == [[1], [1]]


# ---------------------------------------------------------------------- saving and options


@pytest.mark.parametrize("kind", ["bilstm", "cnn"])
def test_save_load_round_trip(kind, toy_task, train_split, tmp_path):
    model = _build(kind, toy_task, train_split)
    model.save_pretrained(tmp_path / "m")
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert {"layerkd_model.json", "model.safetensors", "vocab.json"} <= files
    meta = json.loads((tmp_path / "m" / "layerkd_model.json").read_text())
    assert meta["kind"] == kind and meta["labels"] == ["0", "1"] and meta["options"]["layers"] == int(SMALL[kind]["layers"])
    inputs = _batch(model.text_encoder, [e.text_a for e in train_split.examples[:6]], extra_pad=2)
    for loaded in (load_rnn_cnn(tmp_path / "m"), load_model(tmp_path / "m", toy_task)):
        assert type(loaded) is type(model) and not loaded.training
        assert loaded.info == model.info
        assert loaded.text_encoder.encode(["the film was good"], None, 8) == model.text_encoder.encode(["the film was good"], None, 8)
        assert torch.equal(loaded(inputs).logits, model(inputs).logits)
    with pytest.raises(ModelError, match="outputs"):
        load_model(tmp_path / "m", _regression_task())


def _regression_task():
    from layerkd.tasks import task_from_config

    return task_from_config({"name": "toy-reg", "text_columns": ["sentence"], "label_column": "label",
                             "regression": True, "metrics": ["pearson"]})


@pytest.mark.parametrize("spec,message", [
    ("bilstm:layers=2,heads=4", "unknown option 'heads'; allowed: bidirectional, dropout, embed"),
    ("cnn:hidden=8", "unknown option 'hidden'; allowed: channels"),
    ("bilstm:hidden=zero", "hidden='zero': expected a positive integer"),
    ("bilstm:layers=0", "layers='0': expected a positive integer"),
    ("bilstm:bidirectional=maybe", "expected true or false"),
    ("cnn:kernels=3-x", "kernels='3-x'"),
    ("cnn:dropout=1.5", "dropout='1.5': expected a number in [0, 1)"),
    ("bilstm:tokenizer=bpe", "expected one of word|teacher"),
    ("bilstm:tokenizer=teacher", "tokenizer=teacher needs a transformer teacher"),
    ("cnn:init=teacher", "init=teacher needs a transformer teacher"),
])
def test_bad_options(spec, message, toy_task, train_split):
    with pytest.raises(ModelError) as err:
        build_student(spec, None, toy_task, train_texts=train_split)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_word_vocabulary_needs_the_training_split(toy_task):
    with pytest.raises(ModelError, match="vocabulary"):
        build_rnn_cnn("bilstm", {}, toy_task, train_texts=None)


def test_regression_has_one_output(train_split):
    model = build_student("cnn:layers=1,channels=8,embed=8,gated=false,residual=false", None, _regression_task(),
                          train_texts=train_split)
    assert model.info.num_labels == 1 and model.classifier.out_features == 1


# ---------------------------------------------------------------------- teacher tokenizer and embeddings


def test_teacher_tokenizer(teacher, toy_task, train_split, tmp_path):
    model = build_student("bilstm:layers=1,hidden=8,embed=8,tokenizer=teacher", teacher, toy_task, train_texts=train_split)
    fp = teacher.info.tokenizer_fingerprint
    assert model.info.tokenizer_fingerprint == fp
    assert model.embed.num_embeddings == len(teacher.tokenizer)
    text = train_split.examples[0].text_a
    assert model.text_encoder.encode([text], None, 32)["input_ids"] == teacher.text_encoder.encode([text], None, 32)["input_ids"]
    with pytest.raises(ModelError, match="vocab_size applies to tokenizer=word only"):
        build_student("bilstm:tokenizer=teacher,vocab_size=100", teacher, toy_task, train_texts=train_split)
    model.eval().save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "tokenizer_config.json").exists() and not (tmp_path / "m" / "vocab.json").exists()
    loaded = load_model(tmp_path / "m", toy_task)
    assert loaded.info.tokenizer_fingerprint == fp
    # max_length 32 as in the teacher's own run: a Hugging Face fast tokenizer keeps (and saves) the
    # last truncation length, which layerkd.data.encoding.tokenizer_fingerprint hashes too
    inputs = _batch(model.text_encoder, [e.text_a for e in train_split.examples[:4]], max_length=32)
    assert torch.equal(loaded(inputs).logits, model(inputs).logits)


def test_teacher_embedding_init(teacher, toy_task, train_split):
    w = teacher.hf.get_input_embeddings().weight.detach().float()  # [V, 32]
    same = build_student("cnn:layers=1,channels=8,init=teacher", teacher, toy_task, train_texts=train_split)
    assert same.info.tokenizer_fingerprint == teacher.info.tokenizer_fingerprint  # init=teacher implies the tokenizer
    assert same.embed.embedding_dim == w.shape[1]
    assert torch.equal(same.embed.weight.detach(), w)  # embed = teacher width: an exact copy
    small = build_student("bilstm:layers=1,hidden=8,embed=6,init=teacher", teacher, toy_task, train_texts=train_split)
    e = small.embed.weight.detach().double()
    centred = (w - w.mean(dim=0, keepdim=True)).double()
    # E = (W − mean W) · P for one matrix P with orthonormal columns (a PCA projection)
    p = torch.linalg.lstsq(centred, e).solution
    assert torch.allclose(centred @ p, e, atol=1e-4)
    assert torch.allclose(p.T @ p, torch.eye(6, dtype=torch.float64), atol=1e-4)
    i, j = 7, 12  # row differences are projected teacher row differences
    assert torch.allclose(e[i] - e[j], (centred[i] - centred[j]) @ p, atol=1e-5)
    # the projection keeps the leading principal directions: most of the variance survives
    assert (e.pow(2).sum() / centred.pow(2).sum()) > 6 / 32
    with pytest.raises(ModelError, match="needs tokenizer=teacher"):
        build_student("bilstm:init=teacher,tokenizer=word", teacher, toy_task, train_texts=train_split)


# ---------------------------------------------------------------------- end to end


def _events(out: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if r["event"] == kind]


BILSTM = "bilstm:layers=2,hidden=16,embed=16"
CNN = "cnn:layers=2,channels=16,embed=16,kernels=3-5"
E2E = [(BILSTM, m) for m in ("ce", "kd", "universal", "dih", "pkd", "alp", "rail", "ckd")] + \
      [(CNN, m) for m in ("kd", "universal", "rail")]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("rnn-cnn-cache")


@pytest.mark.parametrize("student,method", E2E, ids=[f"{s.split(':')[0]}-{m}" for s, m in E2E])
def test_distill_end_to_end(student, method, tiny_teacher_dir, toy_task, toy_data, cache_dir, tmp_path):
    out = tmp_path / "run"
    cfg = distill_config(tiny_teacher_dir, toy_data, method, out, student=student, epochs=3, cache_dir=cache_dir,
                         extra={"train": {"log_every_steps": 5, "lr": 1e-2}})
    result = distill(cfg, progress=False)
    train = _events(out, "train")
    # the loss falls: mean of the logged 5-step windows of the first epoch vs the last epoch
    first = [e["loss"] for e in train if e["epoch"] == 0]
    last = [e["loss"] for e in train if e["epoch"] == 2]
    assert len(first) >= 3 and len(last) >= 3
    assert sum(last) / len(last) < sum(first) / len(first), [round(e["loss"], 3) for e in train]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == result["best"]["accuracy"]
    assert result["student"].startswith(student.split(":")[0])
    scored = evaluate_model(str(out), toy_task, file=str(toy_data[1]), max_length=32)
    assert abs(scored["accuracy"] - metrics["accuracy"]) < 1e-6


@pytest.mark.parametrize("student", [BILSTM, CNN])
@pytest.mark.parametrize("method", ["tinybert", "internal"])
def test_token_aligned_methods_are_refused(student, method, tiny_teacher_dir, toy_data, cache_dir, tmp_path):
    out = tmp_path / "run"
    cfg = distill_config(tiny_teacher_dir, toy_data, method, out, student=student, cache_dir=cache_dir)
    with pytest.raises(PairError, match="token-aligned"):
        distill(cfg, progress=False)
    assert not out.exists()
