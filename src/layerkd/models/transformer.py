"""Any Hugging Face encoder with a sequence-classification head, as a Trace producer.

Loaded by hub id or local path (``trust_remote_code`` off unless asked for). Hidden states and
attention probabilities are requested only when an objective needs them. Attention
probabilities need the eager kernel — with the default ``sdpa`` kernel transformers 5 returns
an empty tuple and only logs a warning — so the wrapper switches to eager the first time they
are asked for, and raises if they still come back empty.
"""

from __future__ import annotations

import copy
import logging
import pickle
from pathlib import Path

import torch
from torch import nn

from ..data.encoding import HFTextEncoder
from ..errors import ModelError
from .base import ModelInfo
from .classifier_pooling import get_pooling, set_pooling
from .cuts import cut_blocks, find_layer_list, resize_config, set_intermediate, set_width
from .decoder import fit_attention_shape, is_decoder_classifier, prepare_decoder
from .pooled_save import finish_save, register_saved_type
from .trace import Trace
from .weights_check import check_weight_files

log = logging.getLogger(__name__)


def _quiet_transformers() -> None:
    import transformers  # noqa: PLC0415

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


#: the classifier-class flag that says whether a family implements an attention kernel
_KERNEL_FLAGS = {"sdpa": "_supports_sdpa", "flash_attention_2": "_supports_flash_attn"}


def attention_kernel(config, wanted: str) -> str:
    """``wanted`` where the family's sequence classifier implements it, else ``eager``.

    Some families have only the eager kernel (DeBERTa-v2/v3: transformers refuses to build
    ``DebertaV2ForSequenceClassification`` with ``sdpa``); asking for ``sdpa`` there must not stop
    a run. A class that transformers does not know (remote code) is left to transformers."""
    flag = _KERNEL_FLAGS.get(wanted)
    if flag is None:
        return wanted
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING  # noqa: PLC0415

    try:
        model_cls = MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING[type(config)]
    except KeyError:
        return wanted
    if getattr(model_cls, flag, True):
        return wanted
    log.info("%s has no %s attention kernel: using eager attention", model_cls.__name__, wanted)
    return "eager"


class TransformerClassifier(nn.Module):
    kind = "transformer"

    def __init__(self, hf_model: nn.Module, tokenizer, *, name: str = ""):
        super().__init__()
        self.hf = hf_model
        self.tokenizer = tokenizer
        self.name = name or getattr(hf_model.config, "_name_or_path", "")
        self._encoder = HFTextEncoder(tokenizer)
        self.is_decoder = is_decoder_classifier(hf_model)  # an LLM classifier: last-token vectors (models/decoder.py)
        set_pooling(self.hf, get_pooling(self.hf))  # a saved mean-pooled model gets its hooks back

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | Path,
        *,
        num_labels: int | None = None,
        label_names: tuple[str, ...] | None = None,
        attn_implementation: str = "sdpa",
        trust_remote_code: bool = False,
    ) -> TransformerClassifier:
        """Load a model and its tokenizer. ``num_labels`` sets/validates the head size."""
        _quiet_transformers()
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer  # noqa: PLC0415

        where = str(path_or_id)
        local = Path(where)
        if local.exists() and not (local / "config.json").exists():
            raise ModelError(f"{where} is not a model directory: no config.json")
        register_saved_type(where)  # a mean-pooled layerkd directory: its classes, without running its code
        try:
            config = AutoConfig.from_pretrained(where, trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"cannot load a model config from {where!r}: {first}") from None
        fine_tuned = getattr(config, "architectures", None) and any(
            a.endswith("ForSequenceClassification") for a in config.architectures
        )
        kwargs = {}
        if num_labels is not None:
            if fine_tuned and config.num_labels != num_labels:
                raise ModelError(
                    f"{where} has a {config.num_labels}-label classifier but the task needs {num_labels} labels"
                )
            kwargs["num_labels"] = num_labels
            if num_labels == 1:
                kwargs["problem_type"] = "regression"
            if label_names and not fine_tuned:
                kwargs["id2label"] = dict(enumerate(label_names))
                kwargs["label2id"] = {n: i for i, n in enumerate(label_names)}
        if local.is_dir() and not any(local.glob("*.safetensors")) and any(local.glob("*.bin")):
            log.warning("%s: no safetensors weights; loading the legacy .bin file with torch.load(weights_only=True) "
                        "(only tensors, no code). Re-save the model to convert it", where)
        if local.is_dir():
            check_weight_files(local)  # a truncated/corrupt safetensors file: one ModelError line
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                where, attn_implementation=attention_kernel(config, attn_implementation), trust_remote_code=trust_remote_code,
                weights_only=True, **kwargs
            )
        except (OSError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"cannot load a sequence-classification model from {where!r}: {first}") from None
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"cannot load the tokenizer of {where!r}: {first}") from None
        if is_decoder_classifier(model):
            prepare_decoder(model.config, tokenizer, where)
        check_tokenizer_matches(tokenizer, model, where)
        if not fine_tuned:
            log.info("%s: classification head newly initialised (%d labels)", where, model.config.num_labels)
        return cls(model, tokenizer, name=where)

    def save_pretrained(self, out_dir: str | Path) -> None:
        """A Hugging Face-loadable directory: config, safetensors weights and tokenizer."""
        self.hf.save_pretrained(str(out_dir), safe_serialization=True)
        finish_save(self.hf, out_dir)  # the classifier pooling travels with it (layerkd.models.pooled_save)
        self.tokenizer.save_pretrained(str(out_dir))

    # ------------------------------------------------------------------ facts
    @property
    def pooling(self) -> str:
        """What the classifier reads: ``cls`` or ``mean`` (:mod:`layerkd.models.classifier_pooling`)."""
        return get_pooling(self.hf)

    def set_pooling(self, mode: str) -> None:
        set_pooling(self.hf, mode)

    @property
    def config(self):
        return self.hf.config

    @property
    def num_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def text_encoder(self) -> HFTextEncoder:
        return self._encoder

    @property
    def info(self) -> ModelInfo:
        cfg = self.config
        return ModelInfo(
            kind="transformer",
            num_layers=self.num_layers,
            hidden_size=int(getattr(cfg, "hidden_size", getattr(cfg, "dim", 0))),
            num_labels=int(cfg.num_labels),
            tokenizer_fingerprint=self._encoder.fingerprint,
            num_heads=int(getattr(cfg, "num_attention_heads", getattr(cfg, "n_heads", 0)) or 0) or None,
            has_cls=not self.is_decoder,
            supports_attentions=True,
            name=self.name,
        )

    def layer_list(self) -> nn.ModuleList:
        return find_layer_list(self.hf, self.num_layers)[2]

    def disable_attention_dropout(self) -> None:
        """Attention-map objectives compare probabilities; in training mode Hugging Face returns
        them *after* dropout (zeroed and rescaled entries), which would poison a KL or an MSE.
        Turn attention-probability dropout off (hidden-state dropout is kept)."""
        for module in self.hf.modules():
            drop = getattr(module, "dropout", None)
            if "attention" in type(module).__name__.lower() and isinstance(drop, nn.Dropout):
                drop.p = 0.0
        for attr in ("attention_probs_dropout_prob", "attention_dropout"):
            if hasattr(self.config, attr):
                setattr(self.config, attr, 0.0)

    def use_eager_attention(self) -> None:
        impl = getattr(self.config, "_attn_implementation", None)
        if impl != "eager":
            self.hf.set_attn_implementation("eager")

    # ------------------------------------------------------------------ forward
    def forward(self, inputs: dict[str, torch.Tensor], *, hidden_states: bool = False, attentions: bool = False) -> Trace:
        if attentions:
            self.use_eager_attention()
        out = self.hf(
            **inputs,
            output_hidden_states=hidden_states,
            output_attentions=attentions,
            return_dict=True,
        )
        atts = tuple(out.attentions) if attentions and out.attentions is not None else None
        if attentions and not atts:
            raise RuntimeError(f"{self.name}: attention probabilities came back empty (attention kernel does not return them)")
        return Trace(
            logits=out.logits,
            attention_mask=inputs.get("attention_mask"),
            hidden_states=tuple(out.hidden_states) if hidden_states else None,
            attentions=atts,
            sentence_pooling="last" if self.is_decoder else None,
            source=self.name or "transformer",
        )


def check_tokenizer_matches(tokenizer, model, where: str) -> None:
    """A tokenizer whose ids exceed the model's embedding table cannot belong to it."""
    try:
        vocab = model.get_input_embeddings().weight.shape[0]
    except (AttributeError, NotImplementedError):
        return
    if len(tokenizer) > vocab:
        raise ModelError(
            f"{where}: tokenizer has {len(tokenizer)} tokens but the model's embedding table has {vocab} rows; "
            "the tokenizer does not belong to this model"
        )


# ---------------------------------------------------------------------- building students


def student_from_layers(teacher: TransformerClassifier, layers: list[int]) -> TransformerClassifier:
    """A shallower copy of ``teacher`` keeping the embeddings, the chosen blocks (1-based, in the
    given order), the pooler and the classifier."""
    n = teacher.num_layers
    if not layers:
        raise ModelError("student layers: expected at least one teacher layer")
    bad = [i for i in layers if not 1 <= i <= n]
    if bad:
        raise ModelError(f"student layers: layer {bad[0]} is out of the teacher's range 1..{n}")
    if len(set(layers)) != len(layers):
        raise ModelError(f"student layers: each teacher layer may be used once, got {layers}")
    hf = copy.deepcopy(teacher.hf)
    cut_blocks(hf, layers, n)  # per-family details (per-layer config lists, shared blocks): layerkd.models.cuts
    set_pooling(hf, teacher.pooling)  # hooks re-attached to the copy's own modules
    student = TransformerClassifier(hf, teacher.tokenizer, name=f"{teacher.name}[layers {','.join(map(str, layers))}]")
    return student


def student_from_config(teacher: TransformerClassifier, *, layers: int, hidden: int | None = None,
                        heads: int | None = None, intermediate: int | None = None) -> TransformerClassifier:
    """A randomly initialised encoder of the teacher's family and tokenizer, with its own depth,
    width and head count."""
    from transformers import AutoModelForSequenceClassification  # noqa: PLC0415

    cfg = copy.deepcopy(teacher.config)
    resize_config(cfg, layers)  # per-layer config lists, ALBERT's shared groups (layerkd.models.cuts)
    if hidden is not None:
        set_width(cfg, hidden)
    if heads is not None:
        cfg.num_attention_heads = heads
    if cfg.hidden_size % cfg.num_attention_heads:
        raise ModelError(f"student config: width {cfg.hidden_size} is not divisible by {cfg.num_attention_heads} heads")
    set_intermediate(cfg, intermediate if intermediate is not None else 4 * cfg.hidden_size)
    fit_attention_shape(cfg)  # head_dim / key-value heads of the new shape (decoder families)
    cfg.architectures = None
    hf = AutoModelForSequenceClassification.from_config(cfg, attn_implementation=attention_kernel(cfg, "sdpa"))
    set_pooling(hf, teacher.pooling)
    return TransformerClassifier(hf, teacher.tokenizer, name=f"config(layers={layers},hidden={cfg.hidden_size})")
