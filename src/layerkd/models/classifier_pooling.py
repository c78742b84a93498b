"""What a transformer's *classifier* reads: the [CLS] state (``cls``) or the masked mean of the
final token states (``mean``).

This is a different choice from the pooling of the per-layer vectors that ALP/PKD/RAIL/Universal-KD
match (their own ``pooling`` options, :mod:`layerkd.models.pooling`): ``--pooling`` sets what the
model's classification head sees, nothing else.

Hugging Face heads read position 0 of the final token states (BERT's pooler, RoBERTa/ELECTRA's
classification head, DeBERTa's context pooler, DistilBERT's pre-classifier, ALBERT's pooler all
index ``[:, 0]``). ``mean`` pooling keeps every head as it is (same weights, same dense + tanh or
ReLU + linear) and feeds it the masked mean of the final token states instead, with hooks on the
model itself (so any caller of the Hugging Face model gets it, not only layerkd's wrapper). The
hooks live in :mod:`layerkd.models.hf_template.mean_pooling`, a self-contained file that is also
copied next to every mean-pooled model layerkd saves (one piece of code for training and for
plain ``transformers``).

The per-layer ``hidden_states`` that the distillation objectives read are never changed (tested).
ModernBERT has its own option (``config.classifier_pooling = "mean"``), which is used instead, so
plain ``transformers`` reproduces it. Families without a [CLS]-indexing head (LLM classifiers read
the last token) refuse ``mean``. How the choice travels with a saved model (``config.layerkd_pooling``,
a ``layerkd-mean-<type>`` model type and Hugging Face custom code) is :mod:`layerkd.models.pooled_save`'s.
"""

from __future__ import annotations

from torch import nn

from ..errors import ModelError
from .hf_template.mean_pooling import MODEL_TYPE_PREFIX, STRATEGY, install_mean_pooling, remove_mean_pooling

CLASSIFIER_POOLINGS = ("cls", "mean")
CONFIG_KEY = "layerkd_pooling"  # saved in config.json
NATIVE = {"modernbert": "classifier_pooling"}  # model types with their own option: attribute to set


def saved_model_type(hf_model: nn.Module) -> str:
    """The model type as the config says it (``layerkd-mean-bert`` for a model loaded from a
    mean-pooled directory, :mod:`layerkd.models.pooled_save`)."""
    return str(getattr(hf_model.config, "model_type", "")).lower()


def model_type(hf_model: nn.Module) -> str:
    """The model's family: its base model type (``bert`` also for ``layerkd-mean-bert``)."""
    kind = saved_model_type(hf_model)
    return kind[len(MODEL_TYPE_PREFIX):] if kind.startswith(MODEL_TYPE_PREFIX) else kind


def get_pooling(hf_model: nn.Module) -> str:
    """The classifier pooling a loaded Hugging Face model carries (``cls`` when nothing says otherwise)."""
    native = NATIVE.get(model_type(hf_model))
    if native is not None:
        return "mean" if getattr(hf_model.config, native, "cls") == "mean" else "cls"
    default = "mean" if saved_model_type(hf_model).startswith(MODEL_TYPE_PREFIX) else "cls"
    return str(getattr(hf_model.config, CONFIG_KEY, None) or default)


def set_pooling(hf_model: nn.Module, mode: str) -> None:
    """Make ``hf_model``'s classifier read ``mode`` (idempotent; also after ``copy.deepcopy``)."""
    if mode not in CLASSIFIER_POOLINGS:
        raise ModelError(f"pooling: expected one of {', '.join(CLASSIFIER_POOLINGS)}, got {mode!r}")
    kind = model_type(hf_model)
    remove_mean_pooling(hf_model)
    native = NATIVE.get(kind)
    if native is not None:
        setattr(hf_model.config, native, mode)
        return
    if mode == "cls":
        if saved_model_type(hf_model).startswith(MODEL_TYPE_PREFIX):  # its class says mean: say cls explicitly
            setattr(hf_model.config, CONFIG_KEY, "cls")
        elif hasattr(hf_model.config, CONFIG_KEY):  # Hugging Face's own behaviour: exactly a plain config
            delattr(hf_model.config, CONFIG_KEY)
        return
    if kind not in STRATEGY:
        raise ModelError(f"--pooling mean is not supported for model type {kind!r} (supported: "
                         f"{', '.join(sorted((*STRATEGY, *NATIVE)))}); use --pooling cls")
    install_mean_pooling(hf_model, kind)
    setattr(hf_model.config, CONFIG_KEY, mode)
