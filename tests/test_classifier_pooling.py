"""Classifier pooling (``--pooling cls|mean``, layerkd.models.classifier_pooling).

Per family, the mean-pooled model's logits must equal its own head applied by hand to the masked
mean of the final token states (the reference below indexes each head as the family's code does),
the per-layer hidden states must not change, padding must not change the result, and the choice
must survive save/load and the student cuts.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from layerkd import toy
from layerkd.errors import ModelError
from layerkd.models.classifier_pooling import set_pooling
from layerkd.models.transformer import TransformerClassifier, student_from_config, student_from_layers

SMALL = {"vocab_size": 120, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 32, "max_position_embeddings": 64, "num_labels": 3}


def _model(kind: str) -> nn.Module:
    import transformers as tf

    cfg = {
        "bert": lambda: tf.BertConfig(**SMALL),
        "roberta": lambda: tf.RobertaConfig(**SMALL, pad_token_id=1),
        "xlm-roberta": lambda: tf.XLMRobertaConfig(**SMALL, pad_token_id=1),
        "electra": lambda: tf.ElectraConfig(**SMALL, embedding_size=16),
        "deberta-v2": lambda: tf.DebertaV2Config(**SMALL),
        "albert": lambda: tf.AlbertConfig(**SMALL, embedding_size=16),
        "distilbert": lambda: tf.DistilBertConfig(vocab_size=120, dim=16, n_layers=2, n_heads=2, hidden_dim=32,
                                                  max_position_embeddings=64, num_labels=3),
        "modernbert": lambda: tf.ModernBertConfig(**SMALL, global_attn_every_n_layers=1, pad_token_id=0),
    }[kind]()
    torch.manual_seed(0)
    return tf.AutoModelForSequenceClassification.from_config(cfg, attn_implementation="eager").eval()


def _by_hand(m: nn.Module, kind: str, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    first = torch.cat([mean[:, None], states[:, 1:]], dim=1)  # what a [CLS]-indexing head should see
    if kind == "bert":
        return m.classifier(m.bert.pooler(first))
    if kind in ("roberta", "xlm-roberta", "electra"):
        return m.classifier(first)
    if kind == "deberta-v2":
        return m.classifier(m.pooler(first))
    if kind == "albert":
        return m.classifier(m.albert.pooler_activation(m.albert.pooler(mean)))
    if kind == "distilbert":
        return m.classifier(torch.relu(m.pre_classifier(mean)))
    raise AssertionError(kind)


INPUTS = {"input_ids": torch.tensor([[2, 15, 16, 17, 3, 0, 0], [2, 20, 21, 22, 23, 24, 3]]),
          "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]])}


@pytest.mark.parametrize("kind", ["bert", "roberta", "xlm-roberta", "electra", "deberta-v2", "albert", "distilbert"])
@torch.no_grad()
def test_mean_pooled_logits_equal_the_head_on_the_masked_mean(kind):
    m = _model(kind)
    cls = m(**INPUTS, output_hidden_states=True)
    set_pooling(m, "mean")
    mean = m(**INPUTS, output_hidden_states=True)
    assert not torch.allclose(mean.logits, cls.logits)
    for a, b in zip(cls.hidden_states, mean.hidden_states, strict=True):  # the layers objectives read: untouched
        assert torch.equal(a, b)
    # padding does not change a row's mean-pooled logits
    alone = m(input_ids=INPUTS["input_ids"][:1, :5], attention_mask=INPUTS["attention_mask"][:1, :5]).logits
    torch.testing.assert_close(alone, mean.logits[:1], rtol=1e-4, atol=1e-5)
    set_pooling(m, "cls")  # and back: exactly Hugging Face's model again, config included
    assert torch.equal(m(**INPUTS).logits, cls.logits) and not hasattr(m.config, "layerkd_pooling")
    mask = INPUTS["attention_mask"].float()  # the reference uses the hook-free modules
    torch.testing.assert_close(mean.logits, _by_hand(m, kind, cls.hidden_states[-1], mask), rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_modernbert_uses_its_own_classifier_pooling_option():
    m = _model("modernbert")
    cls = m(**INPUTS).logits
    set_pooling(m, "mean")
    assert m.config.classifier_pooling == "mean"
    assert not torch.allclose(m(**INPUTS).logits, cls)


def test_families_without_a_cls_indexing_head_refuse_mean_pooling():
    import transformers as tf

    llama = tf.LlamaForSequenceClassification(tf.LlamaConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_labels=2,
        pad_token_id=0))
    with pytest.raises(ModelError, match="pooling mean is not supported for model type 'llama'"):
        set_pooling(llama, "mean")
    set_pooling(llama, "cls")  # its own behaviour is always fine


@torch.no_grad()
def test_pooling_survives_save_load_and_the_student_cuts(tmp_path):
    path = toy.write_tiny_bert(tmp_path / "bert", num_labels=2, layers=4, hidden=32, heads=4, intermediate=64)
    teacher = TransformerClassifier.from_pretrained(str(path), num_labels=2).eval()
    enc = dict(teacher.tokenizer(["a b c", "the movie was good and long"], padding=True, return_tensors="pt"))
    teacher.set_pooling("mean")
    want = teacher(enc).logits
    teacher.save_pretrained(tmp_path / "saved")
    again = TransformerClassifier.from_pretrained(str(tmp_path / "saved"), num_labels=2).eval()
    assert again.pooling == "mean"
    torch.testing.assert_close(again(enc).logits, want)
    for student in (student_from_layers(teacher, [1, 2]), student_from_config(teacher, layers=1)):
        assert student.pooling == "mean"
        student.eval()
        h = student(enc, hidden_states=True)
        mask = enc["attention_mask"].float()
        mean = (h.hidden_states[-1] * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        bert = student.hf  # BERT's pooler carries no hook (its base model's output is recomputed)
        first = torch.cat([mean[:, None], h.hidden_states[-1][:, 1:]], dim=1)
        torch.testing.assert_close(h.logits, bert.classifier(bert.bert.pooler(first)))
    assert teacher(enc).logits.equal(want)  # cutting a student leaves the teacher's hooks alone


# ---------------------------------------------------------------------- saved models (layerkd.models.pooled_save)
# A mean-pooled model is saved with Hugging Face's custom-code route: plain transformers refuses it
# without trust_remote_code=True and reproduces it with it; layerkd loads it without running the file.

PLAIN_TRANSFORMERS = r"""
import json, sys
import torch
import transformers as tf

out = {}
for d in sys.argv[3:]:
    got = {}
    for trust in (False, None):  # None: transformers asks on stdin (closed here), then refuses too
        try:
            tf.AutoModelForSequenceClassification.from_pretrained(d, trust_remote_code=trust)
            got[str(trust)] = "loaded"
        except ValueError as exc:
            got[str(trust)] = str(exc)
    m = tf.AutoModelForSequenceClassification.from_pretrained(d, trust_remote_code=True,
                                                               attn_implementation="eager").eval()
    tok = tf.AutoTokenizer.from_pretrained(d)  # the tokenizer needs no custom code
    with torch.no_grad():
        got["logits"] = m(**{k: torch.tensor(v) for k, v in json.loads(sys.argv[1]).items()}).logits.tolist()
    got["class"] = type(m).__name__
    got["tokenizer"] = type(tok).__name__
    out[d] = got
out["layerkd_imported"] = any(name.split(".")[0] == "layerkd" for name in sys.modules)
with open(sys.argv[2], "w") as fh:  # not stdout: transformers' question is printed there
    json.dump(out, fh)
"""


def _saved_mean(kind: str, path, tmp_path) -> tuple[nn.Module, torch.Tensor]:
    """A tiny mean-pooled ``kind`` classifier saved by layerkd at ``path``: (model, its logits on INPUTS)."""
    m = _model(kind)
    set_pooling(m, "mean")
    tok = toy.write_tokenizer(tmp_path / "tok")
    TransformerClassifier(m, tok).save_pretrained(path)
    with torch.no_grad():
        return m, m(**INPUTS).logits


def test_a_saved_mean_model_reproduces_in_plain_transformers_only_with_trust_remote_code(tmp_path):
    import json
    import os
    import subprocess
    import sys

    want = {}
    for kind in ("bert", "roberta"):
        _, want[kind] = _saved_mean(kind, tmp_path / kind, tmp_path)
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "hf-modules"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    ids = json.dumps({k: v.tolist() for k, v in INPUTS.items()})
    result = tmp_path / "plain.json"
    run = subprocess.run([sys.executable, "-c", PLAIN_TRANSFORMERS, ids, result, *(str(tmp_path / k) for k in want)],
                         capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(result.read_text())
    assert got.pop("layerkd_imported") is False
    for kind, logits in want.items():
        res = got[str(tmp_path / kind)]
        for trust in ("False", "None"):  # never a silent [CLS] model: transformers' own clear refusal
            assert "contains custom code which must be executed" in res[trust], res[trust]
            assert "trust_remote_code=True" in res[trust]
        assert res["class"] == f"LayerkdMean{'Bert' if kind == 'bert' else 'Roberta'}ForSequenceClassification"
        assert res["tokenizer"].startswith("Bert")
        assert torch.equal(torch.tensor(res["logits"]), logits), kind  # exactly layerkd's mean-pooled logits


def test_the_saved_format_names_the_base_family_and_ships_a_self_contained_file(tmp_path):
    import ast
    import json

    import transformers as tf

    from layerkd.bench.suite import teacher_hash
    from layerkd.models.pooled_save import MODELING_FILE

    m, _ = _saved_mean("bert", tmp_path / "mean", tmp_path)
    cfg = json.loads((tmp_path / "mean" / "config.json").read_text())
    assert cfg["model_type"] == "layerkd-mean-bert" and cfg["layerkd_pooling"] == "mean"
    assert cfg["architectures"] == ["LayerkdMeanBertForSequenceClassification"]
    assert cfg["auto_map"] == {
        "AutoConfig": "modeling_layerkd_pooling.LayerkdMeanBertConfig",
        "AutoModelForSequenceClassification": "modeling_layerkd_pooling.LayerkdMeanBertForSequenceClassification"}
    tree = ast.parse((tmp_path / "mean" / MODELING_FILE).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported == {"__future__", "contextvars", "torch", "transformers"}
    # the weights are the family's own: the base class loads every tensor (and then reads [CLS])
    set_pooling(m, "cls")
    TransformerClassifier(m, toy.write_tokenizer(tmp_path / "tok")).save_pretrained(tmp_path / "cls")
    assert not (tmp_path / "cls" / MODELING_FILE).exists()
    assert "auto_map" not in json.loads((tmp_path / "cls" / "config.json").read_text())
    base, info = tf.BertForSequenceClassification.from_pretrained(str(tmp_path / "mean"), output_loading_info=True,
                                                                   attn_implementation="eager")
    assert not info["missing_keys"] and not info["unexpected_keys"]
    with torch.no_grad():
        assert torch.equal(base.eval()(**INPUTS).logits, m(**INPUTS).logits)
    assert teacher_hash(str(tmp_path / "mean")) == teacher_hash(str(tmp_path / "cls"))  # same weight bytes


@torch.no_grad()
def test_layerkd_loads_a_saved_mean_model_without_running_its_file(tmp_path):
    from layerkd.models.fingerprint import model_fingerprint
    from layerkd.models.pooled_save import MODELING_FILE

    for kind in ("bert", "roberta"):
        _, want = _saved_mean(kind, tmp_path / kind, tmp_path)
        with (tmp_path / kind / MODELING_FILE).open("a") as fh:  # were the file ever run, loading would fail
            fh.write("\nraise RuntimeError('layerkd ran the directory file')\n")
        for trust in (False, True):
            model = TransformerClassifier.from_pretrained(str(tmp_path / kind), trust_remote_code=trust,
                                                          attn_implementation="eager").eval()
            assert model.pooling == "mean"
            assert torch.equal(model(INPUTS).logits, want)
        # a teacher from such a directory: fingerprint stable, students keep mean, a cls student saves plain
        again = TransformerClassifier.from_pretrained(str(tmp_path / kind), attn_implementation="eager")
        assert model_fingerprint(model) == model_fingerprint(again)
        student = student_from_config(model, layers=1)
        assert student.pooling == "mean" and type(student.hf).__name__.startswith("LayerkdMean")
        cut = student_from_layers(model, [1])
        cut.set_pooling("cls")
        cut.save_pretrained(tmp_path / f"{kind}-cls")
        plain = TransformerClassifier.from_pretrained(str(tmp_path / f"{kind}-cls"), attn_implementation="eager")
        assert plain.pooling == "cls" and plain.config.model_type == kind
        assert not hasattr(plain.config, "layerkd_pooling") and not (tmp_path / f"{kind}-cls" / MODELING_FILE).exists()
        torch.testing.assert_close(plain.eval()(INPUTS).logits, cut.eval()(INPUTS).logits)


@torch.no_grad()
def test_the_older_format_still_loads_as_mean_in_layerkd(tmp_path):
    import json

    from layerkd.models.pooled_save import MODELING_FILE

    _, want = _saved_mean("roberta", tmp_path / "m", tmp_path)
    path = tmp_path / "m" / "config.json"  # what layerkd wrote before: the base type + layerkd_pooling
    cfg = json.loads(path.read_text())
    cfg.update(model_type="roberta", architectures=["RobertaForSequenceClassification"])
    del cfg["auto_map"]
    path.write_text(json.dumps(cfg))
    (tmp_path / "m" / MODELING_FILE).unlink()
    old = TransformerClassifier.from_pretrained(str(tmp_path / "m"), attn_implementation="eager").eval()
    assert old.pooling == "mean" and torch.equal(old(INPUTS).logits, want)
    old.save_pretrained(tmp_path / "new")  # saving it again converts it
    assert json.loads((tmp_path / "new" / "config.json").read_text())["model_type"] == "layerkd-mean-roberta"


def test_the_teacher_fingerprint_tells_the_poolings_apart():
    from layerkd.models.fingerprint import model_fingerprint

    for kind in ("bert", "roberta"):
        m = _model(kind)
        cls = model_fingerprint(m)
        set_pooling(m, "mean")
        assert model_fingerprint(m) != cls, kind  # a cached teacher's logits depend on its pooling


def test_evaluate_reproduces_a_mean_pooled_finetune(tmp_path, capsys):
    """A toy STS-B (regression: every prediction moves the score) fine-tuned with --pooling mean;
    ``layerkd evaluate`` on the saved model gives the run's own dev score, the cls view of the same
    weights another one."""
    import json
    import random

    from clihelp import run_cli

    glue = tmp_path / "glue"
    (glue / "STS-B").mkdir(parents=True)
    rng = random.Random(0)
    for split, n, seed in (("train", 96, 0), ("dev", 40, 1)):
        rows = toy.pair_examples(n, seed=seed)
        (glue / "STS-B" / f"{split}.tsv").write_text("sentence1\tsentence2\tscore\n" + "".join(
            f"{a}\t{b}\t{y * 3 + rng.uniform(0, 2):.3f}\n" for a, b, y in rows))
    bert = toy.write_tiny_bert(tmp_path / "bert", num_labels=1, layers=2, hidden=32, heads=4, intermediate=64)
    out = tmp_path / "model"
    common = ("--task", "sts-b", "--data-dir", glue, "--max-length", "32")
    code, _, err = run_cli("finetune", "--model", bert, *common, "--output-dir", out, "--epochs", "1",
                           "--batch-size", "16", "--lr", "1e-3", "--pooling", "mean", capsys=capsys)
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["model_type"] == "layerkd-mean-bert"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "dev" and metrics["pearson"] == metrics["last_epoch"]["pearson"]  # one epoch
    code, stdout, err = run_cli("evaluate", out, *common, capsys=capsys)
    assert code == 0, err
    assert json.loads(stdout)["pearson"] == pytest.approx(metrics["pearson"], abs=1e-6)
    loaded = TransformerClassifier.from_pretrained(str(out))
    loaded.set_pooling("cls")  # the same weights read through [CLS]: another score, so the pooling was used
    loaded.save_pretrained(tmp_path / "as-cls")
    code, stdout, err = run_cli("evaluate", tmp_path / "as-cls", *common, capsys=capsys)
    assert code == 0, err
    assert abs(json.loads(stdout)["pearson"] - metrics["pearson"]) > 1e-3
