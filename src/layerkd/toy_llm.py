"""Tiny random decoder-only classifiers (Llama, Mistral) with a word-level tokenizer over
the toy vocabulary, for the tests and for trying LLM-classifier teachers offline.

The tokenizer is built with the ``tokenizers`` library (no download): lower-cased words split
on whitespace and punctuation, ``<s>`` in front of every row and ``</s>`` between the texts of a
pair, ``<pad>`` as its own pad token (so the head's "last non-pad token" is always the last real
token), ``padding_side`` as asked (layerkd itself always pads on the right).
"""

from __future__ import annotations

from pathlib import Path

from .toy import VOCAB

DECODER_SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
# Qwen2 is left out: transformers 5's AutoTokenizer loads any tokenizer saved beside a qwen2 config
# as Qwen2Tokenizer (byte-level BPE), which mangles this word-level vocabulary.
FAMILIES = ("llama", "mistral")


def write_decoder_tokenizer(directory: str | Path, *, padding_side: str = "right"):
    """A word-level fast tokenizer over the toy vocabulary, saved to ``directory``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors  # noqa: PLC0415
    from transformers import PreTrainedTokenizerFast  # noqa: PLC0415

    words = [w for w in VOCAB if not w.startswith("[")]
    vocab = {w: i for i, w in enumerate(DECODER_SPECIALS + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    bos, eos = vocab["<s>"], vocab["</s>"]
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A </s> $B:1",
                                                       special_tokens=[("<s>", bos), ("</s>", eos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", padding_side=padding_side, model_max_length=128)
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(d))
    return fast


def write_tiny_decoder(directory: str | Path, *, family: str = "llama", num_labels: int = 2, layers: int = 4,
                       hidden: int = 64, heads: int = 4, kv_heads: int | None = 2, intermediate: int = 128,
                       labels: tuple[str, ...] | None = None, padding_side: str = "right", seed: int = 0) -> Path:
    """A randomly initialised decoder ``ForSequenceClassification`` (+ tokenizer) saved as a Hugging
    Face directory. Its head counts as fine-tuned (``architectures`` names the classifier), so it
    can serve as a teacher directly; ``labels`` names its outputs (default ``0``, ``1`` …)."""
    import torch  # noqa: PLC0415
    from transformers import AutoConfig, AutoModelForSequenceClassification  # noqa: PLC0415

    from .models.transformer import _quiet_transformers  # noqa: PLC0415

    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")
    _quiet_transformers()
    d = Path(directory)
    tok = write_decoder_tokenizer(d, padding_side=padding_side)
    names = labels or tuple(str(i) for i in range(num_labels))
    cfg = AutoConfig.for_model(
        family, vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads, intermediate_size=intermediate, max_position_embeddings=128,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        num_labels=num_labels, id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
        tie_word_embeddings=False,
    )
    if num_labels == 1:
        cfg.problem_type = "regression"
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(cfg)
    model.save_pretrained(str(d), safe_serialization=True)
    return d
