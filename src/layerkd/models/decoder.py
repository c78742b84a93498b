"""Decoder-only sequence classifiers (LLM classifiers: Llama, Qwen2, Mistral, GPT-2 …) as layerkd models.

A decoder has no [CLS] token: its Hugging Face classification head reads the state of the **last
real token** of each row (the rightmost token that is not padding). layerkd follows it
everywhere a sentence vector is pooled:

* ``ModelInfo.has_cls`` is False, and the model's Trace sets ``sentence_pooling = "last"``, so
  ``layer_vectors("cls")`` — what PKD, ALP, CKD, Universal-KD's heads and the teacher cache read
  by default — is the last real token's state of every layer (:func:`layerkd.models.pooling.pool`,
  mode ``last``: the index comes from the attention mask, so it is right for left and for right
  padding alike). The cache stores these vectors under the pooling the objective asked for
  (``cls``), keyed by the teacher's fingerprint, so they never mix with an encoder's [CLS] vectors.
* layerkd pads on the right (:mod:`layerkd.data.batching`), whatever the tokenizer's
  ``padding_side``: with causal attention and positions counted from the first token, a row's real
  tokens then never see its padding, and its outputs do not depend on how far the batch is padded.
* Classifier ``--pooling mean`` is refused for these families (:mod:`layerkd.models.classifier_pooling`).
* The head needs ``config.pad_token_id`` to find the last real token when a batch holds more than
  one row; :func:`prepare_decoder` sets it from the tokenizer's pad token, and gives a tokenizer
  without one its end-of-sequence token as pad token (the usual choice; logged).
"""

from __future__ import annotations

import logging

from torch import nn

log = logging.getLogger("layerkd")

# Families whose classifier reads the last non-padding token without using transformers'
# GenericForSequenceClassification (older decoder implementations).
LAST_TOKEN_TYPES = frozenset({"gpt2", "gpt_neo", "gpt_neox", "gptj", "bloom", "opt", "falcon", "mpt", "codegen",
                              "ctrl", "openai-gpt", "biogpt", "xglm"})


def is_decoder_classifier(hf_model: nn.Module) -> bool:
    """True for a decoder-only classifier that reads the last real token."""
    try:
        from transformers.modeling_layers import GenericForSequenceClassification  # noqa: PLC0415
    except ImportError:  # pragma: no cover - older transformers
        GenericForSequenceClassification = ()  # noqa: N806
    if GenericForSequenceClassification and isinstance(hf_model, GenericForSequenceClassification):
        return True
    return str(getattr(hf_model.config, "model_type", "")).lower() in LAST_TOKEN_TYPES


def is_decoder_config(config) -> bool:
    """The same decision from a config alone (no weights): its architecture's classifier class."""
    if str(getattr(config, "model_type", "")).lower() in LAST_TOKEN_TYPES:
        return True
    try:
        from transformers import AutoModelForSequenceClassification  # noqa: PLC0415
        from transformers.modeling_layers import GenericForSequenceClassification  # noqa: PLC0415

        cls = AutoModelForSequenceClassification._model_mapping[type(config)]
    except (ImportError, KeyError, AttributeError):
        return False
    return issubclass(cls, GenericForSequenceClassification)


def prepare_decoder(config, tokenizer, where: str) -> None:
    """A pad token for the tokenizer and ``config.pad_token_id`` for the head (see the module docstring)."""
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            from ..errors import ModelError  # noqa: PLC0415

            raise ModelError(f"{where}: a decoder classifier needs a pad token to batch rows, and its tokenizer has "
                             "neither a pad nor an end-of-sequence token; save the tokenizer with a pad_token")
        tokenizer.pad_token = tokenizer.eos_token
        log.info("%s: the tokenizer has no pad token; using its end-of-sequence token %r", where, tokenizer.eos_token)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    if getattr(text_config, "pad_token_id", None) is None:
        text_config.pad_token_id = int(tokenizer.pad_token_id)


def fit_attention_shape(config) -> None:
    """A ``config:`` student's attention shape from its width and head count: families that store
    ``head_dim`` (Llama, Qwen2, Mistral …) get ``hidden / heads``, and grouped-query key/value
    heads that no longer divide the head count become one per head."""
    heads = int(getattr(config, "num_attention_heads", 0) or 0)
    if heads <= 0:
        return
    if getattr(config, "head_dim", None) is not None:
        config.head_dim = int(config.hidden_size) // heads
    kv = getattr(config, "num_key_value_heads", None)
    if kv is not None and (kv > heads or heads % kv):
        config.num_key_value_heads = heads
