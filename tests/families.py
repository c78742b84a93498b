"""Tiny random encoders of every family layerkd covers, with tokenizers made on the spot (no downloads).

Each family gets a tokenizer of its own kind, as the real checkpoints have (so that cross-family
pairs really have different tokenizers, and token-aligned methods must refuse them):

* ``wordpiece`` — the toy task's WordPiece vocabulary (:func:`layerkd.toy.write_tokenizer`,
  ``[CLS] … [SEP]``, token type ids): BERT, DistilBERT (no token type ids), ELECTRA;
* ``bpe`` — byte-level BPE trained here with the ``tokenizers`` library, ``<s> … </s>``: RoBERTa;
* ``bpe-cls`` — byte-level BPE, ``[CLS] … [SEP]``: ModernBERT;
* ``unigram`` — a SentencePiece-style Unigram model (Metaspace), ``[CLS] … [SEP]``: ALBERT,
  DeBERTa-v2, DeBERTa-v3 (one tokenizer for the three, as ALBERT-/DeBERTa-style models share a kind);
* ``unigram-s`` — Unigram, ``<s> … </s>``: XLM-RoBERTa.

Models are 4 blocks, 32 wide, 4 heads, feed-forward 64, 64 positions. DeBERTa-v2 and -v3 differ as
their released configurations do: both use disentangled relative attention (``p2c|c2p``, shared
keys, log buckets, no absolute positions); v2 (``deberta-v2-xlarge``) adds the convolution after
the first block (``conv_kernel_size: 3``), v3 has none.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from pathlib import Path

from layerkd import jsonio, toy

FAMILIES = ("bert", "roberta", "distilbert", "albert", "electra", "deberta-v2", "deberta-v3", "modernbert", "xlm-roberta")

TOKENIZER = {"bert": "wordpiece", "distilbert": "wordpiece", "electra": "wordpiece", "roberta": "bpe",
             "modernbert": "bpe-cls", "albert": "unigram", "deberta-v2": "unigram", "deberta-v3": "unigram",
             "xlm-roberta": "unigram-s"}

#: families whose forward takes no ``token_type_ids`` (their tokenizers do not produce them)
NO_TOKEN_TYPES = {"roberta", "distilbert", "modernbert", "xlm-roberta"}

SHAPE = {"layers": 4, "hidden": 32, "heads": 4, "intermediate": 64, "positions": 64}


@functools.cache
def _texts() -> tuple[str, ...]:
    rows = toy.sentiment_examples(400, seed=7) + [(f"{a} {b}", 0) for a, b, _ in toy.pair_examples(100, seed=7)]
    return tuple(t for t, _ in rows) + tuple(toy.VOCAB)


def _unigram_pieces(specials: list[str]) -> list[tuple[str, float]]:
    """A SentencePiece-style Unigram vocabulary from the toy sentences: every word as ``▁word`` and
    every character (alone and word-initial) for coverage, scored by log frequency. (The
    ``tokenizers`` Unigram trainer reduces a corpus of some sixty distinct words to single
    characters, which only makes every sequence three times longer.)"""
    words = Counter(w for t in _texts() for w in t.split())
    chars = Counter(c for w, n in words.items() for c in w for _ in range(n))
    total = sum(words.values()) + sum(chars.values())
    pieces = {f"▁{w}": n for w, n in words.items()}
    for c, n in chars.items():
        pieces.setdefault(c, n / 10)
        pieces.setdefault(f"▁{c}", n / 10)
    pieces.setdefault("▁", 1)
    return [(s, 0.0) for s in specials] + [(p, math.log(n / total)) for p, n in sorted(pieces.items())]


def _trained(kind: str):
    """A ``tokenizers.Tokenizer`` of ``kind`` trained on toy sentences, and its [CLS]/[SEP]-like specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: PLC0415

    if kind in ("bpe", "unigram-s"):
        specials = {"cls": "<s>", "pad": "<pad>", "sep": "</s>", "unk": "<unk>", "mask": "<mask>"}
    else:
        specials = {"cls": "[CLS]", "pad": "[PAD]", "sep": "[SEP]", "unk": "[UNK]", "mask": "[MASK]"}
    order = list(dict.fromkeys([specials[k] for k in ("cls", "pad", "sep", "unk", "mask")]))
    if kind.startswith("bpe"):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=order, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(_texts(), trainer)
    else:
        tok = Tokenizer(models.Unigram(_unigram_pieces(order), unk_id=order.index(specials["unk"])))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
    cls, sep = specials["cls"], specials["sep"]
    ids = [(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))]
    if kind in ("bpe", "unigram-s"):  # RoBERTa-style pairs: <s> A </s></s> B </s>
        tok.post_processor = processors.TemplateProcessing(single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} {sep} $B {sep}",
                                                           special_tokens=ids)
    else:
        tok.post_processor = processors.TemplateProcessing(single=f"{cls}:0 $A:0 {sep}:0",
                                                           pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1", special_tokens=ids)
    return tok, specials


def write_tokenizer(directory: Path, family: str):
    """The family's tokenizer, saved to ``directory`` (returned loaded back with ``AutoTokenizer``)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast  # noqa: PLC0415

    kind = TOKENIZER[family]
    directory.mkdir(parents=True, exist_ok=True)
    if kind == "wordpiece":
        tok = toy.write_tokenizer(directory)
        if family in NO_TOKEN_TYPES:  # DistilBERT's WordPiece tokenizer gives no token type ids
            path = directory / "tokenizer_config.json"
            path.write_text(jsonio.dumps({**jsonio.loads(path.read_text()),
                                          "model_input_names": ["input_ids", "attention_mask"]}, indent=2))
    else:
        backend, sp = _trained(kind)
        names = ["input_ids", "attention_mask"] + ([] if family in NO_TOKEN_TYPES else ["token_type_ids"])
        tok = PreTrainedTokenizerFast(tokenizer_object=backend, cls_token=sp["cls"], bos_token=sp["cls"],
                                      sep_token=sp["sep"], eos_token=sp["sep"], pad_token=sp["pad"],
                                      unk_token=sp["unk"], mask_token=sp["mask"], model_input_names=names,
                                      model_max_length=SHAPE["positions"])
        tok.save_pretrained(str(directory))
    return AutoTokenizer.from_pretrained(str(directory))


def family_config(family: str, tok, *, num_labels: int = 2, overrides: dict | None = None, **shape: int):
    """A tiny random configuration of ``family`` for tokenizer ``tok`` (``shape`` overrides :data:`SHAPE`,
    ``overrides`` sets other config fields)."""
    import transformers as tf  # noqa: PLC0415

    sh = {**SHAPE, **shape}
    ids = {"pad_token_id": tok.pad_token_id, "bos_token_id": tok.cls_token_id, "eos_token_id": tok.sep_token_id}
    common = {"vocab_size": len(tok), "hidden_size": sh["hidden"], "num_hidden_layers": sh["layers"],
              "num_attention_heads": sh["heads"], "intermediate_size": sh["intermediate"],
              "max_position_embeddings": sh["positions"], "num_labels": num_labels, **ids}
    deberta = {"relative_attention": True, "pos_att_type": ["p2c", "c2p"], "position_buckets": 32,
               "max_relative_positions": -1, "norm_rel_ebd": "layer_norm", "share_att_key": True,
               "position_biased_input": False, "type_vocab_size": 0}
    make = {
        "bert": lambda: tf.BertConfig(**common),
        "roberta": lambda: tf.RobertaConfig(**{**common, "max_position_embeddings": sh["positions"] + 2},
                                            type_vocab_size=1),
        "xlm-roberta": lambda: tf.XLMRobertaConfig(**{**common, "max_position_embeddings": sh["positions"] + 2},
                                                   type_vocab_size=1),
        "electra": lambda: tf.ElectraConfig(**common, embedding_size=16),
        "albert": lambda: tf.AlbertConfig(**common, embedding_size=16),
        "deberta-v2": lambda: tf.DebertaV2Config(**common, **deberta, conv_kernel_size=3, conv_act="gelu"),
        "deberta-v3": lambda: tf.DebertaV2Config(**common, **deberta),
        "distilbert": lambda: tf.DistilBertConfig(vocab_size=len(tok), dim=sh["hidden"], n_layers=sh["layers"],
                                                  n_heads=sh["heads"], hidden_dim=sh["intermediate"],
                                                  max_position_embeddings=sh["positions"], num_labels=num_labels,
                                                  pad_token_id=tok.pad_token_id),
        "modernbert": lambda: tf.ModernBertConfig(**common, global_attn_every_n_layers=3, local_attention=16,
                                                  cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id),
    }
    config = make[family]()
    for key, value in (overrides or {}).items():
        setattr(config, key, value)
    return config


def write_family(directory: str | Path, family: str, *, num_labels: int = 2, seed: int = 0, fine_tuned: bool = False,
                 overrides: dict | None = None, **shape: int) -> Path:
    """A randomly initialised tiny ``family`` encoder (+ its tokenizer) saved as a Hugging Face
    directory, marked as a pretrained encoder (its classification head is not fine-tuned yet) unless
    ``fine_tuned`` (then it passes for a fine-tuned teacher, with a random head)."""
    import torch  # noqa: PLC0415
    from transformers import AutoModelForSequenceClassification  # noqa: PLC0415

    from layerkd.models.transformer import _quiet_transformers  # noqa: PLC0415

    _quiet_transformers()
    d = Path(directory)
    tok = write_tokenizer(d, family)
    torch.manual_seed(seed)
    config = family_config(family, tok, num_labels=num_labels, overrides=overrides, **shape)
    model = AutoModelForSequenceClassification.from_config(config, attn_implementation="eager")
    model.save_pretrained(str(d), safe_serialization=True)
    if fine_tuned:
        return d
    path = d / "config.json"
    data = jsonio.loads(path.read_text())
    data["architectures"] = [type(model.base_model).__name__]  # a "pretrained encoder", as toy.write_tiny_bert
    path.write_text(jsonio.dumps(data, indent=2))
    return d
